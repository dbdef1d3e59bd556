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
ATTENTION_HELP = f"""Each row is one target piece the model wrote, each column a source piece; a cell is αₜᵢ, the
share of attention the decoder gave source piece *i* while writing target piece *t* (each row sums to 1). Pieces are
SentencePiece subwords: `▁` marks the first piece of a word.
**Merge pieces into words:** a source word gets the *sum* of its pieces' columns (rows still sum to 1), a target
word the *mean* of its pieces' rows. **Coverage** is the total attention Σₜ αₜᵢ each source piece received over
the whole translation (the quantity of the GNMT coverage penalty). A *content* word below {OMISSION_BELOW} was barely
looked at (possibly left out), above {REPETITION_ABOVE} looked at far more than once (possibly translated twice).
Function words, punctuation and `</s>` (where the model parks attention) are never flagged, and `</s>` does not set
the scale. These are hints, not proof: attention is not a full explanation of a prediction, and on sentences with a
word left out on purpose the flags find only some of the omissions (see the README)."""
NBEST_LABEL = ("n-best · beam score = log p ÷ ((5+|Y|)/6)^α (+ coverage penalty) + λ × back-translation (the "
               "reverse model's mean log p of the source given this translation: low when it left something out); "
               "greedy and sampling give one translation")
LENGTH_PENALTY_INFO = "GNMT: score = log p ÷ ((5 + |Y|)/6)^α, |Y| = pieces written; 0 ranks by log p alone"
REVERSE_WEIGHT_INFO = ("rerank the beam's translations by how well the model that translates back recovers the source "
                       "from each: + λ × its mean log p per source piece; 0: off")
VIEW_KEYS = ("nbest", "heatmap", "coverage", "coverage_notes", "beam_tree", "trace")  # one sentence's views, in order
FINE_TUNE_HELP = f"""Paste sentence pairs, one per line: the source, a **Tab** (the Tab key types one here; press Esc,
then Tab, to leave the box), then the target; ` ||| ` or a comma (CSV) work as separators too. Or upload a TSV/CSV file
(two columns, an optional header `source,target`) or two line-aligned text files. A third column `test` marks pairs to
hold out; otherwise 10% (at least one pair) are held out at random. Lines that are not pairs are skipped and listed
by number. The held-out pairs are translated before and after, with BLEU. **Limits:** {service.MAX_PAIRS:,} pairs,
{service.MAX_EPOCHS} epochs, {service.MAX_MINUTES:.0f} minutes, files up to {service.MAX_FILE_BYTES // 1_000_000} MB,
pairs longer than {service.MAX_WORDS} words are dropped, {service.MAX_SESSION_MODELS} models of your own per browser
session. One run at a time on this server (others wait in the queue). The base model is never changed: the result is a
new model that only this browser tab sees, and you can download it as a checkpoint folder (zip)."""
PAIRS_LABEL = "Sentence pairs: source, Tab, target — one pair per line (' ||| ' or a comma also separate)"
PAIRS_PLACEHOLDER = ("A man is riding a bicycle.\tEin Mann fährt Fahrrad.\n"
                     "Two dogs play in the snow. ||| Zwei Hunde spielen im Schnee.")
STEP_HELP = ("Decode one piece at a time. At each step you see the model's top candidates with their probability "
             "and where it looks in the source. Pick another candidate (or type a word) to force it, and see how the "
             "rest of the translation changes. Pieces are SentencePiece subwords: `▁` starts a new word, so a bare "
             "`▁` means \"a space: the next word follows in the coming pieces\"; `<0xC3>` is one byte of a "
             "character the vocabulary spells byte by byte.")
TREE_HELP = ("Beam search keeps the *k* best partial translations at every step. Nodes are hypotheses (hover: "
             "cumulative log-prob), grey ones were pruned, green diamonds finished with `</s>`; the red path is "
             "the best translation.")
# The Tab key types a tab in the fine-tuning box (pairs are tab-separated); Esc, then Tab, leaves it.
APP_JS = """() => {
  let leaving = false;
  document.addEventListener("keydown", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLTextAreaElement) || !box.closest("#ft-pairs")) return;
    if (event.key === "Escape") { leaving = true; return; }
    if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.altKey || event.metaKey || leaving) {
      leaving = false;
      return;
    }
    event.preventDefault();
    document.execCommand("insertText", false, "\\t");  // an input event, and the browser's undo, as if typed
  }, true);
}"""
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


class LazyBlockConfigs(dict):
    """A session's per-block configuration (gradio's SessionState.config_values), built for a block when it is
    first read, and for all of them only when all are read (a deep link). Gradio builds all 170-odd of them for
    every new session, that is for every API call made without one: ~25% of a /translate request's CPU."""

    def __init__(self, blocks_config, ids) -> None:
        super().__init__()
        self.blocks_config, self.pending = blocks_config, dict.fromkeys(ids)

    def _build(self, key) -> None:
        if self.pending.pop(key, False) is None:
            super().__setitem__(key, self.blocks_config.config_for_block(key, [], self.blocks_config.blocks[key]))

    def __missing__(self, key):
        self._build(key)
        if not super().__contains__(key):
            raise KeyError(key)
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        return super().__contains__(key) or key in self.pending

    def __setitem__(self, key, value) -> None:
        self.pending.pop(key, None)
        super().__setitem__(key, value)

    def _all(self) -> None:
        for key in list(self.pending):
            self._build(key)

    def items(self):
        self._all()
        return super().items()

    def values(self):
        self._all()
        return super().values()

    def keys(self):
        self._all()
        return super().keys()

    def __iter__(self):
        self._all()
        return super().__iter__()

    def __len__(self) -> int:
        self._all()
        return super().__len__()


