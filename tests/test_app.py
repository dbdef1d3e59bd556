"""app.py: the Blocks build, and real round trips with gradio_client through the app server that
test_browser shares (conftest.app_server: `python app.py` serving html-en-de and tiny-en-de)."""
from __future__ import annotations

import ast
import json
import os
import time
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


def test_sessions_build_block_configurations_only_when_read_and_the_same_as_gradio(app_module):
    """Issue 13: a new session (every API call without one) no longer builds all block configurations."""
    from gradio.state_holder import SessionState
    demo = app_module.build_demo()
    state = SessionState(demo)
    assert dict.__len__(state.config_values) == 0  # nothing built yet
    ids = [k for k in state.blocks_config.blocks if k in demo.blocks]
    eager = {k: state.blocks_config.config_for_block(k, [], state.blocks_config.blocks[k]) for k in ids}
    first = ids[0]
    assert first in state.config_values and state.config_values[first] == eager[first]
    textbox = next(k for k in ids if eager[k].get("type") == "textbox")
    state._update_value_in_config(textbox, "changed")  # what gradio does when an event updates a value
    assert state.config_values[textbox]["props"]["value"] == "changed"
    eager[textbox]["props"]["value"] = "changed"
    assert sorted(state.components, key=lambda c: c["id"]) == sorted((c for c in eager.values() if c),
                                                                      key=lambda c: c["id"])
    with pytest.raises(KeyError):
        state.config_values[-1]
    assert len(state.config_values) == len(ids) and set(state.config_values) == set(ids)


def test_translate_round_trip(client):
    translation, nbest, heatmap, coverage, notes, tree, trace, sentence, message = client.predict(
        MODEL, SENTENCE, "beam", 3, 1.0, 2, 1.0, 0, 1.0, 1, False, api_name="/translate")
    assert translation and translation == trace["translation"] and message == ""
    assert trace["source_pieces"][-1] == "</s>" and trace["beam_tree"]
    assert len(nbest["data"]) == 2
    assert heatmap["type"] == "plotly"
    ticks = json.loads(heatmap["plot"])["layout"]["xaxis"]["ticktext"]
    assert ticks[-1] == "&lt;/s&gt;" and len(ticks) == len(trace["source_pieces"])  # escaped, one per piece
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="Type a sentence first"):  # API clients still get errors as errors
        client.predict(MODEL, "", "greedy", 5, 1.0, 1, 1.0, 0, 1.0, 1, False, api_name="/translate")
    # issue 10, item 2: n-best above the beam width is cut to it, with a note, instead of failing
    *_, trace, sentence, message = client.predict(MODEL, SENTENCE, "beam", 2, 1.0, 5, 1.0, 0, 1.0, 1, False,
                                                  api_name="/translate")
    assert len(trace["nbest"]) == 2 and "at most the beam width" in message


def test_a_paragraph_is_translated_sentence_by_sentence(client):
    """Issue 10, item 8: each sentence its own trace; the picker chooses whose views are shown."""
    translation, nbest, heatmap, coverage, notes, tree, trace, sentence, message = client.predict(
        MODEL, f"{SENTENCE} A dog runs. Two men talk.", "greedy", 5, 1.0, 1, 1.0, 0, 1.0, 1, False,
        api_name="/translate")
    assert trace["source"] == SENTENCE and len(translation.split(". ")) >= 2
    views = client.predict(2, False, api_name="/sentence_views")
    assert views[-2]["source"] == "Two men talk."


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


def test_explain_round_trip(client):
    """Issue 14: the Explain tab's endpoints through the API (outputs in the order app.explain_tab lists them)."""
    summary, attention, attribution, rows, scores, explained, message = client.predict(
        MODEL, SENTENCE, "", 8, "integrated gradients", False, api_name="/explain")
    assert "agree on the most important source piece for" in summary and explained and message == ""
    ticks = json.loads(attribution["plot"])["layout"]["xaxis"]["ticktext"]
    assert ticks == json.loads(attention["plot"])["layout"]["xaxis"]["ticktext"] and ticks[-1] == "&lt;/s&gt;"
    assert rows["headers"][3] == "agree" and {r[3] for r in rows["data"]} <= {"✓", "✗"}
    words = client.predict("gradient × input", True, api_name="/explain_views")  # same session: no recomputing
    assert "source word for" in words[0] and "gradient × input" in words[0]
    scored = client.predict(MODEL, SENTENCE, "Eine Frau sitzt an einer Bar.", 8, "integrated gradients", False,
                            api_name="/explain")
    assert "Score of the translation given" in scored[0]
    figure, note = client.predict(MODEL, SENTENCE, "", api_name="/state_trajectories")
    assert "never on the sentence shown" in note and figure["type"] == "plotly"
    *plots, table, note = client.predict(SENTENCE, False, api_name="/compare_attention_scores")
    assert len(plots) == 3 and "None of the three" in note  # the app server bundles no score models
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="steps K must be between 4 and 64"):
        client.predict(MODEL, SENTENCE, "", 1000, "integrated gradients", False, api_name="/explain")


