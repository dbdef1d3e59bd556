import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from s2s.api import Translator
from s2s.checkpoint import average_checkpoints, load_checkpoint
from s2s.model import Seq2Seq
from s2s.train import Recipe, fine_tune, train_from_recipe, encode_pairs
from tiny import TOY, overfit, tiny_config, tiny_tokenizers, toy_pairs

TINY_MODEL = dict(emb_size=32, encoder_hidden_size=32, hidden_size=32, attentional_size=32, dropout=0.1)


def tiny_recipe(**kw) -> Recipe:
    fields = dict(name="tiny", corpus="pairs", data_path=str(TOY), n_val=6, n_test=6, src_vocab_size=400,
                  tgt_vocab_size=400, model=TINY_MODEL, batch_tokens=300, lr=5e-3, max_steps=30, eval_every=15,
                  patience=0, threads=1, half=False, seed=3)
    fields.update(kw)
    return Recipe(**fields)


def test_tiny_recipe_improves_validation_loss(tmp_path):
    events = []
    out = train_from_recipe(tiny_recipe(), events.append, output=tmp_path / "m", device="cpu")
    evals = [e for e in events if e.kind == "eval"]
    assert len(evals) == 2 and evals[-1].val_loss < evals[0].val_loss
    assert [e.kind for e in events][-1] == "done"
    assert all(e.tokens_per_s > 0 for e in events if e.kind == "step")
    assert Translator.load(out, device="cpu").translate("A man rides a bike.").translation
    training = json.loads((out / "training.json").read_text())
    assert training["final"]["stop_reason"] == "the update limit" and training["final"]["step"] == 30
    card = (out / "README.md").read_text()
    assert "stopped by the update limit" in card and "Data split by source sentence (seed 1234)" in card


def test_resume_continues_from_the_saved_step(tmp_path):
    train_from_recipe(tiny_recipe(max_steps=10, eval_every=10), output=tmp_path / "m", device="cpu")
    events = []
    train_from_recipe(tiny_recipe(max_steps=20, eval_every=10), events.append, resume=True,
                      output=tmp_path / "m", device="cpu")
    steps = [e.step for e in events if e.kind == "step"]
    assert steps[0] > 10 and steps[-1] == 20
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_from_recipe(tiny_recipe(), resume=True, output=tmp_path / "other", device="cpu")


def test_init_from_continues_a_checkpoint_whose_resume_state_is_gone(tmp_path):
    """A bundled checkpoint keeps no optimizer: training goes on from its weights, tokenizers and counters,
    and a save happens only when validation beats the checkpoint's own score, measured at the start."""
    first = train_from_recipe(tiny_recipe(max_steps=10, eval_every=10), output=tmp_path / "m", device="cpu")
    training = json.loads((first / "training.json").read_text())
    training["decoding"] = "chosen on validation"
    del training["recipe"]["clip"]  # as if `clip` were newer than the checkpoint: it had the default then
    (first / "training.json").write_text(json.dumps(training))
    start_weights = load_checkpoint(first)[0].state_dict()
    events = []
    out = train_from_recipe(tiny_recipe(max_steps=30, eval_every=10, lr=1e-3, clip=0.5), events.append,
                            output=tmp_path / "next", device="cpu", init_from=first)
    steps = [e.step for e in events if e.kind == "step"]
    assert 10 < steps[0] and steps[-1] == 30
    assert all(e.lr == training["final"]["history"][-1]["lr"] for e in events if e.kind == "step")
    assert (out / "source.model").read_bytes() == (first / "source.model").read_bytes()
    record = json.loads((out / "training.json").read_text())
    assert [h["step"] for h in record["final"]["history"]] == [10, 20, 30]  # the first run's history goes on
    assert record["decoding"] == "chosen on validation"
    assert record["restarts"][0]["step"] == 10 and record["restarts"][0]["from_folder"] == str(first)
    assert record["restarts"][0]["recipe_changes"] == {"lr": [training["recipe"]["lr"], 1e-3], "clip": [1.0, 0.5]}
    assert ("At update 10 training went on from the saved weights" in (out / "README.md").read_text()
            and "from then on the recipe had lr = 0.001 (before: " in (out / "README.md").read_text())
    # the output holds the best so far, the starting weights included: they stay unless an evaluation beat them
    later = [h["val_bleu"] for h in record["final"]["history"][1:]]
    kept = load_checkpoint(out)[0].state_dict()
    unchanged = all(torch.equal(v, kept[k]) for k, v in start_weights.items())
    assert unchanged == (record["state"]["best_step"] == 10)
    assert record["state"]["best_bleu"] >= max(later)


