"""The Step tab: decode one piece at a time, force other pieces, go back, run to the end.

The tab's state is a plain dict (the StepperState fields plus the model name) kept in gr.State. What a click
shows comes from one greedy continuation of the prefix chosen so far (`Translator.stepper_decode`): the next
step's candidates, the attention so far and the "if the model went on" text at once. The session keeps that
continuation with its decoder states (`Session.stepping`), so a click decodes only what is new: Next and
Run to end decode nothing (the greedy continuation already holds the next piece), Force and Back resume from
the kept state at the piece that changed (Back after a Force returns to the continuation kept from before
it), and only Start (or a state the session did not make) encodes the sentence.
"""
from __future__ import annotations

from .. import plots
from ..api import Continuation, StepperState, Translator
from ..tokenizer import readable_text
from ..trace import TraceLimits
from .common import UserError, check_text, gpu, md
from .models import LANGUAGES, Session, get_translator


@gpu()
def step_start(model: str, text: str, session: Session | None = None) -> dict:
    """Begin decoding `text` one piece at a time (nothing decoded yet)."""
    text = check_text(text)
    translator = get_translator(model, session)
    return _view(translator, model, translator.stepper_start(text), session=session)


@gpu()
def step_model_changed(model: str, step_state: dict | None, session: Session | None = None) -> dict | None:
    """After the model changed: start the Step tab's sentence again with the new model (None when nothing was
    started); when the new model reads another language, ask for a sentence in it."""
    if not step_state or not step_state.get("source"):
        return None
    translator = get_translator(model, session)
    old = step_state.get("model")
    try:
        was = get_translator(old, session).config.src_lang if old else ""
    except UserError:  # the old model is gone (taken back by the server)
        was = ""
    if was and was != translator.config.src_lang:
        language = LANGUAGES.get(translator.config.src_lang, translator.config.src_lang)
        return dict(state=None, status=md(f"The model changed and reads {language} now: type a {language} "
                                          "sentence and press Start."), prefix=[], continuation="",
                    choices=[], candidates=plots.empty_figure("", 260), step_attention=plots.empty_figure("", 260),
                    heatmap=plots.empty_figure("", 320), done=False)
    view = _view(translator, model, translator.stepper_start(str(step_state["source"])), session=session)
    view["status"] = md("The model changed: started again from step 0 with the new model.") + "  \n" + view["status"]
    return view


@gpu()
def step_next(step_state: dict | None, session: Session | None = None) -> dict:
    """The model's most likely next piece."""
    translator, name, stepper = _stepper(step_state, session)
    if stepper.done:
        return _view(translator, name, stepper, message="Decoding has finished.", session=session)
    continuation = _decode(translator, stepper, session)  # it serves the next state too: it is greedy
    return _view(translator, name, translator.stepper_advance(stepper, continuation=continuation), continuation,
                 session=session)


@gpu()
def step_back(step_state: dict | None, session: Session | None = None) -> dict:
    """Undo the last piece."""
    translator, name, stepper = _stepper(step_state, session)
    if not stepper.target_ids:
        return _view(translator, name, stepper, message="Already at the start.", session=session)
    return _view(translator, name, translator.stepper_back(stepper), session=session)


@gpu()
def step_run(step_state: dict | None, session: Session | None = None) -> dict:
    """Greedy decoding to the end, keeping every piece chosen so far."""
    translator, name, stepper = _stepper(step_state, session)
    continuation = None if stepper.done else _decode(translator, stepper, session)
    return _view(translator, name, translator.stepper_run(stepper, continuation), continuation, session=session)


@gpu()
def step_reset(step_state: dict | None, session: Session | None = None) -> dict:
    """Back to step 0 for the same sentence."""
    translator, name, stepper = _stepper(step_state, session)
    return _view(translator, name, translator.stepper_start(stepper.source), session=session)


@gpu()
def step_force(step_state: dict | None, token: str, session: Session | None = None, exact: bool = False) -> dict:
    """Force `token` as the next piece (or pieces) instead of the model's choice, then show what follows.

    exact=True: a clicked candidate, one vocabulary piece. Otherwise typed text (see Translator.piece_ids).
    """
    translator, name, stepper = _stepper(step_state, session)
    if stepper.done:
        raise UserError("Decoding has finished. Press Back (or Reset) first, then force a piece.")
    try:
        ids = translator.piece_ids(token, exact=exact)
    except ValueError as err:
        raise UserError(str(err)) from None
    stepper = translator.stepper_advance(stepper, forced=ids)
    return _view(translator, name, stepper, message=f"Forced: {' '.join(translator.target_tokenizer.pieces(ids))}",
                 session=session)


