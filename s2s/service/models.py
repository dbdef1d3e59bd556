"""The models a browser session can use.

Bundled models (checkpoint folders under S2S_CHECKPOINTS, default checkpoints/, plus Hub repo ids in
S2S_MODELS) are loaded once on first use into a read-only cache that every session shares. A session's own
models (fine-tuned, or loaded from the Hub) live in its `Session`, which the app keeps in gr.State: another
session never sees them.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from huggingface_hub import ModelCard

from ..api import Continuation, Translator
from ..card import architecture
from ..repo_id import models_from_env
from . import retention
from .common import UserError, md

log = logging.getLogger("s2s.service")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_FILE = ROOT / "assets" / "examples.json"
MAX_SESSION_MODELS = 5  # fine-tuned or Hub models one browser session may hold (server memory)
LANGUAGES = dict(en="English", de="German", fr="French", cs="Czech", es="Spanish", it="Italian")
DEFAULT_MODEL = "en-de"  # the app opens on it when it is bundled
# what a bundled model was trained on (training.json's recipe corpus), as the model picker names it
DOMAINS = dict(mixed="everyday", multi30k="captions", tatoeba="Tatoeba")
TRAINED_ON = dict(mixed="everyday sentences (Tatoeba) and image captions (Multi30k)",
                  multi30k="image captions only (Multi30k)", tatoeba="everyday sentences (Tatoeba)")

_CACHE: dict[str, Translator] = {}
_CACHE_LOCK = threading.Lock()


@dataclass
class OwnModel:
    """A model of one browser session."""

    translator: Translator
    origin: str  # how it got here, e.g. "loaded from the Hub in this browser session"
    folder: Path | None = None  # its checkpoint folder: model card, upload to the Hub
    archive: Path | None = None  # a fine-tuned model's zip, offered for download
    last_used: float = 0.0  # retention.clock() when it was last asked for


@dataclass
class Session:
    """A browser session's private data (the app's gr.State): its own models and a folder for its files.

    How long they stay is `retention`'s business: it adds models (`add_model`) and takes them back.
    """

    models: dict[str, OwnModel] = field(default_factory=dict)
    fine_tunes: int = 0  # numbers the fine-tuned models: base-ft1, base-ft2, ...
    folder: Path | None = None
    removed: dict[str, str] = field(default_factory=dict)  # models the server took back -> why
    error: str = ""  # the last refused request's message, until the app shows it next to its control
    last_used: float = field(default_factory=retention.clock)
    # The Step tab's last two decodes with their decoder states (api.Continuation), newest first: the next
    # click resumes from them instead of replaying the sentence. A cache only: the tab's state dict (which a
    # client sends back) says what the prefix is; a continuation that does not fit it is not used.
    # About 4 KB per source piece and 4 KB per target piece each (~0.2 MB for a 15-word sentence).
    stepping: tuple[Continuation, ...] = ()

    def files(self) -> Path:
        """This session's temporary folder (made on first use)."""
        if self.folder is None or not self.folder.is_dir():
            self.folder = Path(tempfile.mkdtemp(prefix=retention.folder_prefix()))
            retention.track(self)
        return self.folder

    def add_model(self, name: str, own: OwnModel) -> None:
        """A new model of this session; the server may take back the least recently used of anyone's."""
        retention.admit(self, name, own)

    def check_room(self) -> None:
        if len(self.models) >= MAX_SESSION_MODELS:
            raise UserError(f"This browser session already holds {MAX_SESSION_MODELS} models of its own (the "
                            "server's limit). Reload the page to start a fresh session.")

    def close(self) -> None:
        """Release the session's models and delete its files (gr.State calls this when the session ends)."""
        retention.close(self)


def error_note(session: Session | None) -> str:
    """The message of this session's last refused request, as markdown to show next to the control that
    sent it (then forgotten)."""
    if session is None or not session.error:
        return ""
    message, session.error = session.error, ""
    return f"⚠️ {md(message)}"


def close_session(session: Session | None) -> None:
    if session is not None:
        session.close()


def checkpoints_dir() -> Path:
    """Where bundled checkpoint folders live: env S2S_CHECKPOINTS, else checkpoints/ in the repository."""
    return Path(os.environ.get("S2S_CHECKPOINTS") or ROOT / "checkpoints")


def _local_models() -> dict[str, Path]:
    folder = checkpoints_dir()
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir())
            if p.is_dir() and not p.name.startswith(".") and (p / "config.json").is_file()}