def lazy_session_configs() -> None:
    """Make gradio's new sessions build their block configurations lazily (LazyBlockConfigs). Gradio's own
    __init__ still runs, on a view of the app without blocks, so everything else it sets stays gradio's."""
    from gradio.state_holder import SessionState
    if getattr(SessionState, "s2s_lazy", False):
        return
    eager_init = SessionState.__init__

    def init(self, blocks) -> None:
        eager_init(self, SimpleNamespace(default_config=blocks.default_config, blocks={}))
        self.config_values = LazyBlockConfigs(self.blocks_config,
                                              [k for k in self.blocks_config.blocks if k in blocks.blocks])

    SessionState.__init__, SessionState.s2s_lazy = init, True


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


# ---------------------------------------------------------------------- errors, next to their controls
def reported(fn):
    """`friendly(fn)`, and the message of an error is also kept in the browser session, for `show_errors`
    to write next to the control that caused it. The browser shows no toast (a toast fades and leaves
    nothing); an API client gets the error as before."""
    inner = friendly(fn)

    def remember(args, err: gr.Error) -> gr.Error:
        session = next((arg for arg in args if isinstance(arg, service.Session)), None)
        if session is not None:
            session.error = str(err.message)
        err.visible = False
        return err

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from inner(*args, **kwargs)
            except gr.Error as err:
                raise remember(args, err) from None
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return inner(*args, **kwargs)
        except gr.Error as err:
            raise remember(args, err) from None
    return call


def show_errors(event, message: gr.Markdown, outputs: list, session_state: gr.State) -> None:
    """When `event` fails, its error (kept by `reported`) appears in `message`. The failed event's other
    outputs are listed too, which clears their error badges: nothing stays covered or frozen."""
    others = [o for o in outputs if o is not message and not isinstance(o, gr.State)]
    event.failure(lambda session: {message: service.error_note(session)}, session_state, [message, *others],
                  api_name=f"show_error_{id(message)}", api_visibility="private", queue=False, show_progress="hidden")


def slider(field: str, value: float, step: float, label: str, high: float | None = None, **kwargs) -> gr.Slider:
    """A slider over the valid range of a decoding option (DecodeOptions.RANGES)."""
    low, top = RANGES[field]
    return gr.Slider(low, top if high is None else min(high, top), value=value, step=step, label=label, **kwargs)


# ---------------------------------------------------------------------- 1. Translate
def translate_tab(model_picker: gr.Dropdown, session_state: gr.State) -> SimpleNamespace:
    with gr.Tab("Translate", id="translate"):
        with gr.Row():
            with gr.Column(scale=3, min_width=300):
                source, examples, translate_btn, clear_btn, message, translation = text_column()
            with gr.Column(scale=2, min_width=300):
                d = decoding_controls()
                nbest_table = gr.Dataframe(headers=["#", "translation", "score", "log-prob", "back-translation"],
                                           label=NBEST_LABEL, interactive=False, wrap=True,
                                           column_widths=["7%", "45%", "16%", "16%", "16%"])
        v = attention_section(session_state, message)
        traces = gr.State([])
    views = [nbest_table, v.heatmap, v.coverage, v.coverage_notes, v.beam_tree, v.trace_json]
    outputs = [translation, *views, v.sentence, traces, message]
    # the reranking weight comes last: API clients written before it existed still line up (it takes its default)
    decoding = [d.method, d.beam_size, d.length_penalty, d.nbest, d.temperature, d.top_k, d.top_p, d.seed, v.merge,
                d.reverse_weight]

    def shown(result: dict, note: str = "") -> dict:
        """A translation on screen: the views of its first sentence, a sentence picker when there are several."""
        return {translation: result["translation"], **dict(zip(views, (result[k] for k in VIEW_KEYS))),
                v.sentence: gr.Dropdown(choices=[(s, i) for i, s in enumerate(result["sentences"])], value=0,
                                        visible=len(result["sentences"]) > 1),
                traces: result["traces"], message: " ".join(filter(None, [note, result["notice"]]))}

    @reported
    def on_translate(model, text, method, beam_size, length_penalty, nbest, temperature, top_k, top_p, seed, merge,
                     reverse_weight, session):
        return shown(service.translate(model, text, method, beam_size, length_penalty, nbest, temperature, top_k,
                                       top_p, seed, merge, session, reverse_weight=reverse_weight))

    @reported
    def on_model_changed(model, text, trace, method, beam_size, nbest, temperature, top_k, top_p, seed, merge,
                         session):
        result = service.translate_again(model, text, trace, method, beam_size, nbest, temperature, top_k, top_p,
                                         seed, merge, session)
        return {} if result is None else shown(result, result["message"])

    @reported
    def on_sentence(all_traces, index, merge, session):
        return {**dict(zip(views, (service.sentence_views(all_traces, index, merge)[k] for k in VIEW_KEYS))),
                message: ""}

    show_errors(v.sentence.input(on_sentence, [traces, v.sentence, v.merge, session_state], [*views, message],
                                 api_name="sentence_views"), message, views, session_state)
    inputs = [model_picker, source, *decoding, session_state]
    limits = dict(concurrency_limit=DECODE_LIMIT, concurrency_id="decode")
    show_errors(gr.on([translate_btn.click, source.submit], on_translate, inputs, outputs, api_name="translate",
                      show_progress_on=[translation, message], **limits), message, outputs, session_state)
    picked = examples.click(lambda sample: {source: sample[0]}, examples, source, api_name="pick_example",
                            api_visibility="private", queue=False)
    show_errors(picked.then(on_translate, inputs, outputs, api_name="translate_example", api_visibility="private",
                            show_progress_on=[translation, message], **limits), message, outputs, session_state)
    show_errors(model_picker.change(on_model_changed, [model_picker, source, v.trace_json, *decoding[:2],
                                                       *decoding[3:-1], session_state], outputs,
                                    api_name="translate_again", api_visibility="private",
                                    show_progress_on=[translation, message], **limits), message, outputs, session_state)
    clear_btn.click(lambda: blank([source, *outputs]), None, [source, *outputs], api_name="clear",
                    api_visibility="private", queue=False)
    return SimpleNamespace(source=source, examples=examples, length_penalty=d.length_penalty,
                           reverse_weight=d.reverse_weight, trace=v.trace_json)


