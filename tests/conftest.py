"""Shared fixtures: tiny models with fixed seeds, trained in seconds on the committed toy corpus, and one
running app that the app and browser tests share."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "0")
torch.set_num_threads(1)

from tiny import APP_MODELS, make_html_checkpoint, make_tiny_checkpoint, toy_pairs  # noqa: E402


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint folder of a tiny en→de model trained briefly on the toy corpus (session-wide; read-only)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-en-de", steps=120)


@pytest.fixture
def pairs() -> list[tuple[str, str]]:
    return toy_pairs()


@pytest.fixture(scope="session")
def app_checkpoints(tiny_checkpoint, tmp_path_factory) -> Path:
    """The app's model folder: html-en-de (its vocabularies hold the piece `<b>x</b>`) and tiny-en-de."""
    folder = tmp_path_factory.mktemp("app-models")
    make_html_checkpoint(folder / APP_MODELS[0])
    shutil.copytree(tiny_checkpoint, folder / APP_MODELS[1])
    return folder


class AppServer(str):
    """The running app's URL, with its process id and its log file."""

    pid: int
    log: Path


@pytest.fixture(scope="session")
def app_server(app_checkpoints, tmp_path_factory):
    """`python app.py` as a user runs it, on a free port, serving the two app models; one for the whole run
    (test_app talks to it with gradio_client, test_browser with Chromium)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, S2S_CHECKPOINTS=str(app_checkpoints), GRADIO_SERVER_PORT=str(port),
               GRADIO_SERVER_NAME="127.0.0.1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("S2S_MODELS", None)
    log = (tmp_path_factory.mktemp("server") / "app.log").open("w")
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"app.py did not start; see {log.name}")
            time.sleep(0.25)
    server = AppServer(url)
    server.pid, server.log = process.pid, Path(log.name)
    yield server
    os.killpg(process.pid, signal.SIGTERM)  # the process group of the app started above, nothing else
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.close()