def bundled_models() -> list[str]:
    """Names of the models every session can use: local checkpoint folders, then S2S_MODELS repo ids."""
    local = list(_local_models())
    return local + [m for m in models_from_env() if m not in local]


def default_model() -> str | None:
    """The model the app opens on: DEFAULT_MODEL when it is bundled, else the first bundled model."""
    models = bundled_models()
    return DEFAULT_MODEL if DEFAULT_MODEL in models else (models[0] if models else None)


def model_menu(session: Session | None = None) -> list[tuple[str, str]]:
    """The model picker's (label, name) choices: bundled models, then this session's own. A label names the
    direction and what the model knows, e.g. "English → German · everyday"; a repeated label gets the name."""
    names = model_choices(session)
    labels = [model_label(name, session) for name in names]
    sizes = [_hidden_size(name) for name in names]
    for i, name in enumerate(names):  # a smaller model beside a bigger one of the same label, e.g. the
        peers = [sizes[j] for j, label in enumerate(labels) if label == labels[i]]  # attention-score models
        if 0 < sizes[i] < max(peers):
            labels[i] += f" · small, {_read_json(_local_models()[name] / 'config.json').get('attention')} attention"
    return [(label if labels.count(label) == 1 else f"{label} ({name})", name) for label, name in zip(labels, names)]


def _hidden_size(name: str) -> int:
    """A bundled model's decoder size from its config.json (0 for a session's or a Hub model)."""
    folder = _local_models().get(name)
    size = _read_json(folder / "config.json").get("hidden_size") if folder is not None else 0
    return size if isinstance(size, int) else 0


def model_label(name: str, session: Session | None = None) -> str:
    """"English → German · everyday": direction and domain, read from the checkpoint's files (no loading)."""
    own = (session or Session()).models.get(name)
    if own is not None:
        c = own.translator.config
        kind = "fine-tuned" if own.archive is not None else "from the Hub"  # only fine-tuning makes a zip
        return f"{_direction(c.src_lang, c.tgt_lang)} · {kind} ({name})"
    folder = _local_models().get(name)
    if folder is None:
        return f"{name} (Hub)"
    config, recipe = _read_json(folder / "config.json"), _recipe(folder)
    domain = DOMAINS.get(str(recipe.get("corpus", "")).lower(), name)
    return f"{_direction(config.get('src_lang', '?'), config.get('tgt_lang', '?'))} · {domain}"


def _direction(src: str, tgt: str) -> str:
    return f"{LANGUAGES.get(src, src)} → {LANGUAGES.get(tgt, tgt)}"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _recipe(folder: Path | None) -> dict:
    """The training recipe a checkpoint folder records in training.json ({} when there is none)."""
    recipe = _read_json(folder / "training.json").get("recipe") if folder is not None else None
    return recipe if isinstance(recipe, dict) else {}


def model_choices(session: Session | None = None) -> list[str]:
    """Everything the model picker offers this session: bundled models, then the session's own."""
    shared = bundled_models()
    return shared + [name for name in (session or Session()).models if name not in shared]


def get_translator(name: str | None, session: Session | None = None) -> Translator:
    """The Translator called `name`: this session's own model, or a bundled one (loaded once, cached)."""
    if not name:
        raise UserError("No model is selected. Pick one in the model list, or load one in the Model tab.")
    own = (session or Session()).models.get(name)
    if own is not None:
        retention.touch(session, name)
        return own.translator
    if session is not None and name in session.removed:
        raise UserError(f"{name} is no longer on the server: {session.removed[name]}. Fine-tune or load it again.")
    if session is not None:
        retention.touch(session)
    local = _local_models()
    key = str(local[name].resolve()) if name in local else f"hub:{name}"  # a path: tests swap S2S_CHECKPOINTS
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load_bundled(name, local, session)
        return _CACHE[key]


def _load_bundled(name: str, local: dict[str, Path], session: Session | None) -> Translator:
    try:
        if name in local:
            return Translator.load(local[name], device="auto", name=name)
        if name in models_from_env():
            from ..hub import load  # the Hub client is only needed for S2S_MODELS

            translator = load(name, device="auto")
            translator.name = name
            return translator
    except ValueError as err:  # CheckpointError, HubError: already a clear message
        raise UserError(f"Model {name!r} cannot be loaded: {err}") from None
    except Exception as err:
        log.exception("loading %s failed", name)
        raise UserError(f"Model {name!r} cannot be loaded ({type(err).__name__}: {err}).") from None
    raise UserError(f"Unknown model {name!r}. Available: {', '.join(model_choices(session)) or 'none'}.")