def text_column() -> tuple:
    """The text to translate, its examples, Translate and Clear, the message line and the translation."""
    source = gr.Textbox(label="Source text", lines=1, max_lines=12, max_length=service.MAX_INPUT_CHARS,
                        placeholder=placeholder("the model's source language"), elem_id="source")
    examples = gr.Dataset(components=[source], samples=[], label="Examples (click one to translate it)",
                          samples_per_page=8, elem_id="translate-examples")
    with gr.Row():
        translate_btn = gr.Button("Translate", variant="primary", scale=3, elem_id="translate-btn")
        clear_btn = gr.Button("Clear", scale=1, min_width=80, elem_id="clear-btn")
    message = gr.Markdown(elem_id="translate-message", elem_classes="s2s-message")
    translation = gr.Textbox(label="Translation", lines=2, interactive=False, buttons=["copy"], elem_id="translation",
                             elem_classes="s2s-translation")
    return source, examples, translate_btn, clear_btn, message, translation


def placeholder(language: str) -> str:
    return f"Type or paste text in {language} · Enter translates, Shift+Enter starts a new line"


def blank(components: list) -> dict:
    """Every component emptied (the Clear button); a dropdown (the sentence picker) also hidden."""
    return {c: [] if isinstance(c, gr.State) else gr.Dropdown(choices=[], value=None, visible=False)
            if isinstance(c, gr.Dropdown) else "" if isinstance(c, (gr.Textbox, gr.Markdown)) else None
            for c in components}


def decoding_controls() -> SimpleNamespace:
    """The decoding method and, shown for the method chosen, its options. n-best follows the beam width."""
    # beam 10 at the model's own α, β and λ by default: what the README's everyday figures use (greedy is 4-8 chrF
    # lower); the model that translates back reranks the beam when it is loaded beside the model
    method = gr.Radio(list(service.DecodeOptions.METHODS), value="beam", label="Decoding",
                      info="greedy: most likely piece each step; beam: keep several hypotheses; sample: draw at random")
    with gr.Group(visible=True) as beam_controls:
        beam_size = slider("beam_size", 10, 1, "Beam width", elem_id="beam-width")
        length_penalty = slider("length_penalty", 1.0, 0.1, "Length penalty α", info=LENGTH_PENALTY_INFO)
        reverse_weight = slider("reverse_weight", 0.0, 0.1, "Back-translation weight λ", info=REVERSE_WEIGHT_INFO,
                                elem_id="reverse-weight")
        nbest = slider("nbest", 3, 1, "n-best", high=5, info="how many translations to list: at most the beam width",
                       elem_id="nbest")
    with gr.Group(visible=False) as sample_controls:
        temperature = slider("temperature", 1.0, 0.05, "Temperature", elem_id="temperature")
        top_k = slider("top_k", 0, 1, "Top-k (0: off)")
        top_p = slider("top_p", 1.0, 0.05, "Top-p (nucleus)")
        seed = gr.Number(value=1, precision=0, label="Seed (empty: random)")
    method.change(lambda m: {beam_controls: gr.Group(visible=m == "beam"), sample_controls: gr.Group(visible=m == "sample")},
                  method, [beam_controls, sample_controls], api_name="decoding_controls", api_visibility="private",
                  queue=False)
    beam_size.change(lambda width, n: gr.Slider(maximum=width, value=min(n, width)), [beam_size, nbest], nbest,
                     api_name="nbest_range", api_visibility="private", queue=False)
    return SimpleNamespace(method=method, beam_size=beam_size, length_penalty=length_penalty,
                           reverse_weight=reverse_weight, nbest=nbest,
                           temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)


def attention_section(session_state: gr.State, message: gr.Markdown) -> SimpleNamespace:
    """The views of one translated sentence (a paragraph has a picker): heatmap, coverage, beam tree, export."""
    merge = gr.Checkbox(label="Merge subword pieces into words", value=False,
                        info="source word: sum of its pieces' attention; target word: mean of its pieces' rows")
    sentence = gr.Dropdown(choices=[], label="Sentence (the text was translated sentence by sentence)",
                           visible=False, elem_id="sentence-picker")
    heatmap = gr.Plot(label="Attention heatmap", elem_id="heatmap", elem_classes="s2s-plot", show_label=False)
    coverage = gr.Plot(label="Coverage", elem_id="coverage", elem_classes="s2s-plot", show_label=False)
    coverage_notes = gr.Markdown(label="Coverage notes", elem_id="coverage-notes")
    gr.Markdown(ATTENTION_HELP, elem_classes="s2s-note")
    with gr.Accordion("Beam search tree (with beam decoding)", open=False):
        beam_tree = gr.Plot(label="Beam tree", elem_id="beam-tree", elem_classes="s2s-plot", show_label=False)
    trace_json = export_section(session_state, merge)
    views = [heatmap, coverage, coverage_notes]

    @reported
    def on_merge(trace, merge, session):
        result = service.attention_views(trace, merge)
        return {heatmap: result["heatmap"], coverage: result["coverage"], coverage_notes: result["coverage_notes"],
                message: ""}

    show_errors(merge.input(on_merge, [trace_json, merge, session_state], [*views, message],
                            api_name="attention_views"), message, views, session_state)
    return SimpleNamespace(merge=merge, sentence=sentence, heatmap=heatmap, coverage=coverage,
                           coverage_notes=coverage_notes, beam_tree=beam_tree, trace_json=trace_json)


