"""s2s: a translator that shows its reasoning (Gradio app; also the Hugging Face Space entry point).

This file only builds the interface: one function per tab, each with its components and, next to them, the
events that use them. Every event handler calls exactly one function of `s2s.service`, which takes and
returns plain data (strings, numbers, lists, dicts, plotly figures, file paths), and answers with a
{component: value} dict; there is no torch here. Per-user data lives in gr.State: the browser session's
`Session` (its own models, fine-tuned or loaded from the Hub), the step-by-step state and the cancel flag
of a fine-tuning run.

Run locally:  python app.py   (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change where it listens;
S2S_CHECKPOINTS to point at another folder of checkpoint folders; S2S_MODELS for Hub repo ids).
"""
from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import reprlib
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # start without network
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from s2s import service  # noqa: E402
from s2s.plots import OMISSION_BELOW, REPETITION_ABOVE  # noqa: E402

log = logging.getLogger("s2s.app")
ASSETS = Path(__file__).resolve().parent / "assets"
THEME = gr.themes.Soft(primary_hue="blue", secondary_hue="orange")
CSS = (ASSETS / "style.css").read_text(encoding="utf-8") if (ASSETS / "style.css").is_file() else ""
DECODE_LIMIT = 4  # translations and decoding steps served at once
TREE_MAX_WIDTH = 8  # a wider beam tree is too dense to read
RANGES = service.DecodeOptions.RANGES
HEADER = """# s2s — a translator that shows its reasoning
An LSTM encoder–decoder with attention (Luong et al., 2015). Type a sentence and see **where the model looks**
(the attention weights αₜᵢ), decode it **one word piece at a time** and force other choices to see what changes,
then **fine-tune** it on your own sentence pairs — all in the browser."""
ATTENTION_HELP = f"""Each row is one target piece the model wrote, each column a source piece; a cell is αₜᵢ, the share
of attention the decoder gave source piece *i* while writing target piece *t* (each row sums to 1). Pieces are
SentencePiece subwords: `▁` marks the first piece of a word.
**Merge pieces into words:** a source word gets the *sum* of its pieces' columns (rows still sum to 1), a target
word the *mean* of its pieces' rows. **Coverage** is each column's total Σₜ αₜᵢ: below {OMISSION_BELOW} the model
barely looked at the word (possibly left out), above {REPETITION_ABOVE} it looked far more than once (possibly
translated twice). `</s>` (end of sentence) is never flagged: the model parks attention there. These are hints,
not proof: attention is not a full explanation of a prediction."""
FINE_TUNE_HELP = f"""Paste sentence pairs, one per line: `source<TAB>target`, or upload a TSV/CSV file (two columns, an
optional header `source,target`) or two line-aligned text files. A third column `test` marks pairs to hold out;
otherwise 10% (at least one pair) are held out at random. The held-out pairs are translated before and after, with
BLEU. **Limits:** {service.MAX_PAIRS:,} pairs, {service.MAX_EPOCHS} epochs, {service.MAX_MINUTES:.0f} minutes,
files up to {service.MAX_FILE_BYTES // 1_000_000} MB, pairs longer than {service.MAX_WORDS} words are dropped,
{service.MAX_SESSION_MODELS} models of your own per browser session.
One run at a time on this server (others wait in the queue). The base model is never changed: the result is a new
model that only this browser tab sees, and you can download it as a checkpoint folder (zip)."""
PAIRS_PLACEHOLDER = ("A man is riding a bicycle.\tEin Mann fährt Fahrrad.\n"
                     "Two dogs play in the snow.\tZwei Hunde spielen im Schnee.")
STEP_HELP = ("Decode one piece at a time. At each step you see the model's top candidates and where it looks in "
             "the source. Pick another candidate (or type a word) to force it, and see how the rest of the "
             "translation changes.")
