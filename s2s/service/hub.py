"""The Model tab's Hub actions: load a model into this browser session, push one with the user's token.

s2s.hub is imported when a Hub action runs, so an installation without a working Hub client still serves
the bundled models (and says so when a Hub action is asked for).
"""
from __future__ import annotations

import importlib
import logging

from ..repo_id import HubError, parse_repo_id, parse_revision
from .common import UserError, md
from .models import OwnModel, Session, describe, model_choices, model_folder, model_menu

log = logging.getLogger("s2s.service")


def load_from_hub(spec: str, revision: str | None = None, session: Session | None = None) -> dict:
    """Download and load a model from the Hub into this session: {"choices" (names), "menu" (the picker's
    (label, name) choices), "selected", "message", "session"}."""
    session = session if session is not None else Session()
    repo_id = _repo_id(spec)
    try:
        revision = parse_revision(revision.strip() or None if isinstance(revision, str) else revision)
    except HubError as err:
        raise UserError(f"{str(err)[:1].upper()}{str(err)[1:]}.") from None
    name = repo_id + (f"@{revision}" if revision else "")
    if name not in session.models:
        session.check_room()
        load = _hub().load
        try:
            translator = load(repo_id, revision=revision, device="auto", local=False)  # never a server folder
        except ValueError as err:  # HubError / CheckpointError: a clear message already
            raise UserError(f"Could not load {name[:100]}: {err}") from None
        except Exception as err:
            log.exception("Hub load of %s failed", name)
            raise UserError(f"Could not load {name[:100]} ({type(err).__name__}: {str(err)[:200]}).") from None
        translator.name = name
        folder = getattr(translator, "folder", None)
        session.add_model(name, OwnModel(translator, "loaded from the Hub in this browser session", folder))
    return dict(choices=model_choices(session), menu=model_menu(session), selected=name, session=session,
                message=f"Loaded **{md(name)}**: {md(describe(session.models[name].translator))}. "
                        "It is in the model list of this browser session.")


def push_to_hub(model: str, repo_id: str, token: str | None, private: bool = True,
                session: Session | None = None) -> str:
    """Upload a model folder (e.g. this session's fine-tuned model) to the Hub; returns a markdown message.

    The token is used for this one call and never stored or logged.
    """
    session = session if session is not None else Session()
    repo = _repo_id(repo_id)
    token = (token or "").strip()
    if not token:
        raise UserError("Paste a Hugging Face access token with write permission (it is not stored).")
    folder = model_folder(model, session) if model else None
    if folder is None or not folder.is_dir():
        raise UserError(f"{model or 'No model'} has no local checkpoint folder to upload; fine-tune a model first.")
    push = _hub().push
    try:
        url = push(str(folder), repo, token=token, private=bool(private))
    except Exception as err:
        message = str(err).replace(token, "***")
        raise UserError(f"Upload to {repo} failed: {message}") from None
    return f"Uploaded **{md(model)}** to [{md(repo)}]({url})."


def _repo_id(spec: str | None) -> str:
    try:
        return parse_repo_id(spec or "")
    except HubError:
        raise UserError("Give a Hub repository id such as user/s2s-en-de (or its https://huggingface.co/ address)."
                        ) from None


def _hub():
    """s2s.hub, imported now (as sys.modules has it: the tests put a local fake there)."""
    try:
        return importlib.import_module("..hub", __package__)
    except Exception as err:
        raise UserError(f"Hub support is not available in this installation ({type(err).__name__}: {err}).") \
            from None
