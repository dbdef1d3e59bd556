"""app.py: the Blocks build, and real round trips with gradio_client through the app server that
test_browser shares (conftest.app_server: `python app.py` serving html-en-de and tiny-en-de)."""
from __future__ import annotations

import ast
import json
import os
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = "tiny-en-de"
SENTENCE = "A woman sits at a dark bar."


@pytest.fixture(scope="module")
def app_module(tiny_checkpoint):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("S2S_CHECKPOINTS", str(tiny_checkpoint.parent))
        patch.delenv("S2S_MODELS", raising=False)
        import app
        yield app


@pytest.fixture
def server(app_server) -> str:
    return app_server


@pytest.fixture
def client(server):
    from gradio_client import Client
    return Client(server, verbose=False)


def test_app_imports_no_torch():
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "torch" not in modules


def test_build_demo_names_every_event_and_sets_queue_limits(app_module):
    demo = app_module.build_demo()
    fns = list(demo.fns.values())
    assert all(fn.api_name for fn in fns)
    by_name = {fn.api_name: fn for fn in fns}
    for name in ("translate", "attention_views", "export", "step_start", "step_next", "step_back", "step_run",
                 "step_reset", "step_force", "step_force_candidate", "beam_tree", "fine_tune", "fine_tune_cancel",
                 "push", "load_model", "model_info"):
        assert name in by_name, name
    assert by_name["translate"].concurrency_limit == app_module.DECODE_LIMIT
    assert by_name["fine_tune"].concurrency_limit == 1


def test_translate_round_trip(client):
    translation, nbest, heatmap, coverage, notes, tree, trace = client.predict(
        MODEL, SENTENCE, "beam", 3, 1.0, 2, 1.0, 0, 1.0, 1, False, api_name="/translate")
    assert translation and translation == trace["translation"]
    assert trace["source_pieces"][-1] == "</s>" and trace["beam_tree"]
    assert len(nbest["data"]) == 2
    assert heatmap["type"] == "plotly"
    ticks = json.loads(heatmap["plot"])["layout"]["xaxis"]["ticktext"]
    assert ticks[-1] == "&lt;/s&gt;" and len(ticks) == len(trace["source_pieces"])  # escaped, one per piece
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="Type a sentence first"):
        client.predict(MODEL, "", "greedy", 5, 1.0, 1, 1.0, 0, 1.0, 1, False, api_name="/translate")
    with pytest.raises(AppError, match="N-best must be between"):
        client.predict(MODEL, SENTENCE, "beam", 2, 1.0, 5, 1.0, 0, 1.0, 1, False, api_name="/translate")


def test_step_round_trip(client):
    state_outputs = client.predict(MODEL, SENTENCE, api_name="/step_start")
    status, prefix, greedy = state_outputs[0], state_outputs[1], state_outputs[2]
    assert status.startswith("Step 0") and prefix == []
    client.predict(api_name="/step_next")
    status, prefix, continuation, _, pick, *_ = client.predict(api_name="/step_next")
    assert status.startswith("Step 2") and len(prefix) == 2 and continuation == greedy
    forced = client.predict("Hund", api_name="/step_force")
    assert forced[1][-1]["class_or_confidence"] == "forced" and forced[2] != greedy
    back = client.predict(api_name="/step_back")
    assert len(back[1]) == 2


def test_fine_tune_round_trip_adds_model_to_this_session_only(client, server, pairs):
    text = "\n".join(f"{s}\t{t}" for s, t in pairs[20:40])
    status, loss, table, bleu, picker, base_picker, archive = client.predict(
        MODEL, text, [], 1, 1e-3, api_name="/fine_tune")
    assert "New model" in status and "base" in bleu
    name = picker["value"]
    assert name == f"{MODEL}-ft1" and [name, name] in picker["choices"]
    assert zipfile.is_zipfile(archive)
    translation = client.predict(name, SENTENCE, "greedy", 5, 1.0, 1, 1.0, 0, 1.0, 1, False,
                                 api_name="/translate")[0]
    assert isinstance(translation, str)
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    stranger = Client(server, verbose=False)
    with pytest.raises(AppError, match="not in the list of choices|Unknown model"):
        stranger.predict(name, SENTENCE, "greedy", 5, 1.0, 1, 1.0, 0, 1.0, 1, False, api_name="/translate")
    with pytest.raises(AppError, match="At least 2 pairs"):
        client.predict(MODEL, "a\tb", [], 1, 1e-3, api_name="/fine_tune")


def test_cancel_reaches_the_fine_tuning_of_the_same_session(client, pairs):
    client.predict(api_name="/fine_tune_prepare")  # what the Start button does first: a fresh cancel flag
    assert "Cancelling" in client.predict(api_name="/fine_tune_cancel")
    status, *_ = client.predict(MODEL, "\n".join(f"{s}\t{t}" for s, t in pairs[:20]), [], 1, 1e-3,
                                api_name="/fine_tune")
    assert "Cancelled" in status


def test_uploads_over_the_size_limit_are_refused_by_the_server(server, app_module):
    """Issue 11, item 4: launch() sets max_file_size, so gradio refuses a big upload while receiving it."""
    import httpx
    limit = app_module.service.MAX_FILE_BYTES
    url = server.rstrip("/") + "/gradio_api/upload"
    small = httpx.post(url, files={"files": ("pairs.tsv", b"a\tb\n")}, timeout=60)
    assert small.status_code == 200 and small.json()[0].endswith("pairs.tsv")
    big = httpx.post(url, files={"files": ("pairs.tsv", b"x" * (limit + 1))}, timeout=60)
    assert big.status_code == 413 and "maximum allowed size" in big.text


def test_launch_defaults_to_localhost(app_module, monkeypatch):
    seen = {}

    class FakeDemo:
        def launch(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    app_module.launch(FakeDemo())
    assert seen["server_name"] == "127.0.0.1" and seen["theme"] is app_module.THEME and "css" in seen
    assert seen["max_file_size"] == app_module.service.MAX_FILE_BYTES  # gradio refuses bigger uploads
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    app_module.launch(FakeDemo())
    assert seen["server_name"] == "0.0.0.0"
    assert os.environ.get("GRADIO_ANALYTICS_ENABLED") == "False"
