"""s2s.png: a PNG render in a child process that a timeout really stops (issue 11, item 3: the render thread
outlived its timeout, and a 200 × 200 export took 16 s)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from s2s import png
from s2s.deadline import DeadlineExceeded

HANGS = r"""
import os, subprocess, sys, time
helper = subprocess.Popen(["sleep", "120"])  # like the browser the renderer drives
open(sys.argv[1], "w").write(f"{os.getpid()} {helper.pid}")
sys.stdin.buffer.read(8)
time.sleep(120)
"""
ANSWERS = r"""
import sys
requests, answers = sys.stdin.buffer, sys.stdout.buffer
while header := requests.read(8):
    request = requests.read(int.from_bytes(header, "big"))
    payload = b"\x89PNG fake" if b'"ok"' in request else b"ValueError: no browser"
    answers.write((b"P" if b'"ok"' in request else b"E") + len(payload).to_bytes(8, "big") + payload)
    answers.flush()
"""


def gone(pid: int, within_s: float = 5.0) -> bool:
    """The process has exited (a zombie waiting for its parent counts as gone)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(autouse=True)
def fresh_renderer():
    png._stop()
    yield
    png._stop()


def test_a_render_that_takes_too_long_is_killed_with_everything_it_started(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setattr(png, "COMMAND", [sys.executable, "-c", HANGS, str(pids)])
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="no PNG within 5 s; the renderer was stopped"):
        png.render('{"data": []}', 100, 100, timeout_s=5)
    assert time.monotonic() - start < 10
    renderer, helper = map(int, pids.read_text().split())
    assert gone(renderer) and gone(helper)
    monkeypatch.setattr(png, "COMMAND", [sys.executable, "-c", ANSWERS])  # the next render starts afresh
    assert png.render('{"ok": 1}', 100, 100, timeout_s=30) == b"\x89PNG fake"
    with pytest.raises(RuntimeError, match="no browser"):
        png.render('{"data": []}', 100, 100, timeout_s=30)
    assert png.render('{"ok": 2}', 100, 100, timeout_s=30) == b"\x89PNG fake"  # the same renderer goes on


def test_a_renderer_that_dies_is_an_error_and_is_replaced(monkeypatch):
    monkeypatch.setattr(png, "COMMAND", [sys.executable, "-c", "import sys; sys.stdin.buffer.read(8)"])
    with pytest.raises(RuntimeError, match="the PNG renderer stopped"):
        png.render('{"data": []}', 100, 100, timeout_s=30)
    monkeypatch.setattr(png, "COMMAND", [sys.executable, "-c", ANSWERS])
    assert png.render('{"ok": 1}', 100, 100, timeout_s=30) == b"\x89PNG fake"


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium")
def test_a_real_render_with_kaleido(monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/usr/bin/chromium")
    import plotly.graph_objects as go
    figure = go.Figure(go.Heatmap(z=[[0.1, 0.9], [0.7, 0.3]]))
    start = time.monotonic()
    data = png.render(figure.to_json(), 300, 200, timeout_s=180)
    first = time.monotonic() - start
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert png._child is not None and png._child.poll() is None  # kept open for the next render
    child, start = png._child.pid, time.monotonic()
    assert png.render(figure.to_json(), 300, 200, timeout_s=180)[:8] == b"\x89PNG\r\n\x1a\n"
    second = time.monotonic() - start
    # issue 10, item 6: later PNGs reuse the open browser (0.5 s on an idle machine; the first starts it, ~5 s)
    assert png._child.pid == child and second < first, (first, second)


def test_warming_starts_one_renderer_in_the_background_and_the_next_render_uses_it(monkeypatch):
    monkeypatch.setattr(png, "COMMAND", [sys.executable, "-c", ANSWERS])
    thread = png.warm(timeout_s=30)
    assert thread is not None
    thread.join(30)
    assert not thread.is_alive() and png._child is not None and png._child.poll() is None
    child = png._child.pid
    assert png.warm() is None  # already running: nothing more is started
    assert png.render('{"ok": 1}', 10, 10, timeout_s=30) == b"\x89PNG fake" and png._child.pid == child


def test_a_failed_warm_up_is_forgotten_and_the_real_render_reports(monkeypatch):
    monkeypatch.setattr(png, "COMMAND", [sys.executable, "-c", "import sys; sys.stdin.buffer.read(8)"])
    thread = png.warm(timeout_s=30)
    thread.join(30)
    assert not thread.is_alive()
    monkeypatch.setattr(png, "COMMAND", [sys.executable, "-c", ANSWERS])
    with pytest.raises(RuntimeError, match="no browser"):
        png.render('{"data": []}', 10, 10, timeout_s=30)
