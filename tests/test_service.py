"""s2s.service: every function the app calls, on a tiny checkpoint, including the error messages."""
from __future__ import annotations

import csv
import gc
import io
import json
import shutil
import sys
import time
import tracemalloc
import types
import zipfile
from pathlib import Path

import pytest
import torch

from s2s import plots, service
from s2s.api import Translator
from s2s.trace import Trace
from s2s.data import PairRow, parse_pairs
from s2s.service import models as service_models
from s2s.service import translation as service_translation

MODEL = "tiny-en-de"
SENTENCE = "A woman sits at a dark bar."


@pytest.fixture(autouse=True)
def checkpoints(tiny_checkpoint, monkeypatch) -> Path:
    """Point the app's model folder at the tiny checkpoint (its parent folder holds only it)."""
    monkeypatch.setenv("S2S_CHECKPOINTS", str(tiny_checkpoint.parent))
    monkeypatch.delenv("S2S_MODELS", raising=False)
    return tiny_checkpoint.parent


@pytest.fixture
def session():
    data = service.Session()
    yield data
    data.close()


def tsv(pairs) -> str:
    return "\n".join(f"{s}\t{t}" for s, t in pairs)


# ---------------------------------------------------------------------- models
def test_bundled_models_are_checkpoint_folders(checkpoints, tmp_path, monkeypatch):
    assert service.bundled_models() == [MODEL]
    (tmp_path / "not-a-model").mkdir()
    shutil.copytree(checkpoints / MODEL, tmp_path / "copy")
    monkeypatch.setenv("S2S_CHECKPOINTS", str(tmp_path))
    assert service.bundled_models() == ["copy"]
    monkeypatch.setenv("S2S_CHECKPOINTS", str(tmp_path / "missing"))
    assert service.bundled_models() == []


def test_model_overview(session):
    info = service.model_overview(MODEL, session)
    assert "English → German" in info["summary"]
    assert info["config"]["src_lang"] == "en" and info["config"]["tgt_lang"] == "de"
    assert info["examples"] and all(isinstance(e, str) for e in info["examples"])  # en-de examples
    assert "no model card" in info["card"]
    with pytest.raises(service.UserError, match="Unknown model"):
        service.model_overview("no-such-model", session)
    with pytest.raises(service.UserError, match="No model is selected"):
        service.model_overview("", session)


def bundle(folder: Path, tiny: Path, names: dict[str, str]) -> None:
    """Copies of the tiny checkpoint named like the bundled models, each with a recipe corpus."""
    for name, corpus in names.items():
        shutil.copytree(tiny, folder / name)
        training = folder / name / "training.json"
        data = json.loads(training.read_text(encoding="utf-8")) if training.is_file() else {}
        data["recipe"] = {"name": name, "corpus": corpus}
        training.write_text(json.dumps(data), encoding="utf-8")
        config = json.loads((folder / name / "config.json").read_text(encoding="utf-8"))
        if name[2:3] == "-":  # en-de, fr-en-...: the languages the name says
            config["src_lang"], config["tgt_lang"] = name[:2], name[3:5]
        (folder / name / "config.json").write_text(json.dumps(config), encoding="utf-8")


def test_the_app_opens_on_en_de_and_names_models_by_direction_and_domain(checkpoints, tmp_path, monkeypatch):
    """Issue 9: en-de is the default when bundled (else the first model); labels say direction and domain."""
    assert service.default_model() == MODEL
    bundle(tmp_path, checkpoints / MODEL, {"de-en": "mixed", "en-de": "mixed", "en-de-multi30k": "multi30k",
                                           "en-fr-tatoeba": "tatoeba", "other": "toy"})
    monkeypatch.setenv("S2S_CHECKPOINTS", str(tmp_path))
    assert service.default_model() == "en-de"
    assert service.model_menu() == [
        ("German → English · everyday", "de-en"), ("English → German · everyday", "en-de"),
        ("English → German · captions", "en-de-multi30k"), ("English → French · Tatoeba", "en-fr-tatoeba"),
        ("English → German · other", "other")]
    summary = service.model_overview("en-de-multi30k")["summary"]
    assert summary.startswith("**English → German · captions** · trained on image captions only")


def test_repeated_labels_get_the_folder_name(checkpoints, tmp_path, monkeypatch):
    bundle(tmp_path, checkpoints / MODEL, {"a": "mixed", "b": "mixed"})
    monkeypatch.setenv("S2S_CHECKPOINTS", str(tmp_path))
    assert service.model_menu() == [("English → German · everyday (a)", "a"),
                                    ("English → German · everyday (b)", "b")]


