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

from ..api import Translator
from ..card import architecture
from ..repo_id import models_from_env
from . import retention
from .common import UserError, md

log = logging.getLogger("s2s.service")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_FILE = ROOT / "assets" / "examples.json"
MAX_SESSION_MODELS = 5  # fine-tuned or Hub models one browser session may hold (server memory)
LANGUAGES = dict(en="English", de="German", fr="French", cs="Czech", es="Spanish", it="Italian")

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
    last_used: float = field(default_factory=retention.clock)

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
    """Model tab and examples: card (markdown, front matter removed), config, one-line summary, examples."""
    session = session or Session()
    translator = get_translator(name, session)
    own = session.models.get(name)
    bundled = name in _local_models()
    origin = own.origin if own is not None else "bundled with the app" if bundled else "from the Hub"
    card = _card_text(model_folder(name, session))
    if not card:
        repo = name.split("@")[0]
        card = ("_This model has no model card (README.md)._" if bundled or (own and own.folder) else
                f"_The model card of this model is on the Hub: https://huggingface.co/{md(repo)}_")
    return dict(name=name, summary=f"**{md(name)}** ({origin}): {describe(translator)}",
                card=card, config=translator.config.to_dict(),
                examples=_examples_for(translator), length_penalty=translator.config.length_penalty)


def _card_text(folder: Path | None) -> str:
    """A checkpoint's model card without its YAML front matter ("" when there is none)."""
    if folder is None or not (folder / "README.md").is_file():
        return ""
    text = (folder / "README.md").read_text(encoding="utf-8", errors="replace")
    try:
        return ModelCard(text, ignore_metadata_errors=True).text.lstrip("\n")
    except Exception:  # front matter that is not YAML: show the file as it is
        return text


def _examples_for(translator: Translator) -> list[str]:
    """Example sentences for the model's language pair from assets/examples.json."""
    try:
        table = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    pair = f"{translator.config.src_lang}-{translator.config.tgt_lang}"
    return list(table.get(pair) or table.get(translator.config.src_lang) or table.get("default") or [])