def preload(names: Sequence[str] | None = None) -> None:
    """Load the bundled models now (ZeroGPU wants models on the GPU at start-up); errors are logged."""
    for name in names if names is not None else bundled_models():
        try:
            get_translator(name)
        except UserError as err:
            log.warning("%s", err)


def model_folder(name: str, session: Session) -> Path | None:
    """The checkpoint folder of a model: the session's own, or a bundled local one (None for Hub models)."""
    own = session.models.get(name)
    return own.folder if own is not None else _local_models().get(name)


def describe(translator: Translator) -> str:
    """One line: languages, architecture, device."""
    c = translator.config
    src, tgt = LANGUAGES.get(c.src_lang, c.src_lang), LANGUAGES.get(c.tgt_lang, c.tgt_lang)
    return f"{src} → {tgt} · {architecture(c)} · on {translator.device}"


def model_overview(name: str, session: Session | None = None) -> dict:
    """Model tab and examples: card (markdown, front matter removed), config, a summary line that says what
    the model was trained on, its own examples, its length penalty and its reranking weight (0 without a reverse
    model at hand)."""
    session = session or Session()
    translator = get_translator(name, session)
    own = session.models.get(name)
    bundled = name in _local_models()
    folder = model_folder(name, session)
    card = _card_text(folder)
    if not card:
        repo = name.split("@")[0]
        card = ("_This model has no model card (README.md)._" if bundled or (own and own.folder) else
                f"_The model card of this model is on the Hub: https://huggingface.co/{md(repo)}_")
    c = translator.config
    parameters = sum(p.numel() for p in translator.model.parameters())
    shape = (f"{'bi-' if c.bidirectional else ''}{c.rnn.upper()} {c.encoder_hidden_size} → {c.rnn.upper()} "
             f"{c.hidden_size}, {c.attention} attention, {parameters / 1e6:.1f}M parameters")
    summary = (f"**{md(model_label(name, session))}** · {md(_trained_on(name, own, folder))} · {shape} · "
               f"on {translator.device}")
    return dict(name=name, label=model_label(name, session), summary=summary, card=card, config=c.to_dict(),
                source_language=LANGUAGES.get(c.src_lang, c.src_lang),
                examples=_examples_for(name, translator), length_penalty=c.length_penalty,
                reverse_weight=c.reverse_weight if translator.reverse is not None else 0.0)


def _trained_on(name: str, own: OwnModel | None, folder: Path | None) -> str:
    """What the model learnt from, in words: the recipe's description, else its corpus, else where it came from."""
    recipe = _recipe(folder)
    if own is not None:
        tuned = _read_json(folder / "training.json").get("fine_tune", {}) if folder is not None else {}
        pairs = f" on {tuned['pairs']} of your sentence pairs" if isinstance(tuned, dict) and "pairs" in tuned else ""
        return own.origin + pairs
    description = str(recipe.get("description") or "").strip()
    corpus = str(recipe.get("corpus", "")).lower()
    pairs = _read_json(folder / "training.json").get("train_pairs") if folder is not None else None
    count = f", {pairs:,} sentence pairs" if isinstance(pairs, int) and pairs > 0 else ""
    if description:
        return f"trained on {description}{count}"
    if corpus in TRAINED_ON:
        return f"trained on {TRAINED_ON[corpus]}{count}"
    if corpus:  # a recipe of one's own, e.g. "pairs" from a file: its name, else the corpus
        data = Path(str(recipe.get("data_path") or "")).name
        return f"trained on {data or f'the {corpus} corpus'}{count}"
    return "bundled with the app" if folder is not None else f"{name} from the Hub"


def _card_text(folder: Path | None) -> str:
    """A checkpoint's model card without its YAML front matter ("" when there is none)."""
    if folder is None or not (folder / "README.md").is_file():
        return ""
    text = (folder / "README.md").read_text(encoding="utf-8", errors="replace")
    try:
        return ModelCard(text, ignore_metadata_errors=True).text.lstrip("\n")
    except Exception:  # front matter that is not YAML: show the file as it is
        return text


def _examples_for(name: str, translator: Translator) -> list[str]:
    """Example sentences from assets/examples.json: the model's own (keyed by its name, e.g. en-de-multi30k),
    else its language pair's, else its source language's, else the default ones."""
    try:
        table = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    c = translator.config
    for key in (name, f"{c.src_lang}-{c.tgt_lang}", c.src_lang, "default"):
        if isinstance(table.get(key), list) and table[key]:
            return [str(example) for example in table[key]]
    return []
