"""A plotly figure as PNG, rendered by kaleido in a child process, so that a timeout really stops the work.

kaleido drives a headless Chrome/Chromium. Rendered in the app's own process, a render that hangs cannot be
stopped: a thread cannot be killed, and the browser would outlive it. So the browser runs in a child
process with a process group of its own (`python -m s2s.png`): it renders one figure at a time and stays
open between renders (the first starts the browser, a few seconds; later ones take well under a second).
When a render takes longer than its timeout, the whole group is killed, browser included, and the next
render starts a fresh one.

The child reads requests on stdin and answers on stdout, each message an 8-byte length and then its bytes:
a request is JSON {"figure": <figure dict>, "opts": <kaleido options>}; an answer is "P" + PNG bytes, or
"E" + an error message.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .deadline import DeadlineExceeded

COMMAND = [sys.executable, "-m", "s2s.png"]  # the renderer (tests replace it)
_LOCK = threading.Lock()  # one render at a time: the child has one browser
_child: subprocess.Popen | None = None
RENDERER_NICENESS = 10  # the renderer and the browser it starts (which inherits it) yield the CPU to the app
_WARM_LOCK = threading.Lock()
_warming: threading.Thread | None = None


def render(figure_json: str, width: int, height: int, scale: float = 2.0, timeout_s: float = 60.0) -> bytes:
    """A figure (plotly's JSON, `figure.to_json()`) as PNG bytes; DeadlineExceeded (after killing the renderer and its
    browser) when it takes longer than `timeout_s`, waiting for another render included."""
    deadline = time.monotonic() + timeout_s
    if not _LOCK.acquire(timeout=timeout_s):
        raise DeadlineExceeded(f"no PNG within {timeout_s:g} s (another PNG was being rendered)")
    try:
        child = _renderer()
        opts = json.dumps(dict(format="png", width=width, height=height, scale=scale))
        request = f'{{"figure": {figure_json}, "opts": {opts}}}'.encode()
        try:
            _write(child.stdin.fileno(), len(request).to_bytes(8, "big") + request, deadline)
            status = _read(child.stdout.fileno(), 1, deadline)
            size = int.from_bytes(_read(child.stdout.fileno(), 8, deadline), "big")
            answer = _read(child.stdout.fileno(), size, deadline)
        except (DeadlineExceeded, OSError, EOFError) as err:
            _stop()
            if isinstance(err, DeadlineExceeded):
                raise DeadlineExceeded(f"no PNG within {timeout_s:g} s; the renderer was stopped") from None
            raise RuntimeError(f"the PNG renderer stopped ({type(err).__name__}: {err})") from None
        if status != b"P":
            raise RuntimeError(answer.decode("utf-8", errors="replace"))
        return answer
    finally:
        _LOCK.release()


def warm(timeout_s: float = 60.0) -> threading.Thread | None:
    """Start the renderer and its browser in a background thread (a render of an empty figure), so that the
    first real PNG does not wait for them (~5 s). None when a renderer is already running or being started.
    A warm-up that fails is forgotten: the real render starts afresh and reports what is wrong."""
    global _warming
    with _WARM_LOCK:
        if (_child is not None and _child.poll() is None) or (_warming is not None and _warming.is_alive()):
            return None

        def run() -> None:
            try:
                render('{"data": [], "layout": {}}', 16, 16, scale=1.0, timeout_s=timeout_s)
            except Exception:  # noqa: BLE001 - reported by the next real render
                pass

        _warming = threading.Thread(target=run, name="s2s-png-warm", daemon=True)
        _warming.start()
        return _warming


def _renderer() -> subprocess.Popen:
    global _child
    if _child is None or _child.poll() is not None:
        package_root = str(Path(__file__).resolve().parent.parent)  # `-m s2s.png` works from any directory
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        _child = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  env={**os.environ, "PYTHONPATH": path},
                                  start_new_session=True)  # its own process group: killed with its browser
        try:  # below the app's own work: starting the browser takes seconds of CPU that translations need more
            os.setpriority(os.PRIO_PROCESS, _child.pid, RENDERER_NICENESS)
        except OSError:
            pass
    return _child


def _stop() -> None:
    """Kill the renderer and everything it started (its process group), then reap it."""
    global _child
    child, _child = _child, None
    if child is None:
        return
    if child.poll() is None:  # not reaped yet, so its process group id is still its own
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    child.wait()
    for pipe in (child.stdin, child.stdout):
        pipe.close()


@atexit.register
def _close() -> None:
    """At exit: the renderer ends when its stdin closes (kaleido closes its browser)."""
    if _child is not None and _child.poll() is None:
        _child.stdin.close()
        try:
            _child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _stop()


def _write(fd: int, data: bytes, deadline: float) -> None:
    """All of `data` to `fd` before `deadline` (a renderer that stopped reading cannot block the caller)."""
    view = memoryview(data)
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
            raise DeadlineExceeded("timed out")
        view = view[os.write(fd, view[:1 << 16]):]


def _read(fd: int, size: int, deadline: float) -> bytes:
    """Exactly `size` bytes from `fd` before `deadline`; EOFError when the writer is gone."""
    chunks, left = [], size
    while left:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise DeadlineExceeded("timed out")
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the renderer exited")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------- the child
def main() -> None:
    """The renderer: figures in on stdin, PNG out on stdout, until stdin closes."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the browser inherits stdout: nothing but answers may reach the parent's pipe
    import kaleido

    requests = sys.stdin.buffer
    started = False
    while header := requests.read(8):
        request = json.loads(requests.read(int.from_bytes(header, "big")))
        try:
            if not started:
                kaleido.start_sync_server(n=1, mathjax=False, silence_warnings=True)
                started = True
            status, payload = b"P", kaleido.calc_fig_sync(request["figure"], opts=request["opts"])
        except Exception as err:  # noqa: BLE001 - sent to the parent
            status, payload = b"E", f"{type(err).__name__}: {str(err).strip()[:500]}".encode()
        answers.write(status + len(payload).to_bytes(8, "big") + payload)
        answers.flush()
    if started:
        kaleido.stop_sync_server(silence_warnings=True)


if __name__ == "__main__":
    main()
