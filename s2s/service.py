"""What the Gradio app calls: one function per UI event, plain data in and out.

The app (app.py) never imports torch; each of its event handlers calls exactly
one function here and maps the returned dict onto components. Inputs and outputs
are strings, numbers, lists, dicts, plotly figures and file paths.

State lives with the caller, never in this module:

- `session` (a dict made by `new_session`, kept in the browser session's gr.State)
  holds that session's own models: fine-tuned ones and those loaded from the Hub.
  Another session never sees them.
- the step-by-step state is a plain dict (`StepperState.to_dict()` plus the model
  name), also kept in gr.State.

The only module-level mutable object is a read-only cache of the bundled models
(checkpoint folders under `S2S_CHECKPOINTS`, default `checkpoints/`, plus repo ids
in `S2S_MODELS`), loaded once on first use and shared by every session. Nothing
touches the network unless the user loads/pushes a Hub model or S2S_MODELS is set.

Every user mistake raises `UserError` (a ValueError) with a message a person can act
on; the app shows it instead of a stack trace.
"""
from __future__ import annotations

import csv
import html
import io
import json
import logging
import math
import os
import queue
import random
import re
import shutil
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from . import plots
from .api import DecodeOptions, StepperState, Translator
from .data import DataError, decode_text
from .trace import Trace

log = logging.getLogger("s2s.service")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_FILE = ROOT / "assets" / "examples.json"

# Limits, shown in the UI and enforced here.
MAX_INPUT_CHARS = 2000  # one sentence (or a short paragraph) per translation
MAX_PAIRS = 5000  # per fine-tuning run
MAX_EPOCHS = 20
MAX_MINUTES = 10.0  # fine-tuning wall time
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_WORDS = 100  # per side of a training pair; longer pairs are dropped (and counted)
MIN_LR, MAX_LR = 1e-5, 1e-2
HELDOUT_FRACTION = 0.1
MAX_TABLE_ROWS = 50
MAX_SESSION_MODELS = 5  # fine-tuned or Hub models one browser session may hold (server memory)
LANGUAGES = dict(en="English", de="German", fr="French", cs="Czech", es="Spanish", it="Italian")


def _configure_threads() -> None:
    """S2S_THREADS=n caps torch's CPU threads. On a shared or busy CPU one thread per process is often much
    faster than several (oversubscribed threads wait on each other); the default is torch's own."""
    value = os.environ.get("S2S_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        import torch
        torch.set_num_threads(int(value))


_configure_threads()


class UserError(ValueError):
    """Bad input or an impossible request; the message is meant for the person using the app."""


def _gpu(duration: int | None = None) -> Callable:
    """`spaces.GPU` on Hugging Face ZeroGPU (the function gets a GPU while it runs); a no-op elsewhere."""
    try:
        import spaces  # type: ignore[import-not-found]
    except Exception:  # not on a Space, or the package is absent: nothing to do
        return lambda fn: fn
    return spaces.GPU(duration=duration) if duration else spaces.GPU


# ====================================================================== models
_CACHE: dict[str, Translator] = {}
_CACHE_LOCK = threading.Lock()


def checkpoints_dir() -> Path:
    """Where bundled checkpoint folders live: env S2S_CHECKPOINTS, else checkpoints/ in the repository."""
    return Path(os.environ.get("S2S_CHECKPOINTS") or ROOT / "checkpoints")


def _local_models() -> dict[str, Path]:
    folder = checkpoints_dir()
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir())
            if p.is_dir() and not p.name.startswith(".") and (p / "config.json").is_file()}


def _env_models() -> list[str]:
    """Hub repo ids listed in S2S_MODELS (only then is s2s.hub imported)."""
    if not os.environ.get("S2S_MODELS", "").strip():
        return []
    try:
        from .hub import models_from_env
        return list(models_from_env())
    except Exception as err:  # a broken variable must not stop the app from starting
        log.warning("S2S_MODELS ignored: %s", err)
        return []


def bundled_models() -> list[str]:
    """Names of the models every session can use: local checkpoint folders, then S2S_MODELS repo ids."""
    local = list(_local_models())
    return local + [m for m in _env_models() if m not in local]


def new_session() -> dict:
    """A browser session's private data: its own models and a temp folder for its files."""
    return {"models": {}, "dir": None, "fine_tunes": 0}


def close_session(session: dict | None) -> None:
    """Delete a session's temp folder (gr.State calls this when the browser session ends)."""
    if session and session.get("dir"):
        shutil.rmtree(session["dir"], ignore_errors=True)


def _session(session: dict | None) -> dict:
    if session is None:
        return new_session()
    session.setdefault("models", {})
    session.setdefault("fine_tunes", 0)
    return session


def _room_for_a_model(session: dict) -> None:
    if len(session["models"]) >= MAX_SESSION_MODELS:
        raise UserError(f"This browser session already holds {MAX_SESSION_MODELS} models of its own (the server's "
                        "limit). Reload the page to start a fresh session.")


def _session_dir(session: dict) -> Path:
    folder = session.get("dir")
    if not folder or not Path(folder).is_dir():
        folder = tempfile.mkdtemp(prefix="s2s-session-")
        session["dir"] = folder
    return Path(folder)