def export_section(session_state: gr.State, merge: gr.Checkbox) -> gr.JSON:
    """Export (CSV, JSON and HTML at once, then the PNG) and the trace; returns the trace component."""
    with gr.Accordion("Export: CSV, JSON, HTML, PNG", open=False) as section:
        export_btn = gr.Button("Export the attention of this translation", elem_id="export-btn")
        files = gr.File(label="Files", file_count="multiple", interactive=False, elem_id="export-files")
        message = gr.Markdown(label="Export message", elem_id="export-message")
    with gr.Accordion("Trace (JSON, as returned by the /translate API)", open=False):
        trace_json = gr.JSON(label="Trace")

    @reported
    def on_export(trace, merge, session):
        result = service.export_trace(trace, merge, session)
        return {files: result["files"], message: result["message"] + " Drawing the PNG…"}

    @reported
    def on_png(trace, merge, shown, session):
        result = service.export_png(trace, merge, session)
        return {files: [*(shown or []), *result["files"]],
                message: "Exported attention.csv, trace.json, attention.html. " + result["message"]}

    # opening the section starts the PNG renderer, so the first PNG does not wait for its browser to start
    section.expand(service.prepare_png_export, None, None, api_name="export_prepare", api_visibility="private",
                   queue=False)
    done = export_btn.click(on_export, [trace_json, merge, session_state], [files, message], api_name="export",
                            concurrency_limit=4, concurrency_id="export", show_progress_on=[message])
    show_errors(done, message, [files], session_state)
    png = done.success(on_png, [trace_json, merge, files, session_state], [files, message], api_name="export_png",
                       concurrency_limit=2, concurrency_id="png",
                       show_progress="hidden")  # the files are there already; the message says "Drawing"
    show_errors(png, message, [files], session_state)
    # another translation, sentence or model: the files of the old one go (a PNG still being drawn is dropped).
    # In the browser, not on the server: a server round trip could land after an Export clicked the moment the
    # new trace appeared and wipe that export's links; the browser also cancels the PNG at this instant, so
    # only a PNG of the old trace can be dropped
    trace_json.change(None, None, [files, message], js="() => [null, '']", cancels=[png],
                      api_name="export_reset", api_visibility="private", queue=False)
    return trace_json


# ---------------------------------------------------------------------- 2. Step by step
def step_tab(model_picker: gr.Dropdown, session_state: gr.State, translate_trace: gr.JSON) -> SimpleNamespace:
    with gr.Tab("Step by step", id="step") as tab:
        gr.Markdown(STEP_HELP, elem_classes="s2s-note")
        with gr.Row():
            source = gr.Textbox(label="Source sentence", scale=4, min_width=240, elem_id="step-source",
                                max_length=service.MAX_INPUT_CHARS,
                                placeholder="It starts from the Translate tab's sentence")
            start_btn = gr.Button("Start", variant="primary", scale=1, min_width=80, elem_id="step-start")
        with gr.Row(elem_classes="s2s-step-buttons"):
            next_btn = gr.Button("Next ▶", min_width=70, elem_id="step-next")
            back_btn = gr.Button("◀ Back", min_width=70, elem_id="step-back")
            run_btn = gr.Button("Run to end ▸▸", min_width=70, elem_id="step-run")
            reset_btn = gr.Button("Reset ↺", min_width=70, elem_id="step-reset")
        status = gr.Markdown(label="Step status", elem_id="step-status")
        prefix = gr.HighlightedText(label="Translation so far (pieces you forced are marked)",
                                    color_map={"forced": "#e45756"}, show_legend=False, elem_id="step-prefix")
        continuation = gr.Textbox(label="If the model went on greedily from here", interactive=False,
                                  elem_id="step-continuation")
        candidates, pick, typed, force_btn, step_attention = candidates_row()
        heatmap = gr.Plot(label="Attention so far", elem_id="step-heatmap", elem_classes="s2s-plot",
                          show_label=False)
        tree_penalty = beam_tree_section(model_picker, source, session_state)
        step_state = gr.State(None)
    shown = SimpleNamespace(state=step_state, status=status, prefix=prefix, continuation=continuation,
                            candidates=candidates, pick=pick, step_attention=step_attention, heatmap=heatmap)
    outputs = list(vars(shown).values())

    def on_step(action, *names: str, **options):
        return step_handler(shown, action, *names, **options)

    def wire(event) -> None:
        show_errors(event, status, outputs, session_state)

    limits = dict(concurrency_limit=DECODE_LIMIT, concurrency_id="decode", show_progress_on=[status])
    start = on_step(service.step_start, "model", "text", "session")
    wire(gr.on([start_btn.click, source.submit], start, [model_picker, source, session_state], outputs,
               api_name="step_start", **limits))
    for button, action, name in ((next_btn, service.step_next, "step_next"), (back_btn, service.step_back, "step_back"),
                                 (run_btn, service.step_run, "step_run"), (reset_btn, service.step_reset, "step_reset")):
        wire(button.click(on_step(action, "state", "session"), [step_state, session_state], outputs, api_name=name,
                          **limits))
    wire(pick.input(on_step(service.step_force, "state", "piece", "session", exact=True),
                    [step_state, pick, session_state], outputs, api_name="step_force_candidate", **limits))
    wire(gr.on([force_btn.click, typed.submit], on_step(service.step_force, "state", "token", "session", exact=False),
               [step_state, typed, session_state], outputs, api_name="step_force", **limits))
    wire(model_picker.change(on_step(service.step_model_changed, "model", "state", "session"),
                             [model_picker, step_state, session_state], outputs, api_name="step_model_changed",
                             api_visibility="private", **limits))

    def on_tab(model, text, trace, state, session):
        """Opening the tab starts its sentence (the Translate tab's text) unless that is already under way. The
        box is filled in the browser after a translation arrives, so a quick click may find it still empty: the
        translation's trace then names the sentence."""
        text = (text or "").strip() or str((trace or {}).get("source") or "").strip()
        if not text or (state and state.get("source") == text and state.get("model") == model):
            return {}
        return start(model, text, session)

    wire(tab.select(on_tab, [model_picker, source, translate_trace, step_state, session_state], outputs,
                    api_name="step_tab", api_visibility="private", **limits))
    return SimpleNamespace(source=source, tree_penalty=tree_penalty)