def test_restart_lr_replaces_the_last_learning_rate_of_the_history(tmp_path):
    first = train_from_recipe(tiny_recipe(max_steps=10, eval_every=10), output=tmp_path / "m", device="cpu")
    events = []
    out = train_from_recipe(tiny_recipe(max_steps=20, eval_every=10), events.append, output=tmp_path / "next",
                            device="cpu", init_from=first, restart_lr=2e-3)
    first_eval = next(i for i, e in enumerate(events) if e.kind == "eval")
    assert {e.lr for e in events[:first_eval] if e.kind == "step"} == {2e-3}
    assert json.loads((out / "training.json").read_text())["restarts"][0]["lr"] == 2e-3
    # --resume of a continued run keeps its record of the restart, in the resume state and in new saves
    train_from_recipe(tiny_recipe(max_steps=40, eval_every=10, lr=5e-3), output=out, device="cpu", resume=True)
    carried = json.loads((tmp_path / "next.resume" / "carried.json").read_text())
    assert [r["lr"] for r in carried["restarts"]] == [2e-3]
    assert json.loads((out / "training.json").read_text())["restarts"] == carried["restarts"]


def test_resume_of_a_continued_run_keeps_the_checkpoints_tuned_decoding(tmp_path):
    """α and β tuned on a bundled checkpoint travel through --init-from and then --resume: saves made after
    the resume decode as the earlier ones (and can be averaged with them), not with the recipe's defaults."""
    first = train_from_recipe(tiny_recipe(max_steps=10, eval_every=10), output=tmp_path / "m", device="cpu")
    config = json.loads((first / "config.json").read_text())
    config.update(length_penalty=1.7, coverage_penalty=0.2)
    (first / "config.json").write_text(json.dumps(config))
    out = tmp_path / "next"
    train_from_recipe(tiny_recipe(max_steps=20, eval_every=10, keep_saves=True), output=out, device="cpu",
                      init_from=first)
    train_from_recipe(tiny_recipe(max_steps=40, eval_every=10, keep_saves=True), output=out, device="cpu",
                      resume=True)
    saves = sorted((tmp_path / "next.saves").glob("step-*"))
    assert [s.name for s in saves] == ["step-00020", "step-00030", "step-00040"]
    for folder in (*saves, tmp_path / "next.resume", out):
        saved = json.loads((folder / "config.json").read_text())
        assert (saved["length_penalty"], saved["coverage_penalty"]) == (1.7, 0.2), folder
    average_checkpoints(saves, tmp_path / "mean")  # one architecture and one decoding: they average


def test_a_continued_run_whose_limit_is_spent_says_how_to_go_on(tmp_path):
    """The limits count the whole run: --init-from with the first run's limit would stop after one update."""
    first = train_from_recipe(tiny_recipe(max_steps=10, eval_every=10), output=tmp_path / "m", device="cpu")
    with pytest.raises(ValueError, match=r"--max-steps 10 is spent already: this run has made 10 updates in all "
                                         r".* give --max-steps 20\."):
        train_from_recipe(tiny_recipe(max_steps=10, eval_every=10), output=tmp_path / "next", device="cpu",
                          init_from=first)
    with pytest.raises(ValueError, match="--max-minutes 0.001 is spent already"):
        train_from_recipe(tiny_recipe(max_steps=0, max_minutes=0.001, eval_every=10), output=tmp_path / "m",
                          device="cpu", resume=True)
    assert not (tmp_path / "next").exists()


def test_keep_saves_keeps_each_evaluation_for_averaging(tmp_path):
    out = train_from_recipe(tiny_recipe(max_steps=20, eval_every=10, keep_saves=True), output=tmp_path / "m",
                            device="cpu")
    saves = sorted(p.name for p in (tmp_path / "m.saves").iterdir())
    assert saves == ["step-00010", "step-00020"]
    last = load_checkpoint(tmp_path / "m.saves" / "step-00020")[0].state_dict()
    resumed = load_checkpoint(tmp_path / "m.resume")[0].state_dict()
    assert all(torch.equal(v, resumed[k]) for k, v in last.items())
    assert json.loads((tmp_path / "m.saves" / "step-00010" / "training.json").read_text())["step"] == 10
    average_checkpoints([tmp_path / "m.saves" / name for name in saves], tmp_path / "avg")
    assert Translator.load(tmp_path / "avg", device="cpu").translate("A man rides a bike.").translation is not None
    assert out.exists()


