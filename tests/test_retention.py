"""How long a session's own models and files stay on the server (issue 11, item 2): a server-wide cap with
the least recently used evicted, a time-to-live, and the sweep of folders left by a process that is gone."""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest

from s2s import service
from s2s.service import retention

MODEL = "tiny-en-de"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def checkpoints(tiny_checkpoint, monkeypatch) -> Path:
    monkeypatch.setenv("S2S_CHECKPOINTS", str(tiny_checkpoint.parent))
    monkeypatch.delenv("S2S_MODELS", raising=False)
    return tiny_checkpoint.parent


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_memory_stays_flat_across_50_fine_tunes_from_50_sessions(pairs, monkeypatch):
    """50 sessions that never close (API clients) fine-tune once each: at most MAX_MODELS models stay alive,
    on disk as in RAM; the others are evicted, oldest first, and their sessions are told why."""
    monkeypatch.setattr(retention, "MAX_MODELS", 3)
    text = "\n".join(f"{s}\t{t}" for s, t in pairs[:3])
    sessions, alive, rss = [], weakref.WeakSet(), []
    for i in range(50):
        session = service.Session()
        sessions.append(session)  # gradio would hold every one of them
        final = list(service.fine_tune(MODEL, text, None, 1, 1e-3, session))[-1]
        alive.add(session.models[final["selected"]].translator.model)
        if i in (9, 49):
            gc.collect()
            rss.append(rss_mb())
    gc.collect()
    held = [(s, name) for s in sessions for name in s.models]
    assert len(held) == 3 and [s for s, _ in held] == sessions[-3:]  # the three most recent
    assert len(alive) == 3  # the evicted models are gone from memory, not just from the lists
    checkpoints = [p for s in sessions if s.folder for p in s.folder.glob("*/model.safetensors")]
    zips = [p for s in sessions if s.folder for p in s.folder.glob("*.zip")]
    assert len(checkpoints) == 3 and len(zips) == 3  # and from disk
    with pytest.raises(service.UserError, match="no longer on the server: the server keeps at most 3"):
        service.translate(f"{MODEL}-ft1", "A dog.", session=sessions[0])
    print(f"RSS after 10 fine-tunes {rss[0]:.0f} MB, after 50 {rss[1]:.0f} MB")
    assert rss[1] - rss[0] < 50
    for session in sessions:
        session.close()


def test_the_model_cap_counts_weights_too(monkeypatch):
    monkeypatch.setattr(retention, "MAX_MODEL_BYTES", 1)  # smaller than any model: only the newest stays
    first, second = service.Session(), service.Session()
    first.add_model("a", service.OwnModel(service.get_translator(MODEL), "a test"))
    second.add_model("b", service.OwnModel(service.get_translator(MODEL), "a test"))
    assert list(first.models) == [] and list(second.models) == ["b"] and "at most" in first.removed["a"]


def test_a_session_unused_for_the_time_to_live_loses_its_models_and_folder(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(retention, "clock", lambda: now[0])
    monkeypatch.setattr(retention, "_last_expiry", -float("inf"))  # earlier tests swept by the real clock
    idle, busy = service.Session(), service.Session()
    idle.add_model("mine", service.OwnModel(service.get_translator(MODEL), "a test"))
    folder = idle.files()
    (folder / "export.csv").write_text("x")
    now[0] += retention.SESSION_TTL_S - 1
    service.get_translator(MODEL, busy)  # any request sweeps: idle is not expired yet
    assert "mine" in idle.models and folder.exists()
    now[0] += 20  # past the time-to-live, and past the 10 s between two sweeps
    service.get_translator(MODEL, busy)
    assert idle.models == {} and not folder.exists()
    with pytest.raises(service.UserError, match="mine is no longer on the server: this browser session was not "
                                                "used for 60 minutes"):
        service.get_translator("mine", idle)
    assert idle.files().is_dir()  # the session can go on: a fresh folder
    idle.close()
    busy.close()


def test_a_session_object_that_gradio_drops_takes_its_folder_with_it():
    session = service.Session()
    folder = session.files()
    del session
    gc.collect()
    assert not folder.exists()


def test_start_up_deletes_the_session_folders_of_processes_that_are_gone(tmp_path, monkeypatch):
    finished = subprocess.Popen(["true"])
    finished.wait()
    gone = tmp_path / f"s2s-session-{finished.pid}-abc"
    mine = tmp_path / f"{retention.folder_prefix()}def"
    old, recent = tmp_path / "s2s-session-x1y2", tmp_path / "s2s-session-z3"  # the unnumbered form
    other = tmp_path / "not-ours"
    for folder in (gone, mine, old, recent, other):
        (folder / "model").mkdir(parents=True)
    os.utime(old, (time.time() - retention.SESSION_TTL_S - 60,) * 2)
    assert sorted(retention.sweep_stale_folders(tmp_path)) == sorted([gone, old])
    assert mine.exists() and recent.exists() and other.exists()
    called = []
    monkeypatch.setattr(retention, "sweep_stale_folders", lambda: called.append("sweep"))
    monkeypatch.setattr(retention, "delete_own_folders_on_sigterm", lambda: called.append("sigterm"))
    service.startup()
    assert called == ["sweep", "sigterm"]


def test_sigterm_deletes_the_session_folders_of_this_process(tmp_path):
    code = ("import time; from s2s import service; service.startup(); session = service.Session(); "
            "print(session.files(), flush=True); time.sleep(120)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"})
    folder = Path(process.stdout.readline().strip())
    assert folder.is_dir() and folder.parent == tmp_path
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == -signal.SIGTERM
    assert not folder.exists()