def test_each_model_has_its_own_examples(checkpoints, tmp_path, monkeypatch, session):
    """Issue 9: assets/examples.json is keyed by model name first, then language pair, then "default"."""
    table = {"mine": ["Only mine."], "en-de": ["A pair's example."], "default": ["Anything."]}
    examples = tmp_path / "examples.json"
    examples.write_text(json.dumps(table), encoding="utf-8")
    monkeypatch.setattr(service_models, "EXAMPLES_FILE", examples)
    bundle(tmp_path / "models", checkpoints / MODEL, {"mine": "toy", "yours": "toy"})
    monkeypatch.setenv("S2S_CHECKPOINTS", str(tmp_path / "models"))
    assert service.model_overview("mine", session)["examples"] == ["Only mine."]
    assert service.model_overview("yours", session)["examples"] == ["A pair's example."]


def test_every_bundled_model_has_six_to_eight_examples_of_its_own():
    table = json.loads(service_models.EXAMPLES_FILE.read_text(encoding="utf-8"))
    for name in ("en-de", "de-en", "en-fr", "fr-en", "en-de-multi30k"):
        assert 6 <= len(table[name]) <= 8 and len(set(table[name])) == len(table[name]), name


# ---------------------------------------------------------------------- translation
def test_translate_greedy_returns_translation_trace_and_figures(session):
    result = service.translate(MODEL, SENTENCE, session=session)
    assert result["translation"] and result["nbest"][0][1] == result["translation"]
    trace = result["trace"]
    assert trace["source_pieces"][-1] == "</s>" and len(trace["attention"]) == len(trace["target_pieces"])
    json.dumps(trace)  # plain data
    assert list(result["heatmap"].layout.xaxis.ticktext) == [plots.label(p) for p in trace["source_pieces"]]
    assert "Possible omissions" in result["coverage_notes"]
    assert result["beam_tree"].layout.annotations  # greedy: no tree, a message


def test_translate_beam_nbest_and_sampling_with_seed(session):
    beam = service.translate(MODEL, SENTENCE, "beam", 3, 1.0, 2, session=session)
    assert len(beam["nbest"]) == 2 and beam["trace"]["beam_tree"]
    assert len(beam["beam_tree"].data) > 2
    first = service.translate(MODEL, SENTENCE, "sample", temperature=1.5, top_k=10, top_p=0.9, seed=7, session=session)
    again = service.translate(MODEL, SENTENCE, "sample", temperature=1.5, top_k=10, top_p=0.9, seed=7, session=session)
    assert first["translation"] == again["translation"]


@pytest.mark.parametrize("options, message", [
    (dict(method="beam", beam_size=2, nbest=0), "N-best must be between 1 and 64"),
    (dict(method="sample", temperature=0), "Temperature must be between"),
    (dict(method="sample", top_p=0), "Top-p must be between"),
    (dict(method="sample", seed="abc"), "Seed must be a number"),
    (dict(method="beam", beam_size=0), "Beam width must be between 1 and 64"),
    (dict(method="nonsense"), "Decoding must be greedy, beam or sample"),
    (dict(method="greedy", length_penalty=float("nan")), "finite"),
])
def test_invalid_decoding_options_are_clear_errors(session, options, message):
    with pytest.raises(service.UserError, match=message):
        service.translate(MODEL, SENTENCE, session=session, **options)


def test_a_paragraph_is_translated_sentence_by_sentence(session):
    """Issue 10, item 8: each sentence its own trace and views; line breaks kept; n-best cut to the beam."""
    result = service.translate(MODEL, f"{SENTENCE} Dr. Smith is here.\nTwo dogs run!", "beam", 2, 1.0, 5,
                               session=session)
    assert [t["source"] for t in result["traces"]] == [SENTENCE, "Dr. Smith is here.", "Two dogs run!"]
    assert result["sentences"][2] == "3. Two dogs run!" and len(result["translation"].splitlines()) == 2
    assert result["trace"]["source"] == SENTENCE and len(result["nbest"]) == 2
    assert "at most the beam width" in result["notice"]
    third = service.sentence_views(result["traces"], 2, True)
    assert third["trace"]["source"] == "Two dogs run!" and third["heatmap"].data
    with pytest.raises(service.UserError, match="Sentence must be between 0 and 2"):
        service.sentence_views(result["traces"], 3)
    with pytest.raises(service.UserError, match="the limit is 20 at a time"):
        service.translate(MODEL, "A dog. " * 21, session=session)