def test_init_from_refuses_a_checkpoint_of_another_architecture(tmp_path):
    first = train_from_recipe(tiny_recipe(max_steps=2, eval_every=0), output=tmp_path / "m", device="cpu")
    other = tiny_recipe(model={**TINY_MODEL, "hidden_size": 48})
    with pytest.raises(ValueError, match="not trained by the recipe 'tiny': hidden_size: recipe 48, checkpoint 32"):
        train_from_recipe(other, output=tmp_path / "next", device="cpu", init_from=first)


CRASH = """
import os, pathlib, sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
import s2s.train as train
from test_train import tiny_recipe

point, output = sys.argv[1], pathlib.Path(sys.argv[2])
resume_dir = output.with_name(output.name + ".resume")
crash = lambda *args, **kwargs: os._exit(137)  # like kill -9: no cleanup, no finally blocks
if point == "before-optimizer-state":  # the weights and tokenizers are written, the optimizer is not
    train.save_file = crash
rename, write_text = pathlib.Path.rename, pathlib.Path.write_text
if point == "before-optimizer-json":
    pathlib.Path.write_text = lambda self, *a, **k: crash() if self.name == "optimizer.json" else write_text(self, *a, **k)
if point == "in-the-swap":  # the old folder moved aside, the new one not yet in its place
    pathlib.Path.rename = lambda self, target: crash() if pathlib.Path(target) == resume_dir else rename(self, target)
train.train_from_recipe(tiny_recipe(max_steps=20, eval_every=10), resume=True, output=output, device="cpu")
"""


@pytest.mark.parametrize("point", ["before-optimizer-state", "before-optimizer-json", "in-the-swap"])
def test_a_crash_while_saving_the_resume_state_keeps_the_last_good_one(tmp_path, point):
    """Issue 11, item 6: a crash in the middle of save_resume must leave the previous state loadable."""
    out = tmp_path / "m"
    train_from_recipe(tiny_recipe(max_steps=10, eval_every=10), output=out, device="cpu")
    crashed = subprocess.run([sys.executable, "-c", CRASH.format(tests=str(Path(__file__).parent)), point, str(out)],
                             capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert crashed.returncode == 137, crashed.stderr[-2000:]
    events = []
    train_from_recipe(tiny_recipe(max_steps=11, eval_every=0), events.append, resume=True, output=out, device="cpu")
    assert [e.step for e in events if e.kind == "done"] == [11]  # one update after the state saved at step 10


def test_cancel_stops_within_one_batch_and_leaves_a_usable_checkpoint(tmp_path):
    cancel = threading.Event()
    events = []

    def on_progress(p):
        events.append(p)
        if p.kind == "step" and p.step >= 10:
            cancel.set()

    train_from_recipe(tiny_recipe(max_steps=1000, eval_every=0, max_epochs=100), on_progress, cancel,
                      output=tmp_path / "m", device="cpu")
    assert events[-1].kind == "done" and events[-1].message == "cancelled" and events[-1].step == 10
    model, _, _ = load_checkpoint(tmp_path / "m.resume")
    assert isinstance(model, Seq2Seq)


def test_a_tiny_model_overfits_twenty_pairs_exactly():
    pairs = toy_pairs()[:20]
    source, target = tiny_tokenizers()
    model = Seq2Seq(tiny_config(source, target))
    overfit(model, encode_pairs(pairs, source, target, 256), steps=300)
    translator = Translator(model, source, target)
    assert [translator.translate(s).translation for s, _ in pairs] == [t for _, t in pairs]


def test_fine_tune_trains_a_copy_and_reports_progress(tiny_checkpoint):
    base = Translator.load(tiny_checkpoint, device="cpu")
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    pairs = toy_pairs()
    events = []
    tuned, state = fine_tune(base, pairs[20:40], pairs[40:45], epochs=2, lr=5e-3, callback=events.append)
    assert state.epoch == 2
    assert all((before[k] == v).all() for k, v in base.model.state_dict().items())  # base untouched
    assert any((before[k] != v).any() for k, v in tuned.model.state_dict().items())
    evals = [e for e in events if e.kind == "eval"]
    assert len(evals) == 2 and all(math.isfinite(e.val_loss) and math.isfinite(e.val_bleu) for e in evals)