def candidates_row() -> tuple:
    """The next piece's candidates, the ways to force one, and where the model looks at this step."""
    with gr.Row():
        with gr.Column(min_width=300):
            candidates = gr.Plot(label="Top candidates", elem_id="step-candidates", elem_classes="s2s-plot",
                                 show_label=False)
            pick = gr.Radio([], label="Force one of the candidates (what if?)", elem_id="step-pick")
            with gr.Row():
                typed = gr.Textbox(label="…or type a word or piece to force", scale=3, min_width=160,
                                   placeholder="e.g. Frau, ▁Hund or </s>", elem_id="step-typed")
                force_btn = gr.Button("Force", scale=1, min_width=70, elem_id="step-force")
        with gr.Column(min_width=300):
            step_attention = gr.Plot(label="Attention at this step", elem_id="step-attention",
                                     elem_classes="s2s-plot", show_label=False)
    return candidates, pick, typed, force_btn, step_attention


def step_handler(shown: SimpleNamespace, action, *names: str, **options):
    """The handler of every step event: one service call, the same outputs (`shown`). `names` name its inputs
    (the API page and gradio_client's keyword arguments show them)."""
    @reported
    def handler(*args):
        view = action(*args, **options)
        if view is None:  # nothing to do (e.g. the model changed before anything was started)
            return {}
        return {shown.state: view["state"], shown.status: view["status"], shown.prefix: view["prefix"],
                shown.continuation: view["continuation"], shown.candidates: view["candidates"],
                shown.pick: gr.Radio(choices=view["choices"], value=None),
                shown.step_attention: view["step_attention"], shown.heatmap: view["heatmap"]}
    handler.__name__ = f"on_{action.__name__}"
    handler.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names])
    return handler


def beam_tree_section(model_picker: gr.Dropdown, source: gr.Textbox, session_state: gr.State) -> gr.Slider:
    """The beam search tree of the Step tab's sentence; returns its length-penalty slider."""
    with gr.Accordion("Beam search tree", open=False):
        gr.Markdown(TREE_HELP, elem_classes="s2s-note")
        with gr.Row():
            tree_width = slider("beam_size", 3, 1, "Beam width", high=TREE_MAX_WIDTH)
            tree_penalty = slider("length_penalty", 1.0, 0.1, "Length penalty α", info=LENGTH_PENALTY_INFO)
            tree_btn = gr.Button("Draw the beam tree for this sentence")
        message = gr.Markdown(elem_id="tree-message", elem_classes="s2s-message")
        tree_translation = gr.Textbox(label="Beam search translation", interactive=False)
        tree_plot = gr.Plot(label="Beam tree", elem_id="step-beam-tree", elem_classes="s2s-plot", show_label=False)

    @reported
    def on_beam_tree(model, text, beam_size, length_penalty, session):
        result = service.beam_tree(model, text, beam_size, length_penalty, session)
        return {tree_plot: result["figure"], tree_translation: result["translation"], message: ""}

    outputs = [tree_plot, tree_translation, message]
    show_errors(tree_btn.click(on_beam_tree, [model_picker, source, tree_width, tree_penalty, session_state], outputs,
                               api_name="beam_tree", concurrency_limit=DECODE_LIMIT, concurrency_id="decode",
                               show_progress_on=[tree_plot, message]), message, outputs, session_state)

    def on_model_changed(shown: str) -> dict:
        """Another model: the old model's tree goes (nothing of it stays on screen as if it were the new one's)."""
        note = "The model changed: draw the tree again to see the new model's search." if shown else ""
        return {tree_plot: None, tree_translation: "", message: note}

    model_picker.change(on_model_changed, tree_translation, outputs, api_name="beam_tree_reset",
                        api_visibility="private", queue=False)
    return tree_penalty