def model_choices(session: dict | None = None) -> list[str]:
    """Everything the model picker offers this session: bundled models, then the session's own."""
    shared = bundled_models()
    return shared + [name for name in _session(session)["models"] if name not in shared]


def get_translator(name: str | None, session: dict | None = None) -> Translator:
    """The Translator called `name`: this session's own model, or a bundled one (loaded once, cached)."""
    if not name:
        raise UserError("No model is selected. Pick one in the model list, or load one in the Model tab.")
    own = _session(session)["models"].get(name)
    if own is not None:
        return own["translator"]
    local = _local_models()
    key = str(local[name].resolve()) if name in local else f"hub:{name}"  # a path: tests swap S2S_CHECKPOINTS
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        try:
            if name in local:
                translator = Translator.load(local[name], device="auto", name=name)
            elif name in _env_models():
                from .hub import load
                translator = load(name, device="auto")
                translator.name = name
            else:
                raise UserError(f"Unknown model {name!r}. Available: {', '.join(model_choices(session)) or 'none'}.")
        except UserError:
            raise
        except ValueError as err:  # CheckpointError, HubError: already a clear message
            raise UserError(f"Model {name!r} cannot be loaded: {err}") from None
        except Exception as err:
            log.exception("loading %s failed", name)
            raise UserError(f"Model {name!r} cannot be loaded ({type(err).__name__}: {err}).") from None
        _CACHE[key] = translator
        return translator


def preload(names: Sequence[str] | None = None) -> None:
    """Load the bundled models now (ZeroGPU wants models on the GPU at start-up); errors are logged."""
    for name in names if names is not None else bundled_models():
        try:
            get_translator(name)
        except UserError as err:
            log.warning("%s", err)


def _model_folder(name: str, session: dict) -> Path | None:
    own = session["models"].get(name)
    if own is not None:
        return Path(own["folder"]) if own.get("folder") else None
    return _local_models().get(name)


def _examples_for(translator: Translator) -> list[str]:
    """Example sentences for the model's language pair from assets/examples.json."""
    try:
        table = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    pair = f"{translator.config.src_lang}-{translator.config.tgt_lang}"
    return list(table.get(pair) or table.get(translator.config.src_lang) or table.get("default") or [])


def _strip_front_matter(card: str) -> str:
    if card.startswith("---"):
        end = card.find("\n---", 3)
        if end != -1:
            return card[end + 4:].lstrip("\n")
    return card


def describe(translator: Translator) -> str:
    """One line: languages, architecture, vocabulary, device."""
    c = translator.config
    src, tgt = LANGUAGES.get(c.src_lang, c.src_lang), LANGUAGES.get(c.tgt_lang, c.tgt_lang)
    return (f"{src} → {tgt} · {'bidirectional ' if c.bidirectional else ''}{c.rnn.upper()} encoder "
            f"{c.num_layers}×{c.encoder_hidden_size}, decoder {c.hidden_size}, {c.attention} attention"
            f"{' + input feeding' if c.input_feeding else ''} · vocabularies {c.src_vocab_size}/{c.tgt_vocab_size}"
            f" · on {translator.device}")


def model_overview(name: str, session: dict | None = None) -> dict:
    """Model tab and examples: card (markdown, front matter removed), config, one-line summary, examples."""
    session = _session(session)
    translator = get_translator(name, session)
    folder = _model_folder(name, session)
    card = ""
    if folder is not None and (folder / "README.md").is_file():
        card = _strip_front_matter((folder / "README.md").read_text(encoding="utf-8", errors="replace"))
    own = session["models"].get(name, {})
    bundled = name in _local_models()
    origin = own.get("origin", "bundled with the app" if bundled else "from the Hub")
    if not card:
        repo = name.split("@")[0]
        card = ("_This model has no model card (README.md)._" if bundled or own.get("folder") else
                f"_The model card of this model is on the Hub: https://huggingface.co/{_md(repo)}_")
    return dict(name=name, summary=f"**{_md(name)}** ({origin}): {describe(translator)}",
                card=card, config=translator.config.to_dict(),
                examples=_examples_for(translator), length_penalty=translator.config.length_penalty)


def _code(text: str) -> str:
    """Text as a markdown code span: shown literally, whatever characters it holds."""
    text = str(text).replace("\n", " ")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _md(text: str) -> str:
    """Text shown literally inside markdown: HTML escaped, markdown punctuation backslash-escaped."""
    return re.sub(r"([\\`*_\[\]()#+!|~{}])", r"\\\1", html.escape(str(text), quote=False))


