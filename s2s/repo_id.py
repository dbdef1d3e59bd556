"""Hub repository ids: the one parser that s2s.hub, the model cards and the app use.

A leaf module (no s2s imports, no huggingface_hub), so anything may import it cheaply.
"""
from __future__ import annotations

import logging
import os
import re

_NAME = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"  # the Hub's rule: word chars at both ends
_REPO_ID = re.compile(rf"({_NAME})/({_NAME})")
_HUB_URL = re.compile(r"https://huggingface\.co/([^/?#\s]+)/([^/?#\s]+)/?")
_TREE_URL = re.compile(r"https://huggingface\.co/([^/]+/[^/]+)/(?:tree|blob|resolve)/([^/?#]+).*")
_HINT = "expected user/repo or https://huggingface.co/user/repo"
_REF_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")  # one part of a branch or tag name
logger = logging.getLogger("s2s.hub")


class HubError(ValueError):
    """Loading from or pushing to the Hub failed; the message says why and what to do."""


def parse_repo_id(spec: str) -> str:
    """'user/repo' or 'https://huggingface.co/user/repo' -> 'user/repo'; anything else raises HubError."""
    if not isinstance(spec, str):
        raise HubError(f"a Hub repo id must be a string like user/repo, got {type(spec).__name__}")
    text = spec.strip()
    if not text:
        raise HubError(f"empty model name: {_HINT}")
    if re.search(r"\s", text):
        raise HubError(f"{_short(spec)} is not a valid Hub repo id: it contains whitespace; {_HINT}")
    if "://" in text:
        match = _HUB_URL.fullmatch(text)
        if not match:
            tree = _TREE_URL.fullmatch(text)
            if tree:
                raise HubError(f"{_short(spec)}: give the repo URL or id without /tree/...; pin a version with "
                               f"--revision {tree.group(2)[:100]} (revision={tree.group(2)[:100]!r} in Python)")
            raise HubError(f"{_short(spec)} is not a Hugging Face model URL: {_HINT}")
        text = f"{match.group(1)}/{match.group(2)}"
    match = _REPO_ID.fullmatch(text)
    if not match or "--" in text or ".." in text or text.endswith(".git") or len(text) > 96:
        raise HubError(f"{_short(spec)} is not a valid Hub repo id: {_HINT} (letters, digits, '-', '_', '.'; "
                       "no '--' or '..'; at most 96 characters)")
    return text


def parse_revision(revision: str | None) -> str | None:
    """A branch or tag name (parts joined by '/', e.g. v1.0 or refs/pr/1) or a commit sha; None stays None.

    Never a path: no empty part, no part starting with '.', no '..', no backslash, at most 128 characters.
    huggingface_hub joins a revision onto its cache folder, so anything else could name a folder elsewhere.
    """
    if revision is None:
        return None
    if not isinstance(revision, str):
        raise HubError(f"invalid revision: expected a string, got {type(revision).__name__}")
    parts = revision.split("/")
    if (len(revision) > 128 or ".." in revision or not all(_REF_PART.fullmatch(part) for part in parts)
            or any(part.endswith(".lock") for part in parts)):
        raise HubError(f"invalid revision {_short(revision)}: give a branch or tag name (letters, digits, "
                       "'-', '_', '.', parts joined by '/') or a commit sha")
    return revision


def _short(text: str, limit: int = 100) -> str:
    """repr of user input for a message, cut to `limit` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


def is_repo_id(name: str) -> bool:
    """True when `name` is already a plain repo id (user/repo), not a URL, path or bundled name."""
    try:
        return parse_repo_id(name) == name
    except HubError:
        return False


def parse_model_list(text: str) -> tuple[list[str], list[str]]:
    """Split 'user/a, user/b' (commas and/or whitespace) into repo ids; returns (repo_ids, problems)."""
    models, problems = [], []
    for entry in re.split(r"[,\s]+", text or ""):
        if not entry:
            continue
        try:
            repo_id = parse_repo_id(entry)
        except HubError as err:
            problems.append(str(err))
            continue
        if repo_id not in models:
            models.append(repo_id)
    return models, problems


def models_from_env(variable: str = "S2S_MODELS") -> list[str]:
    """Hub models a deployment (e.g. a Space) asks the app to offer, from S2S_MODELS="user/a,user/b".

    Invalid entries are logged as warnings and skipped, so a typo never stops the app from starting.
    """
    models, problems = parse_model_list(os.environ.get(variable, ""))
    for problem in problems:
        logger.warning("%s: ignoring an entry: %s", variable, problem)
    return models