# ---------------------------------------------------------------------- 3. Fine-tune
def fine_tune_tab(model_picker: gr.Dropdown, session_state: gr.State, menu: list) -> SimpleNamespace:
    with gr.Tab("Fine-tune", id="fine-tune"):
        gr.Markdown(FINE_TUNE_HELP, elem_classes="s2s-note")
        with gr.Row():
            with gr.Column(scale=3, min_width=300):
                pairs_box = gr.Textbox(label=PAIRS_LABEL, lines=10, placeholder=PAIRS_PLACEHOLDER, elem_id="ft-pairs")
                pair_files = gr.File(label="…or upload a TSV/CSV file, or two line-aligned text files (source first)",
                                     file_count="multiple", elem_id="ft-files")
            with gr.Column(scale=2, min_width=300):
                base_picker = gr.Dropdown(menu, value=service.default_model(), label="Base model", elem_id="ft-base")
                epochs_slider = gr.Slider(1, service.MAX_EPOCHS, value=3, step=1, label="Epochs", elem_id="ft-epochs")
                lr_box = gr.Number(value=5e-4, label=f"Learning rate ({service.MIN_LR:g} to {service.MAX_LR:g})")
                with gr.Row():
                    start_btn = gr.Button("Start fine-tuning", variant="primary", elem_id="ft-start")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="ft-cancel")
                cancel_note = gr.Markdown(label="Cancel message")
                status = gr.Markdown(label="Fine-tuning status", elem_id="ft-status", elem_classes="s2s-message")
                bleu = gr.Markdown(label="Held-out BLEU", elem_id="ft-bleu")
        loss = gr.Plot(label="Loss", elem_id="ft-loss", elem_classes="s2s-plot", show_label=False)
        table = gr.Dataframe(headers=["source", "reference", "base model", "fine-tuned"],
                             label="Held-out pairs: before and after", interactive=False, wrap=True,
                             column_widths=["25%", "25%", "25%", "25%"])
        archive = gr.File(label="Download the fine-tuned checkpoint (zip)", interactive=False, elem_id="ft-zip")
        push_section(model_picker, session_state)
        cancel_token = gr.State(None)

    @reported
    def on_fine_tune(base_model, pairs_text, files, epochs, lr, session, cancel, progress=gr.Progress()):
        for update in service.fine_tune(base_model, pairs_text, files, epochs, lr, session, cancel):
            progress(update["progress"], desc="Fine-tuning")
            shown = {status: update["status"], loss: update["loss"]}
            shown.update({component: update[key] for component, key in ((table, "table"), (bleu, "bleu"),
                                                                        (archive, "zip"), (session_state, "session"))
                          if key in update})
            if "selected" in update:  # the new model joins both pickers; the top one selects it
                shown[model_picker] = gr.Dropdown(choices=update["menu"], value=update["selected"])
                shown[base_picker] = gr.Dropdown(choices=update["menu"])
            yield shown

    # the pickers are outputs (an API client's session learns the new model) but show no progress and no error
    outputs = [status, loss, table, bleu, model_picker, base_picker, archive, session_state]
    prepared = start_btn.click(service.new_cancel_token, None, cancel_token, api_name="fine_tune_prepare", queue=False)
    show_errors(prepared.then(on_fine_tune, [base_picker, pairs_box, pair_files, epochs_slider, lr_box, session_state,
                                             cancel_token], outputs, api_name="fine_tune", concurrency_limit=1,
                              concurrency_id="fine_tune", show_progress_on=[status]), status, outputs, session_state)
    cancel_btn.click(friendly(service.cancel_fine_tune), cancel_token, cancel_note, api_name="fine_tune_cancel",
                     queue=False)
    return SimpleNamespace(base_picker=base_picker)


def push_section(model_picker: gr.Dropdown, session_state: gr.State) -> None:
    with gr.Accordion("Push the selected model to the Hugging Face Hub", open=False):
        gr.Markdown(PUSH_HELP, elem_classes="s2s-note")
        with gr.Row():
            push_repo = gr.Textbox(label="Repository id", placeholder="your-name/s2s-en-de-custom", min_width=200)
            push_token = gr.Textbox(label="Access token (write)", type="password", min_width=200)
            push_private = gr.Checkbox(label="Private", value=True)
        push_btn = gr.Button("Push to the Hub")
        message = gr.Markdown(label="Push message", elem_id="push-message", elem_classes="s2s-message")

    @reported
    def on_push(model, repo, token, private, session):
        return {message: service.push_to_hub(model, repo, token, private, session)}

    show_errors(push_btn.click(on_push, [model_picker, push_repo, push_token, push_private, session_state], message,
                               api_name="push", concurrency_limit=1, concurrency_id="hub"),
                message, [message], session_state)


# ---------------------------------------------------------------------- 4. Model
def model_tab(model_picker: gr.Dropdown, base_picker: gr.Dropdown, session_state: gr.State) -> SimpleNamespace:
    with gr.Tab("Model", id="model"):
        with gr.Row():
            repo = gr.Textbox(label="Load a model from the Hugging Face Hub", scale=3, min_width=220,
                              placeholder="user/s2s-en-de", elem_id="hub-repo")
            revision_box = gr.Textbox(label="Revision (optional)", scale=1, min_width=120, placeholder="main")
            load_btn = gr.Button("Load", scale=1, min_width=80, elem_id="hub-load")
        message = gr.Markdown(label="Load message", elem_id="hub-message", elem_classes="s2s-message")
        with gr.Row():
            with gr.Column(scale=3, min_width=300):
                card = gr.Markdown(label="Model card", elem_id="model-card")
            with gr.Column(scale=2, min_width=300):
                config = gr.JSON(label="config.json")

    @reported
    def on_hub_load(repo_id, revision, session):
        result = service.load_from_hub(repo_id, revision, session)
        return {model_picker: gr.Dropdown(choices=result["menu"], value=result["selected"]),
                base_picker: gr.Dropdown(choices=result["menu"]), message: result["message"],
                session_state: result["session"]}

    outputs = [model_picker, base_picker, message, session_state]  # the pickers show no progress and no error
    show_errors(load_btn.click(on_hub_load, [repo, revision_box, session_state], outputs, api_name="load_model",
                               concurrency_limit=2, concurrency_id="hub", show_progress_on=[message]),
                message, outputs, session_state)
    return SimpleNamespace(card=card, config=config)