TREE_HELP = ("Beam search keeps the *k* best partial translations at every step. Nodes are hypotheses (hover: "
             "cumulative log-prob), grey ones were pruned, green diamonds finished with `</s>`; the red path is "
             "the best translation.")
PUSH_HELP = ("Uploads the checkpoint folder of the model selected at the top (e.g. your fine-tuned model) with its "
             "model card. The token is used for this upload only; it is never stored or logged.")


def friendly(fn):
    """Show service errors as a message in the UI (gr.Error), never as a stack trace."""

    def translate_error(err: Exception, name: str) -> gr.Error:  # name: the handler's, as the app renamed it
        if isinstance(err, gr.Error):
            return err
        if isinstance(err, ValueError):  # UserError, DataError, CheckpointError, HubError
            return refuse(name, str(err))
        log.exception("unexpected error in %s", name)
        return gr.Error(f"Something went wrong ({type(err).__name__}); the details are in the server log.",
                        print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - shown to the user
                raise translate_error(err, stream.__name__) from None
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - shown to the user
            raise translate_error(err, call.__name__) from None
    return call


def refuse(event: str, message: str) -> gr.Error:
    """A refused request: the message for the person (or API client), and one line in the log, never a traceback."""
    log.info("refused %s: %s", event, message.splitlines()[0][:300] if message else "")
    return gr.Error(message, print_exception=False)


class Blocks(gr.Blocks):
    """gr.Blocks whose refusal of a malformed API value names the input and says what it must be, and logs one
    line. (Gradio answers a string for a slider with {"error": null} and logs a 27-line traceback.)"""

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        event = f"/{block_fn.api_name or block_fn.name}"
        wanted = [c for c in block_fn.inputs if not c.stateful]
        if len(inputs) < len(block_fn.inputs):
            raise refuse(event, f"{event} takes {len(wanted)} inputs ({', '.join(_name(c) for c in wanted)}); "
                                "some are missing.")
        for component, value in zip(block_fn.inputs, inputs):
            if not component.stateful and state is not None and component._id in state:
                component = state[component._id]  # as this session sees it (e.g. its own model choices)
            if problem := _problem(component, value):
                raise refuse(event, problem)
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except gr.Error as err:  # e.g. a value that is not one of a dropdown's choices
            raise refuse(event, str(err.message)) from None
        except Exception as err:  # noqa: BLE001 - any other value gradio cannot read
            raise refuse(event, f"An input of {event} has the wrong type or shape ({type(err).__name__}).") from None


def _name(component) -> str:
    return str(component.label or type(component).__name__)


def _problem(component, value) -> str | None:
    """What is wrong with an API value for this component, in words (None: nothing gradio would not handle)."""
    shown = reprlib.repr(value)  # cut short: it may be megabytes
    if isinstance(component, (gr.Slider, gr.Number)) and not (value is None and isinstance(component, gr.Number)):
        low, high = component.minimum, component.maximum
        bounds = f" between {low:g} and {high:g}" if low is not None and high is not None else ""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{_name(component)} must be a finite number{bounds}, not {shown}."
        if (low is not None and value < low) or (high is not None and value > high):
            return f"{_name(component)} must be{bounds}, not {value:g}."
    elif isinstance(component, (gr.Dropdown, gr.Radio)) and not getattr(component, "allow_custom_value", False) \
            and value is not None and value not in (choices := [choice for _, choice in component.choices]):
        return f"{_name(component)} must be one of {reprlib.repr(choices)}, not {shown}."
    elif isinstance(component, gr.Checkbox) and not isinstance(value, bool):
        return f"{_name(component)} must be true or false, not {shown}."
    elif isinstance(component, gr.Textbox) and isinstance(value, (list, dict, bool)):
        return f"{_name(component)} must be text, not {shown}."
    elif isinstance(component, gr.File) and value is not None and not all(
            isinstance(v, dict) and isinstance(v.get("path"), str) for v in (value if isinstance(value, list)
                                                                             else [value])):
        return (f"{_name(component)}: upload each file first (POST /gradio_api/upload) and pass the list of "
                "what it returns (gradio_client: [handle_file(path)]).")
    return None


def slider(field: str, value: float, step: float, label: str, high: float | None = None, **kwargs) -> gr.Slider:
    """A slider over the valid range of a decoding option (DecodeOptions.RANGES)."""
    low, top = RANGES[field]
    return gr.Slider(low, top if high is None else min(high, top), value=value, step=step, label=label, **kwargs)


# ---------------------------------------------------------------------- 1. Translate
def translate_tab(model_picker: gr.Dropdown, session_state: gr.State) -> SimpleNamespace:
    with gr.Tab("Translate", id="translate"):
        with gr.Row():
            with gr.Column(scale=3):
                source = gr.Textbox(label="Source sentence", lines=3, max_length=service.MAX_INPUT_CHARS,
                                    placeholder="Type a sentence in the model's source language", elem_id="source")
                examples = gr.Dataset(components=[source], samples=[], label="Examples (click one)",
                                      samples_per_page=6, elem_id="translate-examples")
                translate_btn = gr.Button("Translate", variant="primary", elem_id="translate-btn")
                translation = gr.Textbox(label="Translation", lines=2, interactive=False, buttons=["copy"],
                                         elem_id="translation", elem_classes="s2s-translation")
            with gr.Column(scale=2):
                d = decoding_controls()
                nbest_table = gr.Dataframe(headers=["#", "translation", "score", "log-prob"],
                                           label="n-best list (score = length-normalised log-prob)",
                                           interactive=False, wrap=True, column_widths=["8%", "52%", "20%", "20%"])
        merge = gr.Checkbox(label="Merge subword pieces into words", value=False,
                            info="source word: sum of its pieces' attention; target word: mean of its pieces' rows")
        heatmap = gr.Plot(label="Attention heatmap", elem_id="heatmap")
        coverage = gr.Plot(label="Coverage", elem_id="coverage")
        coverage_notes = gr.Markdown(label="Coverage notes", elem_id="coverage-notes")
        gr.Markdown(ATTENTION_HELP, elem_classes="s2s-note")
        with gr.Accordion("Beam search tree (with beam decoding)", open=False):
            beam_tree = gr.Plot(label="Beam tree", elem_id="beam-tree")
        with gr.Accordion("Export: CSV, JSON, HTML, PNG", open=False):
            export_btn = gr.Button("Export the attention of this translation")
            export_files = gr.File(label="Files", file_count="multiple", interactive=False)
            export_message = gr.Markdown(label="Export message")
        with gr.Accordion("Trace (JSON, as returned by the /translate API)", open=False):
            trace_json = gr.JSON(label="Trace")

    @friendly
    def on_translate(model, text, method, beam_size, length_penalty, nbest, temperature, top_k, top_p, seed, merge,
                     session):
        result = service.translate(model, text, method, beam_size, length_penalty, nbest, temperature, top_k,
                                   top_p, seed, merge, session)
        if result["notice"]:
            gr.Warning(result["notice"])
        return {translation: result["translation"], nbest_table: result["nbest"], heatmap: result["heatmap"],
                coverage: result["coverage"], coverage_notes: result["coverage_notes"],
                beam_tree: result["beam_tree"], trace_json: result["trace"]}

    @friendly
    def on_merge(trace, merge):
        views = service.attention_views(trace, merge)
        return {heatmap: views["heatmap"], coverage: views["coverage"], coverage_notes: views["coverage_notes"]}

    @friendly
    def on_export(trace, merge, session):
        result = service.export_trace(trace, merge, session)
        return {export_files: result["files"], export_message: result["message"]}

    gr.on([translate_btn.click, source.submit], on_translate,
          [model_picker, source, d.method, d.beam_size, d.length_penalty, d.nbest, d.temperature, d.top_k, d.top_p,
           d.seed, merge, session_state],
          [translation, nbest_table, heatmap, coverage, coverage_notes, beam_tree, trace_json], api_name="translate",
          concurrency_limit=DECODE_LIMIT, concurrency_id="decode")
    merge.input(on_merge, [trace_json, merge], [heatmap, coverage, coverage_notes], api_name="attention_views")
    export_btn.click(on_export, [trace_json, merge, session_state], [export_files, export_message], api_name="export",
                     concurrency_limit=2)
    return SimpleNamespace(source=source, examples=examples, length_penalty=d.length_penalty)


def decoding_controls() -> SimpleNamespace:
    """The decoding method and, shown for the method chosen, its options."""
    method = gr.Radio(list(service.DecodeOptions.METHODS), value="greedy", label="Decoding",
                      info="greedy: most likely piece each step; beam: keep several hypotheses; sample: draw at random")
    with gr.Group(visible=False) as beam_controls:
        beam_size = slider("beam_size", 5, 1, "Beam width")
        length_penalty = slider("length_penalty", 1.0, 0.1, "Length penalty α",
                                info="score = log p / length^α (0: no normalisation)")
        nbest = slider("nbest", 3, 1, "n-best", info="at most the beam width")
    with gr.Group(visible=False) as sample_controls:
        temperature = slider("temperature", 1.0, 0.05, "Temperature")
        top_k = slider("top_k", 0, 1, "Top-k (0: off)")
        top_p = slider("top_p", 1.0, 0.05, "Top-p (nucleus)")
        seed = gr.Number(value=1, precision=0, label="Seed (empty: random)")
    method.change(lambda m: {beam_controls: gr.Group(visible=m == "beam"), sample_controls: gr.Group(visible=m == "sample")},
                  method, [beam_controls, sample_controls], api_name="decoding_controls", api_visibility="private",
                  queue=False)
    return SimpleNamespace(method=method, beam_size=beam_size, length_penalty=length_penalty, nbest=nbest,
                           temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)


# ---------------------------------------------------------------------- 2. Step by step
def step_tab(model_picker: gr.Dropdown, session_state: gr.State) -> SimpleNamespace:
    with gr.Tab("Step by step", id="step"):
        gr.Markdown(STEP_HELP, elem_classes="s2s-note")
        with gr.Row():
            source = gr.Textbox(label="Source sentence", scale=4, elem_id="step-source",
                                max_length=service.MAX_INPUT_CHARS)
            start_btn = gr.Button("Start", variant="primary", scale=1, elem_id="step-start")
        with gr.Row():
            next_btn = gr.Button("Next ▶", elem_id="step-next")
            back_btn = gr.Button("◀ Back", elem_id="step-back")
            run_btn = gr.Button("Run to end ▸▸", elem_id="step-run")
            reset_btn = gr.Button("Reset ↺", elem_id="step-reset")
        status = gr.Markdown(label="Step status", elem_id="step-status")
        prefix = gr.HighlightedText(label="Translation so far (pieces you forced are marked)",
                                    color_map={"forced": "#e45756"}, show_legend=False, elem_id="step-prefix")
        continuation = gr.Textbox(label="If the model went on greedily from here", interactive=False,
                                  elem_id="step-continuation")
        with gr.Row():
            with gr.Column():
                candidates = gr.Plot(label="Top candidates", elem_id="step-candidates")
                pick = gr.Radio([], label="Force one of the candidates (what if?)", elem_id="step-pick")
                with gr.Row():
                    typed = gr.Textbox(label="…or type a word or piece to force", scale=3,
                                       placeholder="e.g. Frau, ▁Hund or </s>", elem_id="step-typed")
                    force_btn = gr.Button("Force", scale=1, elem_id="step-force")
            with gr.Column():
                step_attention = gr.Plot(label="Attention at this step", elem_id="step-attention")
        heatmap = gr.Plot(label="Attention so far", elem_id="step-heatmap")
        tree_penalty = beam_tree_section(model_picker, source, session_state)
        step_state = gr.State(None)

    def on_step(action, *names: str, **options):
        """The handler of every step event: one service call, the same outputs. `names` name its inputs (the
        API page and gradio_client's keyword arguments show them)."""
        @friendly
        def handler(*args):
            view = action(*args, **options)
            return {step_state: view["state"], status: view["status"], prefix: view["prefix"],
                    continuation: view["continuation"], candidates: view["candidates"],
                    pick: gr.Radio(choices=view["choices"], value=None), step_attention: view["step_attention"],
                    heatmap: view["heatmap"]}
        handler.__name__ = f"on_{action.__name__}"
        handler.__signature__ = inspect.Signature(
            [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names])
        return handler

    outputs = [step_state, status, prefix, continuation, candidates, pick, step_attention, heatmap]
    limits = dict(concurrency_limit=DECODE_LIMIT, concurrency_id="decode")
    gr.on([start_btn.click, source.submit], on_step(service.step_start, "model", "text", "session"),
          [model_picker, source, session_state], outputs, api_name="step_start", **limits)
    for button, action, name in ((next_btn, service.step_next, "step_next"), (back_btn, service.step_back, "step_back"),
                                 (run_btn, service.step_run, "step_run"), (reset_btn, service.step_reset, "step_reset")):
        button.click(on_step(action, "state", "session"), [step_state, session_state], outputs, api_name=name,
                     **limits)
    pick.input(on_step(service.step_force, "state", "piece", "session", exact=True), [step_state, pick, session_state],
               outputs, api_name="step_force_candidate", **limits)
    gr.on([force_btn.click, typed.submit], on_step(service.step_force, "state", "token", "session", exact=False),
          [step_state, typed, session_state], outputs, api_name="step_force", **limits)
    return SimpleNamespace(source=source, tree_penalty=tree_penalty)


def beam_tree_section(model_picker: gr.Dropdown, source: gr.Textbox, session_state: gr.State) -> gr.Slider:
    """The beam search tree of the Step tab's sentence; returns its length-penalty slider."""
    with gr.Accordion("Beam search tree", open=False):
        gr.Markdown(TREE_HELP, elem_classes="s2s-note")
        with gr.Row():
            tree_width = slider("beam_size", 3, 1, "Beam width", high=TREE_MAX_WIDTH)
            tree_penalty = slider("length_penalty", 1.0, 0.1, "Length penalty α")
            tree_btn = gr.Button("Draw the beam tree for this sentence")
        tree_translation = gr.Textbox(label="Beam search translation", interactive=False)
        tree_plot = gr.Plot(label="Beam tree", elem_id="step-beam-tree")

    @friendly
    def on_beam_tree(model, text, beam_size, length_penalty, session):
        result = service.beam_tree(model, text, beam_size, length_penalty, session)
        return {tree_plot: result["figure"], tree_translation: result["translation"]}

    tree_btn.click(on_beam_tree, [model_picker, source, tree_width, tree_penalty, session_state],
                   [tree_plot, tree_translation], api_name="beam_tree", concurrency_limit=DECODE_LIMIT,
                   concurrency_id="decode")
    return tree_penalty


# ---------------------------------------------------------------------- 3. Fine-tune
def fine_tune_tab(model_picker: gr.Dropdown, session_state: gr.State, models: list[str]) -> SimpleNamespace:
    with gr.Tab("Fine-tune", id="fine-tune"):
        gr.Markdown(FINE_TUNE_HELP, elem_classes="s2s-note")
        with gr.Row():
            with gr.Column(scale=3):
                pairs_box = gr.Textbox(label="Sentence pairs (source<TAB>target[<TAB>test])", lines=10,
                                        placeholder=PAIRS_PLACEHOLDER, elem_id="ft-pairs")
                pair_files = gr.File(label="…or upload a TSV/CSV file, or two line-aligned text files (source first)",
                                     file_count="multiple", elem_id="ft-files")
            with gr.Column(scale=2):
                base_picker = gr.Dropdown(models, value=models[0] if models else None, label="Base model",
                                          elem_id="ft-base")
                epochs_slider = gr.Slider(1, service.MAX_EPOCHS, value=3, step=1, label="Epochs", elem_id="ft-epochs")
                lr_box = gr.Number(value=5e-4, label=f"Learning rate ({service.MIN_LR:g} to {service.MAX_LR:g})")
                with gr.Row():
                    start_btn = gr.Button("Start fine-tuning", variant="primary", elem_id="ft-start")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="ft-cancel")
                cancel_note = gr.Markdown(label="Cancel message")
                status = gr.Markdown(label="Fine-tuning status", elem_id="ft-status")
                bleu = gr.Markdown(label="Held-out BLEU", elem_id="ft-bleu")
        loss = gr.Plot(label="Loss", elem_id="ft-loss")
        table = gr.Dataframe(headers=["source", "reference", "base model", "fine-tuned"],
                             label="Held-out pairs: before and after", interactive=False, wrap=True,
                             column_widths=["25%", "25%", "25%", "25%"])
        archive = gr.File(label="Download the fine-tuned checkpoint (zip)", interactive=False, elem_id="ft-zip")
        with gr.Accordion("Push the selected model to the Hugging Face Hub", open=False):
            gr.Markdown(PUSH_HELP, elem_classes="s2s-note")
            with gr.Row():
                push_repo = gr.Textbox(label="Repository id", placeholder="your-name/s2s-en-de-custom")
                push_token = gr.Textbox(label="Access token (write)", type="password")
                push_private = gr.Checkbox(label="Private", value=True)
            push_btn = gr.Button("Push to the Hub")
            push_message = gr.Markdown(label="Push message")
        cancel_token = gr.State(None)

    @friendly
    def on_fine_tune(base_model, pairs_text, files, epochs, lr, session, cancel, progress=gr.Progress()):
        for update in service.fine_tune(base_model, pairs_text, files, epochs, lr, session, cancel):
            progress(update["progress"], desc="Fine-tuning")
            shown = {status: update["status"], loss: update["loss"]}
            shown.update({component: update[key] for component, key in ((table, "table"), (bleu, "bleu"),
                                                                        (archive, "zip"), (session_state, "session"))
                          if key in update})
            if "selected" in update:  # the new model joins both pickers; the top one selects it
                shown[model_picker] = gr.Dropdown(choices=update["choices"], value=update["selected"])
                shown[base_picker] = gr.Dropdown(choices=update["choices"])
            yield shown

    start_btn.click(service.new_cancel_token, None, cancel_token, api_name="fine_tune_prepare", queue=False).then(
        on_fine_tune, [base_picker, pairs_box, pair_files, epochs_slider, lr_box, session_state, cancel_token],
        [status, loss, table, bleu, model_picker, base_picker, archive, session_state], api_name="fine_tune",
        concurrency_limit=1, concurrency_id="fine_tune")
    cancel_btn.click(friendly(service.cancel_fine_tune), cancel_token, cancel_note, api_name="fine_tune_cancel",
                     queue=False)
    push_btn.click(friendly(service.push_to_hub), [model_picker, push_repo, push_token, push_private, session_state],
                   push_message, api_name="push", concurrency_limit=1, concurrency_id="hub")
    return SimpleNamespace(base_picker=base_picker)