# ====================================================================== translation
def _check_text(text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        raise UserError("Type a sentence first.")
    if len(text) > MAX_INPUT_CHARS:
        raise UserError(f"The input has {len(text):,} characters; the limit is {MAX_INPUT_CHARS:,}. "
                        "These models translate one sentence at a time.")
    return text


def _number(value: Any, name: str, cast: Callable = float, low: float | None = None, high: float | None = None):
    try:
        number = cast(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, not {value!r}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise UserError(f"{name} must be a finite number")
    if (low is not None and number < low) or (high is not None and number > high):
        raise UserError(f"{name} must be between {low:g} and {high:g}, not {number:g}")
    return number


def decode_options(method: str = "greedy", beam_size: Any = 5, length_penalty: Any = None, nbest: Any = 1,
                   temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0, seed: Any = None) -> DecodeOptions:
    """UI values -> validated DecodeOptions (clear messages for every bad value)."""
    method = (method or "greedy").strip().lower()
    if method not in ("greedy", "beam", "sample"):
        raise UserError(f"Decoding must be greedy, beam or sample, not {method!r}")
    seed_value = None if seed is None or (isinstance(seed, str) and not seed.strip()) else \
        _number(seed, "Seed", int, 0, 2**31 - 1)
    options = DecodeOptions(
        method=method, beam_size=_number(beam_size, "Beam width", int, 1, 64),
        length_penalty=None if length_penalty is None else _number(length_penalty, "Length penalty", float, 0.0, 5.0),
        nbest=_number(nbest, "n-best", int, 1, 64) if method == "beam" else 1,
        temperature=_number(temperature, "Temperature", float, 0.01, 10.0),
        top_k_sampling=_number(top_k, "Top-k", int, 0, 100000), top_p=_number(top_p, "Top-p", float, 0.01, 1.0),
        seed=seed_value)
    try:
        options.validate()
    except ValueError as err:
        raise UserError(str(err)[:1].upper() + str(err)[1:]) from None
    return options


def _trace_from(trace: dict | str | None) -> Trace:
    """A Trace from the JSON the app keeps (or a client sends back)."""
    if not trace:
        raise UserError("Nothing translated yet: translate a sentence first.")
    try:
        data = json.loads(trace) if isinstance(trace, str) else trace
        result = Trace.from_dict(data)
        if len(result.attention) and any(len(row) != len(result.source_pieces) for row in result.attention):
            raise ValueError("attention rows do not match the source pieces")
        return result
    except (TypeError, ValueError, KeyError) as err:
        raise UserError(f"This is not an s2s trace ({err}).") from None


def coverage_markdown(trace: Trace, merge_words: bool = False) -> str:
    """The coverage flags in words, with the thresholds."""
    items = plots.coverage(trace, merge_words)
    omitted = [i.word for i in items if i.flag == "omission"]
    repeated = [i.word for i in items if i.flag == "repetition"]
    unit = "word" if merge_words else "piece"

    def listing(words: list[str]) -> str:
        return ", ".join(_code(w) for w in words) if words else "none"

    return (f"Possible omissions (source {unit}s with Σₜ αₜᵢ < {plots.OMISSION_BELOW}): {listing(omitted)}.  \n"
            f"Possible repetitions (Σₜ αₜᵢ > {plots.REPETITION_ABOVE}): {listing(repeated)}.")


def _views(trace: Trace, merge_words: bool) -> dict:
    return dict(heatmap=plots.attention_figure(trace, merge_words), coverage=plots.coverage_figure(trace, merge_words),
                coverage_notes=coverage_markdown(trace, merge_words))


def attention_views(trace: dict | str | None, merge_words: bool = False) -> dict:
    """Heatmap, coverage chart and coverage notes of a saved trace (no decoding: the merge switch)."""
    return _views(_trace_from(trace), bool(merge_words))


@_gpu()
def translate(model: str, text: str, method: str = "greedy", beam_size: Any = 5, length_penalty: Any = None,
              nbest: Any = 1, temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0, seed: Any = None,
              merge_words: bool = False, session: dict | None = None) -> dict:
    """Translate one sentence: translation, n-best rows, trace (dict), heatmap, coverage, beam tree, notice."""
    text = _check_text(text)
    options = decode_options(method, beam_size, length_penalty, nbest, temperature, top_k, top_p, seed)
    translator = get_translator(model, session)
    trace = translator.translate(text, options, record_tree=options.method == "beam")
    rows = [[rank, h.text, round(h.score, 4), round(h.logprob, 4)] for rank, h in enumerate(trace.nbest, 1)]
    return dict(translation=trace.translation, nbest=rows, trace=trace.to_dict(), notice=trace.notice,
                beam_tree=plots.beam_tree_figure(trace), **_views(trace, bool(merge_words)))


def _atomic_write(path: Path, data: bytes | str) -> Path:
    """Write next to the target and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _png_bytes(figure, timeout_s: float = 90.0) -> bytes:
    """Render a figure to PNG with kaleido (it drives a headless Chrome/Chromium), with a time limit."""
    if not os.environ.get("BROWSER_PATH") and Path("/usr/bin/chromium").exists():
        os.environ["BROWSER_PATH"] = "/usr/bin/chromium"  # kaleido's way to find a Chromium it did not install
    result: dict = {}

    def render() -> None:
        try:
            result["png"] = figure.to_image(format="png", scale=2)
        except BaseException as err:  # noqa: BLE001 - reported to the caller below
            result["error"] = err

    worker = threading.Thread(target=render, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if "png" in result:
        return result["png"]
    raise RuntimeError(str(result.get("error") or f"no image after {timeout_s:.0f} s"))


def export_trace(trace: dict | str | None, merge_words: bool = False, session: dict | None = None) -> dict:
    """Attention as CSV, the trace as JSON, the heatmap as HTML and (if a Chrome is available) PNG.

    Returns {"files": [paths], "message": markdown}. PNG failing is reported, never fatal.
    """
    result = _trace_from(trace)
    if not result.attention:
        raise UserError("Nothing to export: the trace has no attention weights.")
    session = _session(session)
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=_session_dir(session)))
    view = plots.attention_view(result, merge_words)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["target \\ source", *view.source_labels])
    for target_label, row in zip(view.target_labels, view.matrix):
        writer.writerow([target_label, *(f"{value:.6f}" for value in row)])
    files = [_atomic_write(folder / "attention.csv", table.getvalue()),
             _atomic_write(folder / "trace.json", result.to_json(indent=2) + "\n")]
    figure = plots.attention_figure(result, merge_words)
    files.append(_atomic_write(folder / "attention.html", figure.to_html(include_plotlyjs=True, full_html=True)))
    message = "Exported attention.csv, trace.json and attention.html"
    try:
        files.append(_atomic_write(folder / "attention.png", _png_bytes(figure)))
        message += " and attention.png."
    except Exception as err:  # kaleido missing, or no Chrome to drive: keep the other files
        log.warning("PNG export failed: %s", err)
        message += (". PNG export is not available here (kaleido needs Chrome or Chromium; set BROWSER_PATH to "
                    f"its executable): {_md(str(err).splitlines()[0] if str(err) else type(err).__name__)}. "
                    "The HTML file has the same figure, and its toolbar can save a PNG.")
    return dict(files=[str(p) for p in files], message=message)


@_gpu()
def beam_tree(model: str, text: str, beam_size: Any = 4, length_penalty: Any = None,
              session: dict | None = None) -> dict:
    """Beam search on one sentence with its search tree: {"figure", "translation"}."""
    text = _check_text(text)
    options = decode_options("beam", beam_size, length_penalty, 1)
    trace = get_translator(model, session).translate(text, options, record_tree=True)
    return dict(figure=plots.beam_tree_figure(trace), translation=trace.translation)


# ====================================================================== step by step
def _stepper(state: dict | None, session: dict | None) -> tuple[Translator, str, StepperState]:
    if not state or not state.get("source"):
        raise UserError("Type a sentence and press Start first.")
    name = state.get("model")
    translator = get_translator(name, session)
    try:
        stepper = StepperState(source=str(state["source"]), target_ids=[int(i) for i in state["target_ids"]],
                               forced=[bool(f) for f in state["forced"]], done=bool(state["done"]))
    except (KeyError, TypeError, ValueError):
        raise UserError("The step-by-step state is damaged; press Start again.") from None
    if len(stepper.forced) != len(stepper.target_ids) or any(
            not 0 <= i < translator.target.vocab_size for i in stepper.target_ids):
        raise UserError("The step-by-step state does not fit this model; press Start again.")
    return translator, name, stepper


def _step_view(translator: Translator, name: str, state: StepperState, message: str = "") -> dict:
    """Everything the Step tab draws for one state."""
    trace = translator.stepper_trace(state, extra_step=True)
    n = len(state.target_ids)
    pieces = translator.target.pieces(state.target_ids)
    so_far = Trace(source=trace.source, source_pieces=trace.source_pieces, target_pieces=pieces,
                   translation=translator.target.decode(state.target_ids), attention=trace.attention[:n],
                   step_logprobs=trace.step_logprobs[:n], top_k=trace.top_k[:n], logprob=sum(trace.step_logprobs[:n]),
                   method="step", notice=trace.notice)
    candidates = trace.top_k[n] if len(trace.top_k) > n else []
    if len(trace.attention) > n:
        alpha, alpha_title = trace.attention[n], f"Attention over the source while choosing piece {n + 1}"
    elif n:
        alpha, alpha_title = trace.attention[n - 1], f"Attention over the source at the last step ({n})"
    else:
        alpha, alpha_title = None, ""
    continuation = translator.target.decode(translator.stepper_run(state).target_ids) if not state.done \
        else so_far.translation
    if n:
        heatmap = plots.attention_figure(so_far, title=f"Attention so far ({n} piece{'s' * (n != 1)})")
    else:
        heatmap = plots.empty_figure("Press Next: each step adds one row here.", height=320)
    forced = sum(state.forced)
    status = (f"Step {n}" + (f" · {forced} forced by you" if forced else "")
              + (" · finished (the translation ended with </s> or reached the length limit): press Back to change "
                 "a piece, or Reset" if state.done else " · next: the model's top candidates below"))
    return dict(
        state={"model": name, **state.to_dict()},
        prefix=[(piece + " ", "forced" if was_forced else None) for piece, was_forced in zip(pieces, state.forced)],
        text=so_far.translation, continuation=continuation,
        choices=[(f"{c.piece}   {c.prob:.1%}", c.piece) for c in candidates],
        candidates=plots.candidates_figure(candidates),
        step_attention=plots.source_attention_figure(trace.source_pieces, alpha, alpha_title or "Attention"),
        heatmap=heatmap, status=_md(status) + (f"  \n{_md(message)}" if message else "") +
        (f"  \n{_md(trace.notice)}" if trace.notice else ""), done=state.done)


@_gpu()
def step_start(model: str, text: str, session: dict | None = None) -> dict:
    """Begin decoding `text` one piece at a time (nothing decoded yet)."""
    text = _check_text(text)
    translator = get_translator(model, session)
    return _step_view(translator, model, translator.stepper_start(text))


@_gpu()
def step_next(state: dict | None, session: dict | None = None) -> dict:
    """The model's most likely next piece."""
    translator, name, stepper = _stepper(state, session)
    if stepper.done:
        return _step_view(translator, name, stepper, "Decoding has finished.")
    return _step_view(translator, name, translator.stepper_advance(stepper))


@_gpu()
def step_back(state: dict | None, session: dict | None = None) -> dict:
    """Undo the last piece."""
    translator, name, stepper = _stepper(state, session)
    if not stepper.target_ids:
        return _step_view(translator, name, stepper, "Already at the start.")
    return _step_view(translator, name, translator.stepper_back(stepper))


@_gpu()
def step_run(state: dict | None, session: dict | None = None) -> dict:
    """Greedy decoding to the end, keeping every piece chosen so far."""
    translator, name, stepper = _stepper(state, session)
    return _step_view(translator, name, translator.stepper_run(stepper))


@_gpu()
def step_reset(state: dict | None, session: dict | None = None) -> dict:
    """Back to step 0 for the same sentence."""
    translator, name, stepper = _stepper(state, session)
    return _step_view(translator, name, translator.stepper_start(stepper.source))


def _forced_ids(translator: Translator, token: str, exact: bool) -> list[int]:
    """What the user wants to force -> target ids.

    exact=True (a clicked candidate): the string is a vocabulary piece. Otherwise (typed): the piece itself if
    it starts with ▁ or is </s>; else the word-initial piece "▁token", then the piece "token"; else the text is
    split into pieces by the target tokenizer and all of them are forced in order.
    """
    sp, unk = translator.target.sp, translator.config.unk_id
    if not exact:
        token = (token or "").strip()
    if not token:
        raise UserError("Type a piece or a word to force (e.g. a word of the target language, or </s> to stop).")
    if len(token) > 200:
        raise UserError("That is too long to force; type one word or piece.")
    if token in ("<s>", "<pad>"):
        raise UserError(f"{token} cannot be forced: it never appears inside a translation.")

    def known(piece: str) -> int | None:
        piece_id = sp.piece_to_id(piece)
        return piece_id if piece_id != unk or piece == "<unk>" else None

    if exact:
        piece_id = known(token)
        if piece_id is None:
            raise UserError(f"{token!r} is not a piece of this model's target vocabulary.")
        return [piece_id]
    tries = [token] if token.startswith(plots.WORD_START) or token in plots.SPECIAL_PIECES \
        else [plots.WORD_START + token, token]
    for piece in tries:
        piece_id = known(piece)
        if piece_id is not None:
            return [piece_id]
    ids = translator.target.encode(token)
    if not ids:
        raise UserError(f"{token!r} gives no target pieces.")
    return ids


@_gpu()
def step_force(state: dict | None, token: str, session: dict | None = None, exact: bool = False) -> dict:
    """Force `token` as the next piece (or pieces) instead of the model's choice, then show what follows."""
    translator, name, stepper = _stepper(state, session)
    if stepper.done:
        raise UserError("Decoding has finished. Press Back (or Reset) first, then force a piece.")
    ids = _forced_ids(translator, token, exact)
    for piece_id in ids:
        if stepper.done:
            break
        stepper = translator.stepper_advance(stepper, forced_token=piece_id)
    forced = " ".join(translator.target.pieces(ids))
    return _step_view(translator, name, stepper, f"Forced: {forced}")


# ====================================================================== fine-tuning
PairRows = list[tuple[str, str, bool]]  # (source, target, held out)
HELDOUT_MARKS = {"test", "heldout", "held-out", "held out", "dev", "eval"}
TRAIN_MARKS = {"", "train", "training"}


def _decode_upload(data: bytes, name: str) -> str:
    try:
        return decode_text(data, name, MAX_FILE_BYTES)
    except DataError as err:
        raise UserError(f"{err}. Upload a UTF-8 TSV/CSV or plain text file.") from None


def _role(mark: str, where: str) -> bool:
    mark = mark.strip().lower()
    if mark in HELDOUT_MARKS:
        return True
    if mark in TRAIN_MARKS:
        return False
    raise UserError(f"{where}: the third column must be 'test' (held out) or 'train' (or empty), not {mark!r}.")


def parse_pair_text(text: str, name: str = "Text box") -> PairRows:
    """source<TAB>target[<TAB>test] lines, or CSV rows source,target[,test] with an optional header."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    rows: PairRows = []
    if any("\t" in line for line in lines[:50]):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) not in (2, 3):
                raise UserError(f"{name}, line {number}: expected source<TAB>target (optionally <TAB>test), "
                                f"found {len(cols)} column{'s' * (len(cols) != 1)}.")
            rows.append((cols[0], cols[1], _role(cols[2], f"{name}, line {number}") if len(cols) == 3 else False))
        return rows
    try:
        records = list(csv.reader(io.StringIO(text)))
    except csv.Error as err:
        raise UserError(f"{name} cannot be read as CSV: {err}") from None
    for number, row in enumerate(records, 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) not in (2, 3):
            raise UserError(f"{name}, line {number}: expected two columns, source<TAB>target (or CSV source,target), "
                            f"found {len(row)}.")
        if not rows and [c.strip().lower() for c in row[:2]] in (["source", "target"], ["src", "tgt"]):
            continue  # header row
        rows.append((row[0], row[1], _role(row[2], f"{name}, line {number}") if len(row) == 3 else False))
    return rows


def _file_path(item: Any) -> Path:
    path = item if isinstance(item, (str, Path)) else getattr(item, "name", None) or (
        item.get("path") if isinstance(item, dict) else None)
    if not path:
        raise UserError("An uploaded file could not be read.")
    return Path(path)


def read_training_pairs(text: str | None, files: Sequence[Any] | None = None) -> tuple[PairRows, str]:
    """Pairs from the text box and/or uploaded files (one TSV/CSV, or two line-aligned text files)."""
    rows: PairRows = []
    sources: list[str] = []
    if text and text.strip():
        if len(text.encode("utf-8")) > MAX_FILE_BYTES:
            raise UserError(f"The pasted text is over {MAX_FILE_BYTES // 1_000_000} MB; upload a file instead.")
        rows += parse_pair_text(text)
        sources.append(f"{len(rows)} pairs from the text box")
    paths = [_file_path(f) for f in (files or [])]
    if len(paths) == 1:
        file_rows = parse_pair_text(_decode_upload(paths[0].read_bytes(), paths[0].name), paths[0].name)
        rows += file_rows
        sources.append(f"{len(file_rows)} pairs from {paths[0].name}")
    elif len(paths) == 2:
        src, tgt = (_decode_upload(p.read_bytes(), p.name).splitlines() for p in paths)
        if len(src) != len(tgt):
            raise UserError(f"{paths[0].name} has {len(src)} lines but {paths[1].name} has {len(tgt)}; the two "
                            "files must be line-aligned (line n of one translates line n of the other).")
        file_rows = [(s, t, False) for s, t in zip(src, tgt) if s.strip() or t.strip()]
        rows += file_rows
        sources.append(f"{len(file_rows)} pairs from {paths[0].name} + {paths[1].name}")
    elif len(paths) > 2:
        raise UserError("Upload one TSV/CSV file, or two line-aligned text files (source, target).")
    if not rows:
        raise UserError("No sentence pairs: paste lines of source<TAB>target, or upload a TSV/CSV file.")
    return rows, ", ".join(sources)


def split_pairs(rows: PairRows, seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]], str]:
    """(train, held out, note): the rows marked 'test', else a seeded 10% (at least one pair)."""
    from .data import clean_pairs

    train_raw = [(s, t) for s, t, held in rows if not held]
    held_raw = [(s, t) for s, t, held in rows if held]
    if not held_raw:
        count = max(1, round(HELDOUT_FRACTION * len(rows)))
        chosen = set(random.Random(seed).sample(range(len(train_raw)), min(count, max(len(train_raw) - 1, 0))))
        held_raw = [p for i, p in enumerate(train_raw) if i in chosen]
        train_raw = [p for i, p in enumerate(train_raw) if i not in chosen]
        how = f"{len(held_raw)} held out at random (10%, at least 1)"
    else:
        how = f"{len(held_raw)} held out (marked 'test')"
    train, train_report = clean_pairs(train_raw, MAX_WORDS)
    heldout, held_report = clean_pairs(held_raw, MAX_WORDS)
    dropped = sum(train_report.dropped.values()) + sum(held_report.dropped.values())
    note = f"{len(train)} training pairs, {how}"
    if dropped:
        reasons = train_report.dropped + held_report.dropped
        note += f"; dropped {dropped} ({', '.join(f'{n} {r}' for r, n in reasons.most_common())})"
    return train, heldout, note


def validate_fine_tune(rows: PairRows, epochs: Any, lr: Any) -> tuple[int, float]:
    if len(rows) > MAX_PAIRS:
        raise UserError(f"{len(rows):,} pairs; the limit is {MAX_PAIRS:,} per fine-tuning run.")
    if len(rows) < 2:
        raise UserError("At least 2 pairs are needed: one or more to train on and one held out to measure the change.")
    return (_number(epochs, "Epochs", int, 1, MAX_EPOCHS),
            _number(lr, "Learning rate", float, MIN_LR, MAX_LR))


def new_cancel_token() -> threading.Event:
    """A fresh cancel flag for one fine-tuning run (kept in the session's gr.State)."""
    return threading.Event()


def cancel_fine_tune(token: threading.Event | None) -> str:
    """Ask a running fine-tuning to stop after its current batch."""
    if token is None or not hasattr(token, "set"):
        return "Nothing is running."
    token.set()
    return "Cancelling: training stops after the current batch."


def _batch_tokens(examples: Sequence[tuple[list[int], list[int]]]) -> int:
    """About 8 updates per epoch on small data (a few hundred pairs), capped at 1500 target tokens."""
    total = sum(len(t) + 1 for _, t in examples)
    return int(min(1500, max(200, total // 8)))


def _zip_folder(folder: Path) -> Path:
    """folder.zip next to the folder, written under a temporary name and renamed (atomic)."""
    partial = shutil.make_archive(str(folder.parent / f".{folder.name}.partial"), "zip",
                                  root_dir=folder.parent, base_dir=folder.name)
    final = folder.parent / f"{folder.name}.zip"
    os.replace(partial, final)
    return final


def _translation_table(sources: list[str], refs: list[list[str]], before: list[str], after: list[str] | None
                       ) -> list[list[str]]:
    return [[s, r[0], b] + ([a] if after is not None else [])
            for s, r, b, a in zip(sources[:MAX_TABLE_ROWS], refs, before, after or before)]


@_gpu(duration=MAX_MINUTES * 60 + 60)
def fine_tune(base_model: str, pairs_text: str | None = None, files: Sequence[Any] | None = None, epochs: Any = 3,
              lr: Any = 5e-4, session: dict | None = None, cancel: threading.Event | None = None
              ) -> Iterator[dict]:
    """Fine-tune a copy of `base_model` on the user's pairs; yield progress dicts, the last one with the model.

    Every dict has "progress" (0..1), "status" (markdown) and "loss" (figure); the first adds the held-out
    "table" with the base model's translations; the last adds "table" (before/after), "bleu", "choices",
    "selected", "zip" and "session". Cancelling (the `cancel` Event) stops after the current batch and adds
    no model. Errors in the input raise UserError before training starts.
    """
    from .card import model_card
    from .data import group_references, token_batches
    from .train import corpus_bleu, encode_pairs, validation_loss
    from .train import fine_tune as train_copy

    session = _session(session)
    _room_for_a_model(session)
    cancel = cancel if cancel is not None and hasattr(cancel, "is_set") else threading.Event()
    rows, origin = read_training_pairs(pairs_text, files)
    epochs, lr = validate_fine_tune(rows, epochs, lr)
    base = get_translator(base_model, session)
    train, heldout, note = split_pairs(rows)
    if not train or not heldout:
        raise UserError(f"After cleaning: {note}. Both the training and the held-out part need at least one pair.")
    examples = encode_pairs(train, base.source, base.target, base.config.max_src_tokens)
    batch_tokens = _batch_tokens(examples)
    per_epoch = sum(1 for _ in token_batches(examples, batch_tokens, seed=1, shuffle=False))
    total_steps = max(1, per_epoch * epochs)
    sources, refs = group_references(heldout)
    intro = f"Read {origin}: {note}. {epochs} epoch{'s' * (epochs != 1)} × {per_epoch} updates, learning rate {lr:g}."
    yield dict(progress=0.0, status=_md(intro + " Translating the held-out pairs with the base model…"),
               loss=plots.loss_figure([], []))
    before = base.translate_batch(sources)
    bleu_before = corpus_bleu(before, refs).score
    # The base model's held-out loss is the curve's starting point (step 0), measured like the trainer does it.
    held_examples = encode_pairs([(s, r[0]) for s, r in zip(sources, refs)], base.source, base.target,
                                 base.config.max_src_tokens)
    heldout_points: list[tuple[float, float]] = [
        (0, validation_loss(base.model, list(token_batches(held_examples, 4000, seed=0, shuffle=False)), base.device))]
    train_points: list[tuple[float, float]] = []
    yield dict(progress=0.0, status=_md(intro + " Training…"), table=_translation_table(sources, refs, before, None),
               loss=plots.loss_figure(train_points, heldout_points))

    events: queue.Queue = queue.Queue()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["model"], outcome["state"] = train_copy(
                base, train, heldout, epochs=epochs, lr=lr, batch_tokens=batch_tokens, seed=1,
                callback=events.put, cancel=cancel, max_minutes=MAX_MINUTES)
        except BaseException as err:  # noqa: BLE001 - handed to the generator below
            outcome["error"] = err
        finally:
            events.put(None)

    worker = threading.Thread(target=work, name="s2s-fine-tune", daemon=True)
    last_status, last_yield, progress = "", 0.0, 0.0
    try:
        worker.start()
        while True:
            try:
                event = events.get(timeout=1.0)
            except queue.Empty:
                continue
            if event is None:
                break
            if event.kind == "step":
                train_points.append((event.step, event.loss))
                progress = min(0.99, event.step / total_steps)
                last_status = (f"Epoch {event.epoch + 1}/{epochs}, update {event.step}/{total_steps}: training loss "
                               f"{event.loss:.3f}, {event.tokens_per_s:,.0f} target tokens/s, {event.elapsed_s:.0f} s")
            elif event.kind == "eval":
                heldout_points.append((event.step, event.val_loss))
                bleu = "" if math.isnan(event.val_bleu) else f", held-out BLEU {event.val_bleu:.1f}"
                last_status = f"After epoch {event.epoch}: held-out loss {event.val_loss:.3f}{bleu}"
            else:
                continue  # "done": the final update below says it
            now = time.monotonic()
            if event.kind != "step" or now - last_yield > 0.5:
                last_yield = now
                yield dict(progress=progress, status=_md(last_status),
                           loss=plots.loss_figure(train_points, heldout_points))
    finally:
        if worker.is_alive():  # the client went away mid-run: stop training instead of leaking the thread
            cancel.set()
    if "error" in outcome:
        err = outcome["error"]
        log.error("fine-tuning failed", exc_info=err)
        raise UserError(f"Fine-tuning failed: {type(err).__name__}: {err}")
    state = outcome["state"]
    if cancel.is_set():
        yield dict(progress=1.0, loss=plots.loss_figure(train_points, heldout_points),
                   status=_md(f"Cancelled after {state.step} updates. No model was added; "
                              f"the base model {base_model} is unchanged."))
        return
    tuned: Translator = outcome["model"]
    after = tuned.translate_batch(sources)
    bleu_after = corpus_bleu(after, refs).score
    session["fine_tunes"] += 1
    name = f"{base_model.rsplit('/', 1)[-1]}-ft{session['fine_tunes']}"
    while name in model_choices(session):
        session["fine_tunes"] += 1
        name = f"{base_model.rsplit('/', 1)[-1]}-ft{session['fine_tunes']}"
    tuned.name = name
    fine_tune_info = dict(pairs=len(train), heldout=len(heldout), epochs=epochs, lr=lr, base=base_model,
                          bleu_before=round(bleu_before, 2), bleu_after=round(bleu_after, 2))
    training = {"recipe": {"name": name, "corpus": "user pairs", "lr": lr, "max_epochs": epochs,
                           "batch_tokens": batch_tokens}, "state": asdict(state), "fine_tune": fine_tune_info}
    card = model_card(tuned.config, training, base_model=base_model, fine_tune=fine_tune_info)
    from .checkpoint import save_checkpoint
    # fp16 storage halves the download; loading restores fp32 (the bundled checkpoints are stored the same way)
    folder = save_checkpoint(_session_dir(session) / name, tuned.model, tuned.source, tuned.target, card=card,
                             training=training, half=True)
    archive = _zip_folder(folder)
    session["models"][name] = dict(translator=tuned, folder=str(folder), zip=str(archive),
                                   origin=f"fine-tuned in this browser session from {base_model}")
    yield dict(progress=1.0, loss=plots.loss_figure(train_points, heldout_points),
               status=_md(f"Done in {state.elapsed_s:.1f} s ({state.step} updates). New model: {name} — it is now "
                          "in the model list of this browser session only; download it below."),
               table=_translation_table(sources, refs, before, after),
               bleu=(f"Held-out BLEU ({len(sources)} sentence{'s' * (len(sources) != 1)}): base "
                     f"**{bleu_before:.1f}** → fine-tuned **{bleu_after:.1f}**"),
               choices=model_choices(session), selected=name, zip=str(archive), session=session)


# ====================================================================== the Hub
REPO_ID = re.compile(r"^(?:https://huggingface\.co/)?([A-Za-z0-9][\w.-]{0,95})/([\w.-]{1,96})/?$")


def _repo_id(spec: str | None) -> str:
    spec = (spec or "").strip()
    match = REPO_ID.match(spec)
    if not match:
        raise UserError("Give a Hub repository id such as user/s2s-en-de (or its https://huggingface.co/ address).")
    return f"{match.group(1)}/{match.group(2)}"


def load_from_hub(spec: str, revision: str | None = None, session: dict | None = None) -> dict:
    """Download and load a model from the Hub into this session: {"choices", "selected", "message", "session"}."""
    session = _session(session)
    repo_id = _repo_id(spec)
    revision = (revision or "").strip() or None
    name = repo_id + (f"@{revision}" if revision else "")
    if name not in session["models"]:
        _room_for_a_model(session)
        try:
            from .hub import load
        except Exception as err:
            raise UserError(f"Hub support is not available in this installation ({type(err).__name__}: {err}).") \
                from None
        try:
            translator = load(repo_id, revision=revision, device="auto")
        except ValueError as err:  # HubError / CheckpointError: a clear message already
            raise UserError(f"Could not load {name}: {err}") from None
        except Exception as err:
            log.exception("Hub load of %s failed", name)
            raise UserError(f"Could not load {name} ({type(err).__name__}: {err}).") from None
        translator.name = name
        folder = getattr(translator, "folder", None)
        session["models"][name] = dict(translator=translator, folder=str(folder) if folder else None,
                                       origin=f"loaded from the Hub in this browser session")
    return dict(choices=model_choices(session), selected=name, session=session,
                message=f"Loaded **{_md(name)}**: {_md(describe(session['models'][name]['translator']))}. "
                        "It is in the model list of this browser session.")


def push_to_hub(model: str, repo_id: str, token: str | None, private: bool = True,
                session: dict | None = None) -> str:
    """Upload a model folder (e.g. this session's fine-tuned model) to the Hub; returns a markdown message.

    The token is used for this one call and never stored or logged.
    """
    session = _session(session)
    repo = _repo_id(repo_id)
    token = (token or "").strip()
    if not token:
        raise UserError("Paste a Hugging Face access token with write permission (it is not stored).")
    folder = _model_folder(model, session) if model else None
    if folder is None or not folder.is_dir():
        raise UserError(f"{model or 'No model'} has no local checkpoint folder to upload; fine-tune a model first.")
    try:
        from .hub import push
    except Exception as err:
        raise UserError(f"Hub support is not available in this installation ({type(err).__name__}: {err}).") from None
    try:
        url = push(str(folder), repo, token=token, private=bool(private))
    except Exception as err:
        message = str(err).replace(token, "***")
        raise UserError(f"Upload to {repo} failed: {message}") from None
    return f"Uploaded **{_md(model)}** to [{_md(repo)}]({url})."