# ---------------------------------------------------------------------- 5. Explain
EXPLAIN_HELP = """Is attention an explanation? For each piece of the translation, **attribution** measures how much
each source piece changed its log-probability log p(yₜ | y<ₜ, x): *integrated gradients* move the source embeddings
from a neutral baseline (pad embeddings, same length) to the sentence in K steps and add up the gradients along the
way; *gradient × input* takes the gradient at the sentence only. Rows show |attribution| as shares that sum to 1,
on the same axes as the attention map (orange, to tell them apart); a box marks each row's largest cell. Where the
boxes of the two maps fall on the same source word, attention points at what the prediction really used; where they
do not, attention alone would mislead. Leave the translation empty to explain the model's own (greedy) translation,
or paste your own (or a reference) to see the probability the model gives each of its pieces and where the model
would have chosen otherwise. **Limits:** 60 source and 80 target pieces, 4 to 64 steps; about a second for a
20-piece sentence on a CPU."""


def explain_tab(model_picker: gr.Dropdown, session_state: gr.State) -> SimpleNamespace:
    with gr.Tab("Explain", id="explain"):
        gr.Markdown(EXPLAIN_HELP, elem_classes="s2s-note")
        with gr.Row():
            with gr.Column(scale=3, min_width=300):
                source = gr.Textbox(label="Sentence to explain", lines=1, max_lines=6,
                                    max_length=service.MAX_INPUT_CHARS, elem_id="explain-source",
                                    placeholder="Type a sentence in the model's source language")
                given = gr.Textbox(label="Translation to score (optional; empty: the model's own translation)",
                                   lines=1, max_lines=6, max_length=service.MAX_INPUT_CHARS, elem_id="explain-given")
                explain_btn = gr.Button("Explain", variant="primary", elem_id="explain-btn")
            with gr.Column(scale=2, min_width=300):
                steps = gr.Slider(4, 64, value=24, step=1, label="Integrated-gradients steps K",
                                  elem_id="explain-steps")
                method = gr.Radio(["integrated gradients", "gradient × input"], value="integrated gradients",
                                  label="Attribution shown", elem_id="explain-method")
                merge = gr.Checkbox(label="Merge subword pieces into words", value=False, elem_id="explain-merge",
                                    info="the heatmap's rule: a source word sums its pieces, a target word averages")
        message = gr.Markdown(elem_id="explain-message", elem_classes="s2s-message")
        summary = gr.Markdown(label="Agreement", elem_id="explain-summary")
        explained = gr.Textbox(label="Translation explained", interactive=False, elem_id="explain-translation")
        with gr.Row():
            with gr.Column(min_width=300):
                attention = gr.Plot(label="Attention", elem_id="explain-attention", elem_classes="s2s-plot",
                                    show_label=False)
            with gr.Column(min_width=300):
                attribution = gr.Plot(label="Attribution", elem_id="explain-attribution", elem_classes="s2s-plot",
                                      show_label=False)
        rows = gr.Dataframe(headers=["target", "top source by α", "top source by attribution", "agree", "JS distance"],
                            label="Row by row: where each map puts the most weight", interactive=False, wrap=True,
                            elem_id="explain-rows")
        scores = gr.Plot(label="Piece probabilities", elem_id="explain-scores", elem_classes="s2s-plot",
                         show_label=False)
        with gr.Accordion("State trajectories (PCA of the encoder and decoder states)", open=False):
            trajectories_btn = gr.Button("Draw the state trajectories of this sentence", elem_id="trajectories-btn")
            trajectories_note = gr.Markdown(elem_id="trajectories-note", elem_classes="s2s-message")
            trajectories = gr.Plot(label="State trajectories", elem_id="explain-trajectories", elem_classes="s2s-plot",
                                   show_label=False)
        with gr.Accordion("The three attention scores side by side (English → German)", open=False):
            compare_btn = gr.Button("Translate this sentence with the general, dot and additive models",
                                    elem_id="compare-btn")
            compare_note = gr.Markdown(elem_id="compare-note", elem_classes="s2s-message")
            with gr.Row():
                compare_plots = []
                for kind in ("general", "dot", "additive"):
                    with gr.Column(min_width=280):
                        compare_plots.append(gr.Plot(label=f"{kind} attention", elem_id=f"compare-{kind}",
                                                     elem_classes="s2s-plot", show_label=False))
            compare_table = gr.Dataframe(headers=["score", "equation", "translation", "everyday BLEU / chrF",
                                                  "Multi30k test 2016 BLEU / chrF"],
                                         label="Each model's quality (from its model card)", interactive=False,
                                         wrap=True, elem_id="compare-table")
        result = gr.State(None)

    views = [summary, attention, attribution, rows, scores]

    def shown(view: dict) -> dict:
        return {summary: view["summary"], attention: view["attention"], attribution: view["attribution"],
                rows: view["rows"], scores: view["scores"], message: ""}

    @reported
    def on_explain(model, text, translation, k, shown_method, merge_words, session):
        view = service.explain_translation(model, text, translation, k, shown_method, merge_words, session)
        return {**shown(view), result: view["result"], explained: view["translation"]}

    @reported
    def on_views(explained_result, shown_method, merge_words, session):
        return shown(service.explain_views(explained_result, shown_method, merge_words))

    @reported
    def on_trajectories(model, text, translation, session):
        view = service.state_trajectories(model, text, translation, session)
        return {trajectories: view["figure"], trajectories_note: view["note"]}

    @reported
    def on_compare(text, merge_words, session):
        view = service.compare_attention_scores(text, merge_words, session)
        return {**dict(zip(compare_plots, view["figures"])), compare_table: view["table"], compare_note: view["note"]}

    limits = dict(concurrency_limit=2, concurrency_id="explain")
    outputs = [*views, result, explained, message]
    show_errors(gr.on([explain_btn.click, source.submit, given.submit], on_explain,
                      [model_picker, source, given, steps, method, merge, session_state], outputs, api_name="explain",
                      show_progress_on=[summary, message], **limits), message, outputs, session_state)
    show_errors(gr.on([method.input, merge.input], on_views, [result, method, merge, session_state], [*views, message],
                      api_name="explain_views"), message, views, session_state)
    show_errors(trajectories_btn.click(on_trajectories, [model_picker, source, given, session_state],
                                       [trajectories, trajectories_note], api_name="state_trajectories",
                                       show_progress_on=[trajectories_note], **limits),
                trajectories_note, [trajectories], session_state)
    show_errors(compare_btn.click(on_compare, [source, merge, session_state],
                                  [*compare_plots, compare_table, compare_note], api_name="compare_attention_scores",
                                  show_progress_on=[compare_note], **limits),
                compare_note, [*compare_plots, compare_table], session_state)

    def on_model_changed(shown_translation: str) -> dict:
        """Another model: the old model's maps and trajectories go (the three-score comparison stays)."""
        note = "The model changed: press Explain again to see the new model's maps." if shown_translation else ""
        return {summary: "", attention: None, attribution: None, rows: None, scores: None, trajectories: None,
                trajectories_note: "", result: None, explained: "", message: note}

    model_picker.change(on_model_changed, explained, [*views, trajectories, trajectories_note, result, explained,
                                                      message], api_name="explain_reset", api_visibility="private",
                        queue=False)
    return SimpleNamespace(source=source)