def test_fine_tune_round_trip_adds_model_to_this_session_only(client, server, pairs):
    text = "\n".join(f"{s}\t{t}" for s, t in pairs[20:40])
    status, loss, table, bleu, picker, base_picker, archive = client.predict(
        MODEL, text, [], 1, 1e-3, api_name="/fine_tune")
    assert "New model" in status and "base" in bleu
    name = picker["value"]
    assert name == f"{MODEL}-ft1" and [f"English → German · fine-tuned ({name})", name] in picker["choices"]
    assert zipfile.is_zipfile(archive)
    translation = client.predict(name, SENTENCE, "greedy", 5, 1.0, 1, 1.0, 0, 1.0, 1, False,
                                 api_name="/translate")[0]
    assert isinstance(translation, str)
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    stranger = Client(server, verbose=False)
    with pytest.raises(AppError, match="not in the list of choices|Unknown model|Model must be one of"):
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


def call_raw(server: str, api_name: str, data) -> tuple[str, object]:
    """One call as any HTTP client makes it (POST /gradio_api/call/<name>, then its event stream): the final
    event ("complete" or "error") and its data. No client library fills in or checks anything."""
    import urllib.request
    base = f"{server.rstrip('/')}/gradio_api/call/{api_name}"
    request = urllib.request.Request(base, data=json.dumps({"data": data}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        event_id = json.load(answer)["event_id"]
    event = ""
    with urllib.request.urlopen(f"{base}/{event_id}", timeout=120) as stream:
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                return event, json.loads(line[5:])
    raise AssertionError("the event stream ended without a result")


GOOD = [MODEL, SENTENCE, "beam", 3, 1.0, 1, 1.0, 0, 1.0, 1, False, 0.0]
MALFORMED = [  # issue 11, item 8: each of these was answered {"error": null}, or with a 27-line traceback logged
    ("translate", GOOD[:3] + ["abc"] + GOOD[4:], "Beam width must be a finite number between 1 and 64, not 'abc'"),
    ("translate", GOOD[:3] + [1000] + GOOD[4:], "Beam width must be between 1 and 64, not 1000"),
    ("translate", GOOD[:3] + [[5]] + GOOD[4:], "Beam width must be a finite number between 1 and 64, not [5]"),
    ("translate", GOOD[:9] + ["x", False, 0.0], "Seed (empty: random) must be a finite number, not 'x'"),
    ("translate", GOOD[:10] + ["yes", 0.0], "Merge subword pieces into words must be true or false, not 'yes'"),
    ("translate", GOOD[:11] + [9], "Back-translation weight λ must be between 0 and 5, not 9"),
    ("translate", [MODEL, {"text": 1}] + GOOD[2:], "Source text must be text"),
    ("translate", ["nope"] + GOOD[1:], "Model must be one of ['html-en-de', 'tiny-en-de'], not 'nope'"),
    ("translate", GOOD[:2] + ["bogus"] + GOOD[3:], "Decoding must be one of"),
    ("translate", GOOD[:2], "/translate takes 12 inputs (Model, Source text, Decoding, Beam width"),
    ("fine_tune", [MODEL, "a\tb\nc\td", [], "x", 1e-3], "Epochs must be a finite number between 1 and 20"),
    ("fine_tune", [MODEL, "a\tb\nc\td", "pairs.tsv", 1, 1e-3], "upload each file first"),
    ("fine_tune", [MODEL, "a\tb\nc\td", [], 1, float("nan")], "must be a finite number"),
]


def test_malformed_api_values_get_a_clear_message_and_one_log_line(server):
    logged = server.log.stat().st_size
    for api_name, data, message in MALFORMED:
        event, answer = call_raw(server, api_name, data)
        assert event == "error" and message in (answer.get("error") or ""), (api_name, data, answer)
    time.sleep(0.5)  # the log is written by the server process
    with server.log.open(encoding="utf-8") as log:
        log.seek(logged)
        new = log.read()
    assert "Traceback" not in new
    assert len([line for line in new.splitlines() if "refused /" in line]) == len(MALFORMED), new


def test_launch_defaults_to_localhost(app_module, monkeypatch):
    seen = {}

    class FakeDemo:
        def launch(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    app_module.launch(FakeDemo())
    assert seen["server_name"] == "127.0.0.1" and seen["theme"] is app_module.THEME and "css" in seen
    assert seen["max_file_size"] == app_module.service.MAX_FILE_BYTES  # gradio refuses bigger uploads
    assert seen["state_session_capacity"] == app_module.service.MAX_SESSIONS  # gradio forgets the oldest
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    app_module.launch(FakeDemo())
    assert seen["server_name"] == "0.0.0.0"
    assert os.environ.get("GRADIO_ANALYTICS_ENABLED") == "False"
