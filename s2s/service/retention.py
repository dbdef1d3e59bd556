"""How long a browser session's own models and files stay on the server.

A session's own models (fine-tuned, or loaded from the Hub) hold RAM (about 60 MB each for a bundled-size
model) and its folder holds disk (a checkpoint, its zip, exports). Browsers go away without a word, API
clients never say goodbye, and a new session is one page load away, so nothing here waits for a session
to end:

- a server-wide cap: at most MAX_MODELS own models, and MAX_MODEL_BYTES of their weights, over all sessions
  together; adding one beyond either evicts the least recently used, whichever session holds it;
- a time-to-live: a session unused for SESSION_TTL_S loses its models and its folder;
- a sweep at start-up: `s2s-session-<pid>-*` folders of a process that is gone (killed, restarted) are
  deleted; on SIGTERM the process deletes its own first.

A session asked for a model it lost is told why (`Session.removed`). Every change to a session's `models`
happens here, under one lock, by replacing the dict (copy on write): a reader iterating the old dict is
never disturbed.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

log = logging.getLogger("s2s.service")

MAX_MODELS = int(os.environ.get("S2S_MAX_OWN_MODELS") or 16)  # over all sessions
MAX_MODEL_BYTES = int(float(os.environ.get("S2S_MAX_OWN_MODELS_MB") or 1024) * 1024**2)  # their weights in RAM
SESSION_TTL_S = float(os.environ.get("S2S_SESSION_TTL_S") or 3600)
MAX_SESSIONS = int(os.environ.get("S2S_MAX_SESSIONS") or 1000)  # gradio's state_session_capacity (app.launch)
FOLDER_PREFIX = "s2s-session-"
_FOLDER = re.compile(re.escape(FOLDER_PREFIX) + r"(\d+)-")
clock = time.monotonic  # tests replace it

_LOCK = threading.RLock()
_SESSIONS: dict[int, weakref.ref] = {}  # id -> session, for the sessions that hold models or a folder
_FOLDERS: dict[int, Path] = {}  # id -> its folder, deleted when the session object is
_last_expiry = -float("inf")


def folder_prefix() -> str:
    """The prefix of this process's session folders: the start-up sweep tells a live process's folder by it."""
    return f"{FOLDER_PREFIX}{os.getpid()}-"


def track(session: Any) -> None:
    """Know `session` from now on (it has a folder or models); its folder goes when the session object does
    (gradio drops a session's state without a word when it holds too many)."""
    with _LOCK:
        session.last_used = clock()  # in use: a copy of gradio's initial value carries its creation time
        key = id(session)
        if key not in _SESSIONS:
            _SESSIONS[key] = weakref.ref(session, lambda _, key=key: _forget(key))
        if session.folder is not None:
            _FOLDERS[key] = Path(session.folder)


def _forget(key: int) -> None:
    """The session object is gone (a weakref callback: it may run in any thread, during any allocation, so it
    takes no lock; a dict's pop is atomic)."""
    _SESSIONS.pop(key, None)
    folder = _FOLDERS.pop(key, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def touch(session: Any, name: str | None = None) -> None:
    """`session` (and its model `name`) was used now; every few seconds, expire the sessions unused too long."""
    global _last_expiry
    now = clock()
    with _LOCK:
        session.last_used = now
        own = session.models.get(name) if name else None
        if own is not None:
            own.last_used = now
        if now - _last_expiry > 10:
            _last_expiry = now
            _expire(now)


def admit(session: Any, name: str, own: Any) -> None:
    """Add a model to `session`, then evict the least recently used models beyond the server-wide caps."""
    now = clock()
    with _LOCK:
        own.last_used = session.last_used = now
        session.models = {**session.models, name: own}
        session.removed.pop(name, None)
        track(session)
        _expire(now)
        while True:  # evict the least recently used other model while over a cap
            others = [(o.last_used, s, n) for s in _live() for n, o in s.models.items() if not (s is session
                                                                                              and n == name)]
            weights = _bytes(own) + sum(_bytes(s.models[n]) for _, s, n in others)
            if not others or (len(others) < MAX_MODELS and weights <= MAX_MODEL_BYTES):
                break
            _, holder, oldest = min(others, key=lambda item: item[0])
            release(holder, [oldest], f"the server keeps at most {MAX_MODELS} fine-tuned or Hub models "
                                      f"({MAX_MODEL_BYTES / 2**20:,.0f} MB) for all visitors together, and this "
                                      "one was the least recently used")


def release(session: Any, names: list[str] | None = None, reason: str = "") -> None:
    """Drop models of `session` (all when names is None) and delete their files in the session's folder."""
    with _LOCK:
        names = list(session.models) if names is None else names
        gone = {name: session.models[name] for name in names if name in session.models}
        session.models = {name: own for name, own in session.models.items() if name not in gone}
        for name, own in gone.items():
            session.removed[name] = reason
            for path in (own.folder, own.archive):  # only files in the session's own folder (not the Hub cache)
                if path is None or session.folder is None or not _inside(Path(path), session.folder):
                    continue
                if Path(path).is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    Path(path).unlink(missing_ok=True)
            log.info("released %s: %s", name, reason or "session closed")


def close(session: Any) -> None:
    """The session has ended: its models and its folder go."""
    with _LOCK:
        release(session, None, "this browser session ended")
        if session.folder is not None:
            shutil.rmtree(session.folder, ignore_errors=True)
        _SESSIONS.pop(id(session), None)
        _FOLDERS.pop(id(session), None)


def _expire(now: float) -> None:
    for session in _live():
        if now - session.last_used > SESSION_TTL_S:
            release(session, None, f"this browser session was not used for {SESSION_TTL_S / 60:.0f} minutes")
            if session.folder is not None:
                shutil.rmtree(session.folder, ignore_errors=True)
            _SESSIONS.pop(id(session), None)
            _FOLDERS.pop(id(session), None)


def _live() -> list:
    return [s for s in (ref() for ref in _SESSIONS.copy().values()) if s is not None]  # copy: see _forget


def _bytes(own: Any) -> int:
    return sum(p.numel() * p.element_size() for p in own.translator.model.parameters())


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(Path(folder).resolve())


# ---------------------------------------------------------------------- start-up and shutdown
def sweep_stale_folders(root: str | Path | None = None) -> list[Path]:
    """Delete `s2s-session-<pid>-*` folders whose process is gone, and folders of the old unnumbered form
    not changed for SESSION_TTL_S; returns what was deleted. A live process's folders are left alone."""
    root = Path(root or tempfile.gettempdir())
    deleted = []
    for folder in root.glob(f"{FOLDER_PREFIX}*"):
        match = _FOLDER.match(folder.name)
        stale = (not _alive(int(match.group(1))) if match else
                 time.time() - folder.stat().st_mtime > SESSION_TTL_S)
        if stale and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            deleted.append(folder)
    if deleted:
        log.info("deleted %d session folder(s) left by earlier runs", len(deleted))
    return deleted


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def delete_own_folders_on_sigterm() -> None:
    """On SIGTERM, delete this process's session folders, then die of SIGTERM as before (main thread only;
    a handler someone else installed is kept)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return

    def on_sigterm(signum, frame) -> None:
        for folder in Path(tempfile.gettempdir()).glob(f"{folder_prefix()}*"):
            shutil.rmtree(folder, ignore_errors=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
