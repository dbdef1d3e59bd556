"""s2s: a translator that shows its reasoning (Gradio app; also the Hugging Face Space entry point).

This file only builds the interface. Every event handler calls exactly one
function of `s2s.service`, which takes and returns plain data (strings, numbers,
lists, dicts, plotly figures, file paths); there is no torch here. Per-user data
lives in gr.State: the session's own models (fine-tuned or loaded from the Hub),
the step-by-step state and the cancel flag of a fine-tuning run.

Run locally:  python app.py   (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change where it listens;
S2S_CHECKPOINTS to point at another folder of checkpoint folders; S2S_MODELS for Hub repo ids).
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
from pathlib import Path

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


def _friendly(fn):
    """Show service errors as a message in the UI (gr.Error), never as a stack trace."""

    def translate_error(err: Exception) -> gr.Error:
        if isinstance(err, gr.Error):
            return err
        if isinstance(err, ValueError):  # UserError, DataError, CheckpointError, HubError
            return gr.Error(str(err), print_exception=False)
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"Something went wrong ({type(err).__name__}); the details are in the server log.",
                        print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - shown to the user
                raise translate_error(err) from None
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - shown to the user
            raise translate_error(err) from None
    return call


# ---------------------------------------------------------------------- event handlers (one service call each)
@_friendly
def on_model_selected(model, session):
    info = service.model_overview(model, session)
    # the length-penalty sliders start at the α tuned for this model on its validation data
    return (info["summary"], info["card"], info["config"],
            gr.Dataset(samples=[[e] for e in info["examples"]]),
            gr.Slider(value=info["length_penalty"]), gr.Slider(value=info["length_penalty"]))


@_friendly
def on_translate(model, text, method, beam_size, length_penalty, nbest, temperature, top_k, top_p, seed, merge,
                 session):
    result = service.translate(model, text, method, beam_size, length_penalty, nbest, temperature, top_k, top_p,
                               seed, merge, session)
    if result["notice"]:
        gr.Warning(result["notice"])
    return (result["translation"], result["nbest"], result["heatmap"], result["coverage"], result["coverage_notes"],
            result["beam_tree"], result["trace"])


@_friendly
def on_merge(trace, merge):
    views = service.attention_views(trace, merge)
    return views["heatmap"], views["coverage"], views["coverage_notes"]


@_friendly
def on_export(trace, merge, session):
    result = service.export_trace(trace, merge, session)
    return result["files"], result["message"]


def _step_outputs(view: dict) -> tuple:
    return (view["state"], view["status"], view["prefix"], view["continuation"], view["candidates"],
            gr.Radio(choices=view["choices"], value=None), view["step_attention"], view["heatmap"])


@_friendly
def on_step_start(model, text, session):
    return _step_outputs(service.step_start(model, text, session))


@_friendly
def on_step_next(state, session):
    return _step_outputs(service.step_next(state, session))


@_friendly
def on_step_back(state, session):
    return _step_outputs(service.step_back(state, session))


@_friendly
def on_step_run(state, session):
    return _step_outputs(service.step_run(state, session))


@_friendly
def on_step_reset(state, session):
    return _step_outputs(service.step_reset(state, session))


@_friendly
def on_force_candidate(state, piece, session):
    return _step_outputs(service.step_force(state, piece, session, exact=True))


@_friendly
def on_force_typed(state, token, session):
    return _step_outputs(service.step_force(state, token, session, exact=False))


@_friendly
def on_beam_tree(model, text, beam_size, length_penalty, session):
    result = service.beam_tree(model, text, beam_size, length_penalty, session)
    return result["figure"], result["translation"]


@_friendly
def on_fine_tune_prepare():
    return service.new_cancel_token()


@_friendly
def on_fine_tune_cancel(token):
    return service.cancel_fine_tune(token)


@_friendly
def on_fine_tune(base_model, pairs_text, files, epochs, lr, session, cancel, progress=gr.Progress()):
    for update in service.fine_tune(base_model, pairs_text, files, epochs, lr, session, cancel):
        progress(update["progress"], desc="Fine-tuning")
        final = "selected" in update
        yield (update.get("status", gr.skip()), update.get("loss", gr.skip()), update.get("table", gr.skip()),
               update.get("bleu", gr.skip()),
               gr.Dropdown(choices=update["choices"], value=update["selected"]) if final else gr.skip(),
               gr.Dropdown(choices=update["choices"]) if final else gr.skip(),
               update.get("zip", gr.skip()), update.get("session", gr.skip()))


@_friendly
def on_push(model, repo_id, token, private, session):
    return service.push_to_hub(model, repo_id, token, private, session)


@_friendly
def on_hub_load(repo_id, revision, session):
    result = service.load_from_hub(repo_id, revision, session)
    return (gr.Dropdown(choices=result["choices"], value=result["selected"]), gr.Dropdown(choices=result["choices"]),
            result["message"], result["session"])


# ---------------------------------------------------------------------- layout
def build_demo() -> gr.Blocks:
    """The whole app as a gr.Blocks (not launched)."""
    models = service.bundled_models()
    first = models[0] if models else None
    no_models = "" if models else (f"_No bundled model was found in `{service.checkpoints_dir()}`: load one from "
                                   "the Hub in the Model tab._")
    with gr.Blocks(title="s2s — a translator that shows its reasoning", delete_cache=(3600, 7200)) as demo:
        session = gr.State(service.new_session(), delete_callback=service.close_session)
        gr.Markdown(HEADER, elem_classes="s2s-header")
        with gr.Row(equal_height=True):
            model = gr.Dropdown(models, value=first, label="Model", scale=1, min_width=260, elem_id="model-picker",
                                info="Bundled models, plus those you load or fine-tune in this browser tab")
            summary = gr.Markdown(no_models, label="Model summary", elem_classes="s2s-note")

        with gr.Tabs():
            # ------------------------------------------------------------ 1. Translate
            with gr.Tab("Translate", id="translate"):
                with gr.Row():
                    with gr.Column(scale=3):
                        source = gr.Textbox(label="Source sentence", lines=3, max_length=service.MAX_INPUT_CHARS,
                                            placeholder="Type a sentence in the model's source language",
                                            elem_id="source")
                        examples = gr.Dataset(components=[source], samples=[], label="Examples (click one)",
                                              samples_per_page=6, elem_id="translate-examples")
                        translate_btn = gr.Button("Translate", variant="primary", elem_id="translate-btn")
                        translation = gr.Textbox(label="Translation", lines=2, interactive=False, buttons=["copy"],
                                                 elem_id="translation", elem_classes="s2s-translation")
                    with gr.Column(scale=2):
                        method = gr.Radio(["greedy", "beam", "sample"], value="greedy", label="Decoding",
                                          info="greedy: most likely piece each step; beam: keep several "
                                               "hypotheses; sample: draw at random")
                        with gr.Group(visible=False) as beam_controls:
                            beam_size = gr.Slider(1, 12, value=5, step=1, label="Beam width")
                            length_penalty = gr.Slider(0.0, 3.0, value=1.0, step=0.1, label="Length penalty α",
                                                       info="score = log p / length^α (0: no normalisation)")
                            nbest = gr.Slider(1, 12, value=3, step=1, label="n-best", info="at most the beam width")
                        with gr.Group(visible=False) as sample_controls:
                            temperature = gr.Slider(0.05, 3.0, value=1.0, step=0.05, label="Temperature")
                            top_k = gr.Slider(0, 100, value=0, step=1, label="Top-k (0: off)")
                            top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p (nucleus)")
                            seed = gr.Number(value=1, precision=0, label="Seed (empty: random)")
                        nbest_table = gr.Dataframe(headers=["#", "translation", "score", "log-prob"],
                                                   label="n-best list (score = length-normalised log-prob)",
                                                   interactive=False, wrap=True,
                                                   column_widths=["8%", "52%", "20%", "20%"])
                merge = gr.Checkbox(label="Merge subword pieces into words", value=False,
                                    info="source word: sum of its pieces' attention; "
                                         "target word: mean of its pieces' rows")
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
                    trace = gr.JSON(label="Trace")

            # ------------------------------------------------------------ 2. Step by step
            with gr.Tab("Step by step", id="step"):
                gr.Markdown("Decode one piece at a time. At each step you see the model's top candidates and where it "
                            "looks in the source. Pick another candidate (or type a word) to force it, and see how the "
                            "rest of the translation changes.", elem_classes="s2s-note")
                with gr.Row():
                    step_source = gr.Textbox(label="Source sentence", scale=4, elem_id="step-source",
                                             max_length=service.MAX_INPUT_CHARS)
                    start_btn = gr.Button("Start", variant="primary", scale=1, elem_id="step-start")
                with gr.Row():
                    next_btn = gr.Button("Next ▶", elem_id="step-next")
                    back_btn = gr.Button("◀ Back", elem_id="step-back")
                    run_btn = gr.Button("Run to end ▸▸", elem_id="step-run")
                    reset_btn = gr.Button("Reset ↺", elem_id="step-reset")
                step_status = gr.Markdown(label="Step status", elem_id="step-status")
                step_prefix = gr.HighlightedText(label="Translation so far (pieces you forced are marked)",
                                                 color_map={"forced": "#e45756"}, show_legend=False,
                                                 elem_id="step-prefix")
                continuation = gr.Textbox(label="If the model went on greedily from here", interactive=False,
                                          elem_id="step-continuation")
                with gr.Row():
                    with gr.Column():
                        candidates = gr.Plot(label="Top candidates", elem_id="step-candidates")
                        candidate_pick = gr.Radio([], label="Force one of the candidates (what if?)",
                                                  elem_id="step-pick")
                        with gr.Row():
                            typed = gr.Textbox(label="…or type a word or piece to force", scale=3,
                                               placeholder="e.g. Frau, ▁Hund or </s>", elem_id="step-typed")
                            force_btn = gr.Button("Force", scale=1, elem_id="step-force")
                    with gr.Column():
                        step_attention = gr.Plot(label="Attention at this step", elem_id="step-attention")
                step_heatmap = gr.Plot(label="Attention so far", elem_id="step-heatmap")
                with gr.Accordion("Beam search tree", open=False):
                    gr.Markdown("Beam search keeps the *k* best partial translations at every step. Nodes are "
                                "hypotheses (hover: cumulative log-prob), grey ones were pruned, green diamonds "
                                "finished with `</s>`; the red path is the best translation.", elem_classes="s2s-note")
                    with gr.Row():
                        tree_width = gr.Slider(1, 8, value=3, step=1, label="Beam width")
                        tree_penalty = gr.Slider(0.0, 3.0, value=1.0, step=0.1, label="Length penalty α")
                        tree_btn = gr.Button("Draw the beam tree for this sentence")
                    tree_translation = gr.Textbox(label="Beam search translation", interactive=False)
                    tree_plot = gr.Plot(label="Beam tree", elem_id="step-beam-tree")
                step_state = gr.State(None)

            # ------------------------------------------------------------ 3. Fine-tune
            with gr.Tab("Fine-tune", id="fine-tune"):
                gr.Markdown(FINE_TUNE_HELP, elem_classes="s2s-note")
                with gr.Row():
                    with gr.Column(scale=3):
                        pairs_text = gr.Textbox(label="Sentence pairs (source<TAB>target[<TAB>test])", lines=10,
                                                placeholder=PAIRS_PLACEHOLDER, elem_id="ft-pairs")
                        pair_files = gr.File(label="…or upload a TSV/CSV file, or two line-aligned text files "
                                                   "(source first)", file_count="multiple", elem_id="ft-files")
                    with gr.Column(scale=2):
                        base_model = gr.Dropdown(models, value=first, label="Base model", elem_id="ft-base")
                        epochs = gr.Slider(1, service.MAX_EPOCHS, value=3, step=1, label="Epochs", elem_id="ft-epochs")
                        lr = gr.Number(value=5e-4, label=f"Learning rate ({service.MIN_LR:g} to {service.MAX_LR:g})")
                        with gr.Row():
                            ft_start = gr.Button("Start fine-tuning", variant="primary", elem_id="ft-start")
                            ft_cancel = gr.Button("Cancel", variant="stop", elem_id="ft-cancel")
                        ft_cancel_note = gr.Markdown(label="Cancel message")
                        ft_status = gr.Markdown(label="Fine-tuning status", elem_id="ft-status")
                        ft_bleu = gr.Markdown(label="Held-out BLEU", elem_id="ft-bleu")
                ft_loss = gr.Plot(label="Loss", elem_id="ft-loss")
                ft_table = gr.Dataframe(headers=["source", "reference", "base model", "fine-tuned"],
                                        label="Held-out pairs: before and after", interactive=False, wrap=True,
                                        column_widths=["25%", "25%", "25%", "25%"])
                ft_zip = gr.File(label="Download the fine-tuned checkpoint (zip)", interactive=False, elem_id="ft-zip")
                with gr.Accordion("Push the selected model to the Hugging Face Hub", open=False):
                    gr.Markdown("Uploads the checkpoint folder of the model selected at the top (e.g. your fine-tuned "
                                "model) with its model card. The token is used for this upload only; it is never "
                                "stored or logged.", elem_classes="s2s-note")
                    with gr.Row():
                        push_repo = gr.Textbox(label="Repository id", placeholder="your-name/s2s-en-de-custom")
                        push_token = gr.Textbox(label="Access token (write)", type="password")
                        push_private = gr.Checkbox(label="Private", value=True)
                    push_btn = gr.Button("Push to the Hub")
                    push_message = gr.Markdown(label="Push message")
                cancel_token = gr.State(None)

            # ------------------------------------------------------------ 4. Model
            with gr.Tab("Model", id="model"):
                with gr.Row():
                    hub_repo = gr.Textbox(label="Load a model from the Hugging Face Hub", scale=3,
                                          placeholder="user/s2s-en-de", elem_id="hub-repo")
                    hub_revision = gr.Textbox(label="Revision (optional)", scale=1, placeholder="main")
                    hub_btn = gr.Button("Load", scale=1)
                hub_message = gr.Markdown(label="Load message")
                with gr.Row():
                    with gr.Column(scale=3):
                        card = gr.Markdown(label="Model card", elem_id="model-card")
                    with gr.Column(scale=2):
                        config = gr.JSON(label="config.json")

        # ---------------------------------------------------------------- events
        model_outputs = [summary, card, config, examples, length_penalty, tree_penalty]
        model.change(on_model_selected, [model, session], model_outputs, api_name="model_info")
        demo.load(on_model_selected, [model, session], model_outputs, api_name="model_info_on_load")
        examples.click(lambda sample: (sample[0], sample[0]), examples, [source, step_source], api_name="pick_example",
                       api_visibility="private", queue=False)
        method.change(lambda m: (gr.Group(visible=m == "beam"), gr.Group(visible=m == "sample")), method,
                      [beam_controls, sample_controls], api_name="decoding_controls", api_visibility="private",
                      queue=False)
        gr.on([translate_btn.click, source.submit], on_translate,
              [model, source, method, beam_size, length_penalty, nbest, temperature, top_k, top_p, seed, merge,
               session],
              [translation, nbest_table, heatmap, coverage, coverage_notes, beam_tree, trace], api_name="translate",
              concurrency_limit=DECODE_LIMIT, concurrency_id="decode")
        merge.input(on_merge, [trace, merge], [heatmap, coverage, coverage_notes], api_name="attention_views")
        export_btn.click(on_export, [trace, merge, session], [export_files, export_message], api_name="export",
                         concurrency_limit=2)

        step_outputs = [step_state, step_status, step_prefix, continuation, candidates, candidate_pick,
                        step_attention, step_heatmap]
        step = dict(concurrency_limit=DECODE_LIMIT, concurrency_id="decode")
        gr.on([start_btn.click, step_source.submit], on_step_start, [model, step_source, session], step_outputs,
              api_name="step_start", **step)
        next_btn.click(on_step_next, [step_state, session], step_outputs, api_name="step_next", **step)
        back_btn.click(on_step_back, [step_state, session], step_outputs, api_name="step_back", **step)
        run_btn.click(on_step_run, [step_state, session], step_outputs, api_name="step_run", **step)
        reset_btn.click(on_step_reset, [step_state, session], step_outputs, api_name="step_reset", **step)
        candidate_pick.input(on_force_candidate, [step_state, candidate_pick, session], step_outputs,
                             api_name="step_force_candidate", **step)
        gr.on([force_btn.click, typed.submit], on_force_typed, [step_state, typed, session], step_outputs,
              api_name="step_force", **step)
        tree_btn.click(on_beam_tree, [model, step_source, tree_width, tree_penalty, session],
                       [tree_plot, tree_translation], api_name="beam_tree", **step)

        ft_start.click(on_fine_tune_prepare, None, cancel_token, api_name="fine_tune_prepare", queue=False).then(
            on_fine_tune, [base_model, pairs_text, pair_files, epochs, lr, session, cancel_token],
            [ft_status, ft_loss, ft_table, ft_bleu, model, base_model, ft_zip, session], api_name="fine_tune",
            concurrency_limit=1, concurrency_id="fine_tune")
        ft_cancel.click(on_fine_tune_cancel, cancel_token, ft_cancel_note, api_name="fine_tune_cancel", queue=False)
        push_btn.click(on_push, [model, push_repo, push_token, push_private, session], push_message,
                       api_name="push", concurrency_limit=1, concurrency_id="hub")
        hub_btn.click(on_hub_load, [hub_repo, hub_revision, session], [model, base_model, hub_message, session],
                      api_name="load_model", concurrency_limit=2, concurrency_id="hub")
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def launch(demo: gr.Blocks | None = None, **kwargs):
    """Launch with the app's theme and CSS (gradio 6 takes them in launch())."""
    demo = demo or build_demo()
    kwargs.setdefault("server_name", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    return demo.launch(theme=THEME, css=CSS, **kwargs)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    if os.environ.get("SPACES_ZERO_GPU"):
        service.preload()  # ZeroGPU moves start-up CUDA tensors to the GPU it lends
    launch()