def test_switching_model_re_runs_or_clears_what_the_old_model_showed(session, checkpoints, tmp_path, monkeypatch):
    """Issue 10, item 4: the Translate tab's sentence is translated again, the Step tab starts again; a model
    that reads another language clears them instead."""
    assert service.translate_again(MODEL, SENTENCE, None, session=session) is None
    trace = service.translate(MODEL, SENTENCE, session=session)["trace"]
    again = service.translate_again(MODEL, SENTENCE, trace, session=session)
    assert again["translation"] and "Translated again" in again["message"]
    bundle(tmp_path, checkpoints / MODEL, {"de-en": "mixed"})
    shutil.copytree(checkpoints / MODEL, tmp_path / MODEL)
    monkeypatch.setenv("S2S_CHECKPOINTS", str(tmp_path))
    cleared = service.translate_again("de-en", SENTENCE, trace, session=session)
    assert cleared["translation"] == "" and cleared["trace"] is None and "reads German now" in cleared["message"]
    assert service.step_model_changed("de-en", None, session) is None
    state = service.step_next(service.step_start(MODEL, SENTENCE, session)["state"], session)["state"]
    restarted = service.step_model_changed(MODEL, state, session)
    assert restarted["state"]["target_ids"] == [] and "started again from step 0" in restarted["status"]
    assert service.step_model_changed("de-en", state, session)["state"] is None


def test_pasted_pairs_skip_bad_lines_and_take_three_separators():
    """Issue 10, item 3: a bad line is reported by number; Tab, ' ||| ' and CSV all separate."""
    rows, origin = service.read_training_pairs('source,target\na\tb\nno separator\nc ||| d\n"e, f",g\n\tx\nh\ti\ttest')
    assert [(r.source, r.target, r.held_out) for r in rows] == [("a", "b", False), ("c", "d", False),
                                                                 ("e, f", "g", False), ("h", "i", True)]
    assert origin == "4 pairs from the text box (skipped 2 lines: line 3: no separator; line 6: an empty side)"
    # a comma in a line whose Tab went missing is part of the sentence, not a separator; quoted CSV still is one
    rows, origin = service.read_training_pairs('a\tb\nYes, I know\n"c, d","e"\nf,g')
    assert [(r.source, r.target) for r in rows] == [("a", "b"), ("c, d", "e")]
    assert "line 2: no Tab or ' ||| '" in origin and "line 4: no Tab" in origin
    assert [(r.source, r.target) for r in service.read_training_pairs("f,g\nh,i")[0]] == [("f", "g"), ("h", "i")]


def test_a_refused_request_is_kept_for_the_message_next_to_its_control(session):
    assert service.error_note(session) == "" and service.error_note(None) == ""
    session.error = "Type a sentence <b>first</b>."
    assert service.error_note(session) == "⚠️ Type a sentence &lt;b&gt;first&lt;/b&gt;."
    assert service.error_note(session) == ""  # shown once


def test_bad_text_and_unknown_model(session):
    for text in ("", "   ", None):
        with pytest.raises(service.UserError, match="Type a sentence"):
            service.translate(MODEL, text, session=session)
    with pytest.raises(service.UserError, match="limit is 2,000"):
        service.translate(MODEL, "word " * 1000, session=session)
    with pytest.raises(service.UserError, match="Unknown model"):
        service.translate("missing", SENTENCE, session=session)


def test_attention_views_merge_and_bad_traces(session):
    trace = service.translate(MODEL, SENTENCE, session=session)["trace"]
    merged = service.attention_views(trace, merge_words=True)
    words = list(merged["heatmap"].layout.xaxis.ticktext)
    assert len(words) < len(trace["source_pieces"]) and words[-1] == "&lt;/s&gt;"
    assert service.attention_views(json.dumps(trace))["heatmap"].data  # JSON text works too
    for bad in (None, {}, "not json", {"source": "x"}):
        with pytest.raises(service.UserError):
            service.attention_views(bad)


def big_trace(sources: int, targets: int) -> dict:
    """A well-formed trace of any size, as a client could send back to /attention_views or /export."""
    row = [1.0 / sources] * sources
    return dict(source="x", source_pieces=[f"▁s{i}" for i in range(sources)], translation="y",
                target_pieces=[f"▁t{i}" for i in range(targets)], attention=[row] * targets,
                step_logprobs=[0.0] * targets, top_k=[], logprob=0.0)