# ---------------------------------------------------------------------- 4. Model
def model_tab(model_picker: gr.Dropdown, base_picker: gr.Dropdown, session_state: gr.State) -> SimpleNamespace:
    with gr.Tab("Model", id="model"):
        with gr.Row():
            repo = gr.Textbox(label="Load a model from the Hugging Face Hub", scale=3, placeholder="user/s2s-en-de",
                              elem_id="hub-repo")
            revision_box = gr.Textbox(label="Revision (optional)", scale=1, placeholder="main")
            load_btn = gr.Button("Load", scale=1)
        message = gr.Markdown(label="Load message")
        with gr.Row():
            with gr.Column(scale=3):
                card = gr.Markdown(label="Model card", elem_id="model-card")
            with gr.Column(scale=2):
                config = gr.JSON(label="config.json")

    @friendly
    def on_hub_load(repo_id, revision, session):
        result = service.load_from_hub(repo_id, revision, session)
        return {model_picker: gr.Dropdown(choices=result["choices"], value=result["selected"]),
                base_picker: gr.Dropdown(choices=result["choices"]), message: result["message"],
                session_state: result["session"]}

    load_btn.click(on_hub_load, [repo, revision_box, session_state], [model_picker, base_picker, message, session_state],
                   api_name="load_model", concurrency_limit=2, concurrency_id="hub")
    return SimpleNamespace(card=card, config=config)


