"""What the Gradio app calls: one function per UI event, plain data in and out.

The app (app.py) never imports torch; each of its event handlers calls exactly one function here and maps
the returned dict onto components. Inputs and outputs are strings, numbers, lists, dicts, plotly figures
and file paths. One module per concern:

    common.py        UserError, start-up settings, markdown escaping, number and text checks
    models.py        the model list, the shared cache of bundled models, a browser `Session`'s own models
    translation.py   the Translate tab: translate, attention views, export, beam tree
    stepping.py      the Step tab: one greedy decode per click
    fine_tuning.py   the Fine-tune tab: pairs from text and files, then prepare / run in a worker / finish
    hub.py           the Model tab's Hub actions: load into a session, push with the user's token
    explaining.py    the Explain tab: attribution beside attention, scoring a translation, state
                     trajectories, the three attention scores side by side

State lives with the caller, never here: a `Session` (gr.State) holds that browser session's own models,
and the Step tab's state is a plain dict, also in gr.State. The only module-level mutable object is a
read-only cache of the bundled models, loaded once on first use and shared by every session. Nothing
touches the network unless the user loads/pushes a Hub model or S2S_MODELS is set.

Every user mistake raises `UserError` (a ValueError) with a message a person can act on; the app shows it
instead of a stack trace.
"""
from ..api import DecodeOptions  # its RANGES size the app's sliders
from .common import MAX_INPUT_CHARS, UserError, startup
from .retention import MAX_SESSIONS
from .fine_tuning import (
    MAX_EPOCHS,
    MAX_FILE_BYTES,
    MAX_LR,
    MAX_MINUTES,
    MAX_PAIRS,
    MAX_WORDS,
    MIN_LR,
    cancel_fine_tune,
    fine_tune,
    new_cancel_token,
    read_training_pairs,
    split_pairs,
)
from .explaining import compare_attention_scores, explain_translation, explain_views, score_models, \
    state_trajectories
from .hub import load_from_hub, push_to_hub
from .models import (
    MAX_SESSION_MODELS,
    OwnModel,
    Session,
    bundled_models,
    checkpoints_dir,
    close_session,
    default_model,
    describe,
    error_note,
    get_translator,
    model_choices,
    model_label,
    model_menu,
    model_overview,
    preload,
)
from .stepping import step_back, step_force, step_model_changed, step_next, step_reset, step_run, step_start
from ..sentences import split_sentences
from .translation import attention_views, beam_tree, coverage_markdown, decode_options, export_png, export_trace, \
    prepare_png_export, sentence_views, translate, translate_again

__all__ = [
    "DecodeOptions", "MAX_EPOCHS", "MAX_FILE_BYTES", "MAX_INPUT_CHARS", "MAX_LR", "MAX_MINUTES", "MAX_PAIRS",
    "MAX_SESSION_MODELS", "MAX_SESSIONS", "MAX_WORDS", "MIN_LR", "OwnModel", "Session", "UserError", "attention_views",
    "beam_tree", "bundled_models", "compare_attention_scores", "explain_translation", "explain_views",
    "score_models", "state_trajectories", "cancel_fine_tune", "checkpoints_dir", "close_session", "coverage_markdown",
    "decode_options", "default_model", "describe", "error_note", "export_png", "export_trace", "fine_tune",
    "get_translator", "load_from_hub", "model_choices", "model_label", "model_menu", "model_overview",
    "new_cancel_token", "preload", "prepare_png_export", "push_to_hub", "read_training_pairs", "sentence_views", "split_pairs",
    "split_sentences", "startup", "step_back", "step_force", "step_model_changed", "step_next", "step_reset",
    "step_run", "step_start", "translate", "translate_again",
]