def test_client_traces_larger_than_any_translation_are_refused_fast(session):
    """Issue 11, item 3: a 1000 × 1000 trace (5 MB) cost 13.8 s of CPU and +445 MB in /attention_views."""
    for data in (big_trace(1000, 1000), json.dumps(big_trace(5, 401)), big_trace(300, 400), big_trace(5, 401),
                 {**big_trace(5, 5), "beam_tree": [{}] * 60_000},
                 {**big_trace(5, 5), "source_pieces": ["x" * 101] * 5}, "[" * 10_000_001):
        start = time.perf_counter()
        for action in (service.attention_views, service.export_trace):
            with pytest.raises(service.UserError, match="larger than any translation here"):
                action(data, True)
        assert time.perf_counter() - start < 2.0
    for bad in ({**big_trace(3, 2), "attention": [[0.5, "x", 0.5]] * 2},
                {**big_trace(3, 2), "attention": [[1.0] * 3]}, {**big_trace(3, 2), "top_k": [[1]]}, "[" * 100_000,
                [1, 2]):
        with pytest.raises(service.UserError, match="not an s2s trace"):
            service.attention_views(bad)
    assert service.attention_views(big_trace(256, 400), True)["heatmap"].data  # the largest a bundled model makes


def test_export_writes_csv_json_html_at_once_and_reports_png(session, monkeypatch):
    trace = service.translate(MODEL, SENTENCE, session=session)["trace"]
    monkeypatch.setattr(service_translation, "png_bytes",
                        lambda figure: (_ for _ in ()).throw(RuntimeError("no Chrome")))
    result = service.export_trace(trace, False, session)
    names = [Path(p).name for p in result["files"]]
    assert names == ["attention.csv", "trace.json", "attention.html"]  # no browser needed for these
    png = service.export_png(trace, False, session)
    assert png["files"] == [] and "PNG export is not available" in png["message"] and "no Chrome" in png["message"]
    rows = list(csv.reader(io.StringIO(Path(result["files"][0]).read_text(encoding="utf-8"))))
    assert rows[0][1:] == trace["source_pieces"] and rows[0][-1] == "</s>"  # literal pieces in the CSV
    assert [r[0] for r in rows[1:]] == trace["target_pieces"]
    assert json.loads(Path(result["files"][1]).read_text(encoding="utf-8"))["attention"] == trace["attention"]
    page = Path(result["files"][2]).read_text(encoding="utf-8")
    assert "cdn.plot.ly" in page and len(page) < 100_000  # issue 10, item 6: not 4.8 MB of plotly.js
    assert f"<title>Attention: {SENTENCE}</title>" in page and trace["translation"] in page
    assert not list(Path(result["files"][0]).parent.glob(".*.tmp"))  # atomic: no leftovers
    with pytest.raises(service.UserError):
        service.export_trace(None, False, session)


def test_export_without_a_session_keeps_its_files(session, monkeypatch):
    """Called from Python with no session, the files stay for the caller (a throwaway session deleted them)."""
    trace = service.translate(MODEL, SENTENCE, session=session)["trace"]
    monkeypatch.setattr(service_translation, "png_bytes", lambda figure: b"png")
    files = service.export_trace(trace)["files"] + service.export_png(trace)["files"]
    gc.collect()
    assert [Path(p).name for p in files] == ["attention.csv", "trace.json", "attention.html", "attention.png"]
    assert all(Path(p).is_file() for p in files)
    for folder in {Path(p).parent for p in files}:
        shutil.rmtree(folder)