# ---------------------------------------------------------------------- the whole app
def build_demo() -> gr.Blocks:
    """The whole app as a gr.Blocks (not launched)."""
    models = service.bundled_models()
    no_models = "" if models else (f"_No bundled model was found in `{service.checkpoints_dir()}`: load one from "
                                   "the Hub in the Model tab._")
    with Blocks(title="s2s — a translator that shows its reasoning", delete_cache=(3600, 7200)) as demo:
        session = gr.State(service.Session(), delete_callback=service.close_session)
        gr.Markdown(HEADER, elem_classes="s2s-header")
        with gr.Row(equal_height=True):
            model = gr.Dropdown(models, value=models[0] if models else None, label="Model", scale=1, min_width=260,
                                elem_id="model-picker",
                                info="Bundled models, plus those you load or fine-tune in this browser tab")
            summary = gr.Markdown(no_models, label="Model summary", elem_classes="s2s-note")
        with gr.Tabs():
            translate = translate_tab(model, session)
            step = step_tab(model, session)
            fine_tune = fine_tune_tab(model, session, models)
            about = model_tab(model, fine_tune.base_picker, session)

        @friendly
        def on_model_selected(model, session):
            info = service.model_overview(model, session)
            # the length-penalty sliders start at the value tuned for this model on its validation data
            return {summary: info["summary"], about.card: info["card"], about.config: info["config"],
                    translate.examples: gr.Dataset(samples=[[e] for e in info["examples"]]),
                    translate.length_penalty: gr.Slider(value=info["length_penalty"]),
                    step.tree_penalty: gr.Slider(value=info["length_penalty"])}

        overview = [summary, about.card, about.config, translate.examples, translate.length_penalty, step.tree_penalty]
        model.change(on_model_selected, [model, session], overview, api_name="model_info")
        demo.load(on_model_selected, [model, session], overview, api_name="model_info_on_load")
        translate.examples.click(lambda sample: {translate.source: sample[0], step.source: sample[0]},
                                 translate.examples, [translate.source, step.source], api_name="pick_example",
                                 api_visibility="private", queue=False)
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def launch(demo: gr.Blocks | None = None, **kwargs):
    """Apply the start-up settings, then launch with the app's theme and CSS (gradio 6 takes them in launch())."""
    service.startup()
    demo = demo or build_demo()
    kwargs.setdefault("server_name", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    kwargs.setdefault("max_file_size", service.MAX_FILE_BYTES)  # gradio stops bigger uploads while receiving
    # gradio keeps every session's state (0.4 to 0.8 MB measured: its copy of the page and last outputs)
    kwargs.setdefault("state_session_capacity", service.MAX_SESSIONS)
    return demo.launch(theme=THEME, css=CSS, **kwargs)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    if os.environ.get("SPACES_ZERO_GPU"):
        service.preload()  # ZeroGPU moves start-up CUDA tensors to the GPU it lends
    launch()