# ---------------------------------------------------------------------- the whole app
def build_demo() -> gr.Blocks:
    """The whole app as a gr.Blocks (not launched)."""
    lazy_session_configs()
    menu = service.model_menu()
    no_models = "" if menu else (f"_No bundled model was found in `{service.checkpoints_dir()}`: load one from "
                                 "the Hub in the Model tab._")
    with Blocks(title="s2s — a translator that shows its reasoning", delete_cache=(3600, 7200)) as demo:
        session = gr.State(service.Session(), delete_callback=service.close_session)
        gr.Markdown(HEADER, elem_classes="s2s-header")
        with gr.Row(elem_classes="s2s-model-row"):
            with gr.Column(scale=1, min_width=280):
                model = gr.Dropdown(menu, value=service.default_model(), label="Model", elem_id="model-picker",
                                    info="Bundled models, plus those you load or fine-tune in this browser tab")
            with gr.Column(scale=2, min_width=300):
                summary = gr.Markdown(no_models, label="Model summary", elem_id="model-summary",
                                      elem_classes="s2s-note")
        with gr.Tabs():
            translate = translate_tab(model, session)
            step = step_tab(model, session, translate.trace)
            explain = explain_tab(model, session)
            fine_tune = fine_tune_tab(model, session, menu)
            about = model_tab(model, fine_tune.base_picker, session)

        @reported
        def on_model_selected(model, session):
            info = service.model_overview(model, session)
            # the length-penalty sliders start at the value tuned for this model on its validation data
            return {summary: info["summary"], about.card: info["card"], about.config: info["config"],
                    translate.examples: gr.Dataset(samples=[[e] for e in info["examples"]]),
                    translate.source: gr.Textbox(placeholder=placeholder(info["source_language"])),
                    translate.length_penalty: gr.Slider(value=info["length_penalty"]),
                    translate.reverse_weight: gr.Slider(value=info["reverse_weight"]),
                    step.tree_penalty: gr.Slider(value=info["length_penalty"])}

        overview = [summary, about.card, about.config, translate.examples, translate.source, translate.length_penalty,
                    translate.reverse_weight, step.tree_penalty]
        for event, name in ((model.change, "model_info"), (demo.load, "model_info_on_load")):
            show_errors(event(on_model_selected, [model, session], overview, api_name=name,
                              show_progress_on=[summary]), summary, overview, session)
        # the Step tab starts from the sentence the Translate tab's heatmap shows
        translate.trace.change(None, translate.trace, step.source, js="(trace) => trace ? trace.source : ''",
                               api_name="step_from_translate", api_visibility="private", queue=False)
        # and so does the Explain tab
        translate.trace.change(None, translate.trace, explain.source, js="(trace) => trace ? trace.source : ''",
                               api_name="explain_from_translate", api_visibility="private", queue=False)
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def launch(demo: gr.Blocks | None = None, **kwargs):
    """Apply the start-up settings, then launch with the app's theme, CSS and script (gradio 6 takes them in
    launch())."""
    service.startup()
    demo = demo or build_demo()
    kwargs.setdefault("server_name", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    kwargs.setdefault("max_file_size", service.MAX_FILE_BYTES)  # gradio stops bigger uploads while receiving
    # gradio keeps every session's state (0.4 to 0.8 MB measured: its copy of the page and last outputs)
    kwargs.setdefault("state_session_capacity", service.MAX_SESSIONS)
    return demo.launch(theme=THEME, css=CSS, js=APP_JS, **kwargs)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    if os.environ.get("SPACES_ZERO_GPU"):
        service.preload()  # ZeroGPU moves start-up CUDA tensors to the GPU it lends
    launch()