def test_exported_csv_neutralises_formula_cells(session, monkeypatch):
    """Issue 11, item 9: a piece such as =HYPERLINK(...) must not become a live spreadsheet formula."""
    trace = service.translate(MODEL, SENTENCE, session=session)["trace"]
    hostile = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "▁fine"]
    trace["source_pieces"] = (hostile * 3)[:len(trace["source_pieces"])]
    trace["target_pieces"] = (hostile[::-1] * 9)[:len(trace["target_pieces"])]
    monkeypatch.setattr(service_translation, "png_bytes", lambda figure: b"")
    files = service.export_trace(trace, False, session)["files"]
    rows = list(csv.reader(io.StringIO(Path(files[0]).read_bytes().decode("utf-8"), newline="")))
    labels = rows[0][1:] + [r[0] for r in rows[1:]]
    assert labels == [p if p.startswith("▁") else "'" + p for p in trace["source_pieces"] + trace["target_pieces"]]
    assert not [cell for row in rows for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert json.loads(Path(files[1]).read_text(encoding="utf-8"))["source_pieces"] == trace["source_pieces"]


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="PNG export needs /usr/bin/chromium")
def test_export_png_with_kaleido(session):
    """Issue 10, item 6: the browser kaleido drives stays open, so a PNG after the first is quick (0.5 s on an
    idle 2-core machine; the bound leaves room for a loaded one)."""
    import time
    service.startup()  # points kaleido at Debian's Chromium, as the app does before serving
    trace = service.translate(MODEL, "A woman.", session=session)["trace"]
    result = service.export_png(trace, True, session)
    assert result["files"] and Path(result["files"][0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", result["message"]
    start = time.monotonic()
    again = service.export_png(trace, False, session)
    assert again["files"] and time.monotonic() - start < 15
    figure = plots.export_figure(Trace.from_dict(trace), False)
    assert "A woman." in figure.layout.title.text and figure.layout.width >= 700


def test_beam_tree(session):
    result = service.beam_tree(MODEL, SENTENCE, 3, 1.0, session)
    assert result["translation"] and result["figure"].data
    with pytest.raises(service.UserError):
        service.beam_tree(MODEL, "", 3, 1.0, session)


# ---------------------------------------------------------------------- step by step
def test_stepper_next_force_back_run_reset(session):
    view = service.step_start(MODEL, SENTENCE, session)
    assert view["state"]["target_ids"] == [] and view["choices"] and view["prefix"] == []
    greedy = view["continuation"]
    view = service.step_next(service.step_next(view["state"], session)["state"], session)
    assert len(view["state"]["target_ids"]) == 2 and not any(view["state"]["forced"])
    assert view["continuation"] == greedy  # following the model changes nothing
    assert len(view["heatmap"].layout.yaxis.ticktext) == 2  # the heatmap grows row by row
    second_best = view["choices"][1][1]
    forced = service.step_force(view["state"], second_best, session, exact=True)
    assert forced["state"]["forced"] == [False, False, True]
    assert forced["prefix"][-1] == (second_best + " ", "forced")
    assert forced["continuation"] != greedy  # what if: a different word, a different continuation
    back = service.step_back(forced["state"], session)
    assert back["state"]["target_ids"] == view["state"]["target_ids"]
    done = service.step_run(forced["state"], session)
    assert done["state"]["done"] and done["state"]["forced"][2] and done["continuation"] == done["text"]
    assert done["choices"] == []
    assert service.step_reset(done["state"], session)["state"]["target_ids"] == []
    with pytest.raises(service.UserError, match="finished"):
        service.step_force(done["state"], "Hund", session)


def test_next_is_not_a_replay(session, monkeypatch):
    """Issue 13: a click on Next decodes nothing new (the session kept the greedy continuation and its decoder
    states); Force resumes from the kept state at its step, without the encoder. A replay would run the
    encoder and every step of the prefix again on each click."""
    from s2s.model import Seq2Seq

    calls = {"step": 0, "encode": 0}
    for name in calls:
        original = getattr(Seq2Seq, name)
        monkeypatch.setattr(Seq2Seq, name, lambda self, *a, _f=original, _n=name, **k:
                            calls.__setitem__(_n, calls[_n] + 1) or _f(self, *a, **k))
    view = service.step_start(MODEL, SENTENCE, session)
    assert calls["encode"] == 1 and calls["step"] > 0
    for _ in range(3):
        calls.update(step=0, encode=0)
        view = service.step_next(view["state"], session)
        assert calls == {"step": 0, "encode": 0}
    calls.update(step=0, encode=0)
    forced = service.step_force(view["state"], view["choices"][1][1], session, exact=True)
    assert calls["encode"] == 0 and calls["step"] == len(session.stepping[0].ids) - 3  # steps 4.. only
    assert forced["state"]["target_ids"] == session.stepping[0].ids[:4]
    calls.update(step=0, encode=0)
    back = service.step_back(forced["state"], session)  # back to the continuation kept from before the Force
    assert calls == {"step": 0, "encode": 0} and back["state"] == view["state"]
    assert service.step_next(view["state"], None)["state"] == service.step_next(view["state"], session)["state"]


def test_forcing_typed_words_and_pieces(session):
    start = service.step_start(MODEL, SENTENCE, session)["state"]
    word = service.step_force(start, "Hund", session)
    assert word["prefix"] == [("▁Hund ", "forced")]  # a typed word forces its word-initial piece
    assert service.step_force(start, "▁Hund", session)["state"] == word["state"]
    several = service.step_force(start, "zwei große Hunde", session)
    assert len(several["state"]["target_ids"]) >= 3 and all(several["state"]["forced"])
    stop = service.step_force(start, "</s>", session)
    assert stop["state"]["done"] and stop["text"] == ""
    for bad, message in (("", "Type a piece"), ("<s>", "cannot be forced"), ("x" * 300, "too long")):
        with pytest.raises(service.UserError, match=message):
            service.step_force(start, bad, session)
    with pytest.raises(service.UserError, match="not a piece"):
        service.step_force(start, "no-such-piece-xyz", session, exact=True)


def test_stepper_state_errors(session):
    with pytest.raises(service.UserError, match="press Start"):
        service.step_next(None, session)
    state = service.step_start(MODEL, SENTENCE, session)["state"]
    with pytest.raises(service.UserError, match="damaged"):
        service.step_next({**state, "target_ids": "x"}, session)
    with pytest.raises(service.UserError, match="does not fit"):
        service.step_next({**state, "target_ids": [10**6], "forced": [False]}, session)
    with pytest.raises(service.UserError):
        service.step_start(MODEL, "", session)


def test_a_step_state_larger_than_any_decode_is_refused_fast(session):
    """Issue 11, item 3: the Step tab's state comes back from the client too (a forced prefix of 100,000
    pieces meant 100,000 decoding steps)."""
    state = service.step_start(MODEL, SENTENCE, session)["state"]
    start = time.perf_counter()
    for bad in ({**state, "target_ids": [5] * 100_000, "forced": [True] * 100_000},
                {**state, "source": "word " * 1_000_000}):
        with pytest.raises(service.UserError, match="does not fit|limit is 2,000"):
            service.step_next(bad, session)
    assert time.perf_counter() - start < 2.0


# ---------------------------------------------------------------------- fine-tuning
def run_fine_tune(*args, **kwargs) -> list[dict]:
    return list(service.fine_tune(*args, **kwargs))


def test_fine_tune_adds_a_private_model_and_leaves_the_base_alone(session, pairs):
    base = service.get_translator(MODEL)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    updates = run_fine_tune(MODEL, tsv(pairs[20:40]), None, 1, 1e-3, session)
    assert updates[0]["progress"] == 0.0 and updates[-1]["progress"] == 1.0
    assert any(u.get("table") for u in updates[:2])  # base translations of the held-out pairs come first
    final = updates[-1]
    name = final["selected"]
    assert name == f"{MODEL}-ft1" and final["choices"] == [MODEL, name]
    assert "base" in final["bleu"] and len(final["table"][0]) == 4
    assert final["loss"].data  # training (and held-out) loss curve
    with zipfile.ZipFile(final["zip"]) as archive:
        files = set(archive.namelist())
    assert {f"{name}/config.json", f"{name}/model.safetensors", f"{name}/README.md"} <= files
    for key, tensor in base.model.state_dict().items():
        assert torch.equal(tensor, before[key]), key  # the shared base model is untouched
    assert service.translate(name, SENTENCE, session=session)["translation"] is not None
    other = service.Session()
    assert name not in service.model_choices(other)  # another browser session never sees it
    with pytest.raises(service.UserError, match="Unknown model"):
        service.translate(name, SENTENCE, session=other)
    assert "fine-tuned in this browser session" in service.model_overview(name, session)["summary"]


def test_a_session_holds_a_limited_number_of_models(session, monkeypatch):
    monkeypatch.setattr(service_models, "MAX_SESSION_MODELS", 1)
    session.models["mine"] = service.OwnModel(service.get_translator(MODEL), "for this test")
    with pytest.raises(service.UserError, match="Reload the page"):
        run_fine_tune(MODEL, "a\tb\nc\td", None, 1, 1e-3, session)
    with pytest.raises(service.UserError, match="Reload the page"):
        service.load_from_hub("someone/other", None, session)


def test_pairs_marked_test_are_held_out(pairs):
    rows = parse_pairs("\n".join(f"{s}\t{t}\t{'test' if i < 3 else ''}" for i, (s, t) in enumerate(pairs[:12])),
                       marks=True)
    train, heldout, note = service.split_pairs(rows)
    assert len(heldout) == 3 and len(train) == 9 and "marked 'test'" in note
    train, heldout, _ = service.split_pairs([PairRow(s, t, n) for n, (s, t) in enumerate(pairs[:30], 1)])
    assert len(heldout) == 3 and len(train) == 27
    csv_rows = parse_pairs('source,target\n"Hello, you",Hallo du\nA dog,Ein Hund,test\n', marks=True)
    assert csv_rows == [PairRow("Hello, you", "Hallo du", 2, False), PairRow("A dog", "Ein Hund", 3, True)]


def test_heldout_pairs_are_deduplicated_against_training_pairs(pairs):
    """Issue 11, item 10: a held-out source that is also trained on inflates the "after" BLEU."""
    marked = [PairRow(s, t, n, n <= 3) for n, (s, t) in enumerate(pairs[:12], 1)]
    copies = [PairRow(f"  {pairs[0][0].upper()} ", "anders", 20), PairRow(pairs[1][0], pairs[1][1], 21),
              PairRow(pairs[2][0].replace(" ", "  "), pairs[2][1], 22)]
    train, heldout, note = service.split_pairs(marked + copies)
    assert len(heldout) == 3 and len(train) == 9
    assert not {s.casefold() for s, _ in train} & {s.casefold() for s, _ in heldout}
    assert "3 training pairs left out (the same source sentence is held out)" in note
    twice = [PairRow(s, t + suffix, 0) for s, t in pairs[:20] for suffix in ("", " (2)")]  # every source twice
    train, heldout, _ = service.split_pairs(twice)
    assert heldout and not {s for s, _ in train} & {s for s, _ in heldout}


def test_fine_tune_reads_uploaded_files(session, pairs, tmp_path):
    source, target = tmp_path / "train.en", tmp_path / "train.de"
    source.write_text("\n".join(s for s, _ in pairs[:10]), encoding="utf-8")
    target.write_text("\n".join(t for _, t in pairs[:10]), encoding="utf-8")
    rows, origin = service.read_training_pairs("", [str(source), str(target)])
    assert len(rows) == 10 and "train.en + train.de" in origin
    table = tmp_path / "pairs.tsv"
    table.write_text(tsv(pairs[:5]), encoding="utf-8")
    rows, _ = service.read_training_pairs(tsv(pairs[5:7]), [str(table)])
    assert len(rows) == 7


def test_upload_size_is_checked_before_reading(tmp_path):
    """Issue 11, item 4: a file over the limit is refused from its size; its bytes are never read."""
    big = tmp_path / "big.tsv"
    with big.open("wb") as f:
        f.truncate(200 * 1024 * 1024)  # sparse: 200 MB that take no disk
    tracemalloc.start()
    try:
        with pytest.raises(service.UserError, match="big.tsv is 209.7 MB; the limit is 10 MB"):
            service.read_training_pairs("", [str(big)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024 * 1024


@pytest.mark.parametrize("make, message", [
    (lambda d: [d / "a.bin"], "binary"),
    (lambda d: [d / "latin1.tsv"], "not UTF-8"),
    (lambda d: [d / "a.en", d / "short.de"], "line-aligned"),
    (lambda d: [d / "a.en", d / "a.en", d / "a.en"], "Upload one TSV/CSV file"),
    (lambda d: [d / "big.tsv"], "limit is 10 MB"),
    (lambda d: [d / "three.tsv"], "line 1: 4 columns"),
])
def test_garbage_files_are_clear_errors(tmp_path, make, message):
    (tmp_path / "a.bin").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "latin1.tsv").write_bytes("caf\xe9\tKaffee\n".encode("latin-1"))
    (tmp_path / "a.en").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "short.de").write_text("eins\n", encoding="utf-8")
    (tmp_path / "big.tsv").write_bytes(b"a\tb\n" * (3 * 1024 * 1024))
    (tmp_path / "three.tsv").write_text("a\tb\tc\td\n", encoding="utf-8")
    with pytest.raises(service.UserError, match=message):
        service.read_training_pairs("", [str(p) for p in make(tmp_path)])


@pytest.mark.parametrize("text, epochs, lr, message", [
    ("", 1, 1e-3, "No sentence pairs"),
    ("just one column", 1, 1e-3, "skipped 1 line: line 1: no separator"),
    ("a\tb", 1, 1e-3, "At least 2 pairs"),
    ("a\tb\nc\td", 0, 1e-3, "Epochs must be between 1 and 20"),
    ("a\tb\nc\td", 21, 1e-3, "Epochs must be between 1 and 20"),
    ("a\tb\nc\td", 1, 1.0, "Learning rate must be between"),
    ("a\tb\tmaybe\nc\td", 1, 1e-3, "line 1: third column 'maybe' is not 'test' or 'train'"),
    ("a\tb\ttest\nc\td\ttest", 1, 1e-3, "Both the training and the held-out part"),
])
def test_fine_tune_input_errors(session, text, epochs, lr, message):
    with pytest.raises(service.UserError, match=message):
        run_fine_tune(MODEL, text, None, epochs, lr, session)
    assert service.model_choices(session) == [MODEL]


def test_fine_tune_pair_limit(session):
    text = "\n".join(f"s{i}\tt{i}" for i in range(service.MAX_PAIRS + 1))
    with pytest.raises(service.UserError, match="limit is 5,000"):
        run_fine_tune(MODEL, text, None, 1, 1e-3, session)


def test_cancelled_fine_tune_adds_no_model(session, pairs):
    token = service.new_cancel_token()
    assert "Cancelling" in service.cancel_fine_tune(token)
    updates = run_fine_tune(MODEL, tsv(pairs[:20]), None, 1, 1e-3, session, token)
    assert "Cancelled" in updates[-1]["status"] and "selected" not in updates[-1]
    assert service.model_choices(session) == [MODEL]
    assert service.cancel_fine_tune(None) == "Nothing is running."


# ---------------------------------------------------------------------- the Hub (s2s.hub replaced by a local fake)
def fake_hub(monkeypatch, tiny_checkpoint, load_error: Exception | None = None, push_error: Exception | None = None):
    calls = {}

    def load(spec, revision=None, token=None, device="auto", local=True):
        calls["load"], calls["local"] = (spec, revision), local
        if load_error:
            raise load_error
        return Translator.load(tiny_checkpoint, device="cpu", name="whatever")

    def push(folder, repo_id, token=None, private=False):
        calls["push"] = (folder, repo_id, token, private)
        if push_error:
            raise push_error
        return f"https://huggingface.co/{repo_id}"

    module = types.ModuleType("s2s.hub")
    module.load, module.push, module.models_from_env = load, push, lambda: []
    monkeypatch.setitem(sys.modules, "s2s.hub", module)
    return calls


def test_load_from_hub_adds_the_model_to_this_session_only(session, tiny_checkpoint, monkeypatch):
    calls = fake_hub(monkeypatch, tiny_checkpoint)
    result = service.load_from_hub("https://huggingface.co/someone/s2s-tiny", "v1", session)
    assert calls["load"] == ("someone/s2s-tiny", "v1") and calls["local"] is False  # never a server folder
    assert result["selected"] == "someone/s2s-tiny@v1" and result["selected"] in result["choices"]
    assert service.translate(result["selected"], SENTENCE, session=session)["translation"] is not None
    assert result["selected"] not in service.model_choices(service.Session())


def test_load_from_hub_errors(session, tiny_checkpoint, monkeypatch):
    for bad in ("", "not a repo id", "../../etc/passwd", "/abs/path"):
        with pytest.raises(service.UserError, match="Hub repository id"):
            service.load_from_hub(bad, None, session)
    fake_hub(monkeypatch, tiny_checkpoint, load_error=ValueError("someone/missing was not found on the Hub"))
    with pytest.raises(service.UserError, match="not found on the Hub"):
        service.load_from_hub("someone/missing", None, session)
    monkeypatch.setitem(sys.modules, "s2s.hub", None)  # importing it fails
    with pytest.raises(service.UserError, match="Hub support is not available"):
        service.load_from_hub("someone/missing", None, session)
    assert service.model_choices(session) == [MODEL]


def test_push_to_hub_uses_the_token_once_and_hides_it_in_errors(session, tiny_checkpoint, monkeypatch):
    calls = fake_hub(monkeypatch, tiny_checkpoint)
    message = service.push_to_hub(MODEL, "me/s2s-test", "hf_secret", True, session)
    assert "https://huggingface.co/me/s2s-test" in message
    assert calls["push"] == (str(tiny_checkpoint), "me/s2s-test", "hf_secret", True)
    assert "hf_secret" not in repr(session)
    with pytest.raises(service.UserError, match="access token"):
        service.push_to_hub(MODEL, "me/s2s-test", "", True, session)
    with pytest.raises(service.UserError, match="repository id"):
        service.push_to_hub(MODEL, "no repo", "hf_secret", True, session)
    fake_hub(monkeypatch, tiny_checkpoint, push_error=RuntimeError("401 for token hf_secret"))
    with pytest.raises(service.UserError) as err:
        service.push_to_hub(MODEL, "me/s2s-test", "hf_secret", True, session)
    assert "hf_secret" not in str(err.value) and "***" in str(err.value)