def _stepper(step_state: dict | None, session: Session | None) -> tuple[Translator, str, StepperState]:
    """The model and StepperState behind the tab's state dict, checked (it comes from the browser)."""
    if not step_state or not step_state.get("source"):
        raise UserError("Type a sentence and press Start first.")
    name = step_state.get("model")
    translator = get_translator(name, session)
    try:
        stepper = StepperState(source=str(step_state["source"]), target_ids=[int(i) for i in step_state["target_ids"]],
                               forced=[bool(f) for f in step_state["forced"]], done=bool(step_state["done"]))
    except (KeyError, TypeError, ValueError):
        raise UserError("The step-by-step state is damaged; press Start again.") from None
    if (len(stepper.forced) != len(stepper.target_ids) or len(stepper.target_ids) > TraceLimits.target_pieces
            or any(not 0 <= i < translator.target_tokenizer.vocab_size for i in stepper.target_ids)):
        raise UserError("The step-by-step state does not fit this model; press Start again.")
    check_text(stepper.source)  # it comes back from the client: the same limit as a typed sentence
    return translator, name, stepper


def _decode(translator: Translator, stepper: StepperState, session: Session | None) -> Continuation:
    """The greedy continuation of the stepper's prefix, resumed from what the session kept (see the top)."""
    kept = translator.stepper_reuse(stepper, session.stepping) if session else None
    continuation = translator.stepper_decode(stepper, kept=kept)
    if session is not None:  # the newest first; the one before it stays for a Back after a Force
        session.stepping = (continuation, *(c for c in session.stepping if c is not continuation))[:2]
    return continuation


def _view(translator: Translator, name: str, stepper: StepperState, continuation: Continuation | None = None,
          message: str = "", session: Session | None = None) -> dict:
    """Everything the Step tab draws for one state, from one greedy decode of its prefix."""
    continuation = continuation or _decode(translator, stepper, session)
    so_far = translator.stepper_trace(stepper, continuation=continuation)
    full, n = continuation.trace, len(stepper.target_ids)
    candidates = full.top_k[n] if len(full.top_k) > n else []
    if len(full.attention) > n:
        alpha, alpha_title = full.attention[n], f"Attention over the source while choosing piece {n + 1}"
    elif n:
        alpha, alpha_title = full.attention[n - 1], f"Attention over the source at the last step ({n})"
    else:
        alpha, alpha_title = None, ""
    if n:
        heatmap = plots.attention_figure(so_far, title=f"Attention so far ({n} piece{'s' * (n != 1)})")
    else:
        heatmap = plots.empty_figure("Press Next: each step adds one row here.", height=320)
    return dict(
        state={"model": name, **stepper.to_dict()},
        prefix=[(piece + " ", "forced" if was_forced else None)
                for piece, was_forced in zip(so_far.target_pieces, stepper.forced)],
        text=readable_text(so_far.target_pieces),
        continuation=readable_text((so_far if stepper.done else full).target_pieces),
        choices=[(f"{plots.piece_name(c.piece)}   {plots.percent(c.prob)}", c.piece) for c in candidates],
        candidates=plots.candidates_figure(candidates),
        step_attention=plots.source_attention_figure(so_far.source_pieces, alpha, alpha_title or "Attention"),
        heatmap=heatmap, status=_status(stepper, message, full.notice), done=stepper.done)


def _status(stepper: StepperState, message: str, notice: str) -> str:
    n, forced = len(stepper.target_ids), sum(stepper.forced)
    status = (f"Step {n}" + (f" · {forced} forced by you" if forced else "")
              + (" · finished (the translation ended with </s> or reached the length limit): press Back to change "
                 "a piece, or Reset" if stepper.done else " · next: the model's top candidates below"))
    return md(status) + (f"  \n{md(message)}" if message else "") + (f"  \n{md(notice)}" if notice else "")
