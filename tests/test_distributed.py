"""DDP under torchrun on the CPU (gloo, 2 processes, a tiny model): the same result as one process with the
same global batch, rank 0 alone writes, resume restores every rank, a failing rank or a stopped job ends
cleanly with no half-written checkpoint. tests/ddp_worker.py runs `s2s train` in each rank and records
what it wrote and the state it ended with."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from s2s import distributed
from s2s.checkpoint import load_checkpoint
from s2s.data import make_batch
from s2s.model import Seq2Seq
from s2s.tokenizer import BOS_ID, EOS_ID, PAD_ID
from s2s.train import encode_pairs
from test_cli import run
from tiny import TOY, stop_training_at, tiny_config, tiny_recipe, tiny_tokenizers, toy_pairs

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"
RECIPE = tiny_recipe("tiny-ddp", {"corpus": "pairs", "data_path": str(TOY), "n_val": 6, "n_test": 6},
                     lr=0.005, max_steps=6, eval_every=3, seed=3)


def torchrun_command(audit: Path, args: list[str], nproc: int = 2) -> list[str]:
    audit.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            str(WORKER), str(audit), *args]


def torchrun(audit: Path, args: list[str], timeout: float = 300, **env) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun_command(audit, args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def train_args(config: Path, output: Path, *extra: str) -> list[str]:
    return ["train", "--config", str(config), "--output", str(output), "--device", "cpu", "--quiet", *extra]


def history(output: Path) -> list[dict]:
    return json.loads((output / "training.json").read_text())["final"]["history"]


def ranks_state(audit: Path) -> list[dict]:
    return [json.loads((audit / f"state.{rank}.json").read_text()) for rank in (0, 1)]


def assert_same_weights(a: Path, b: Path, atol: float = 1e-4) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=atol) for k in wa)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """One 2-process run of 6 updates (evaluations at 3 and 6), shared by the tests that read it."""
    folder = tmp_path_factory.mktemp("ddp")
    config = folder / "tiny.toml"
    config.write_text(RECIPE, encoding="utf-8")
    result = torchrun(folder / "audit", train_args(config, folder / "m", "--log-file", str(folder / "log.jsonl")))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result


def test_a_global_batch_split_over_ranks_gives_the_gradient_of_the_whole_batch():
    """The loss weights of `shard`: the ranks' weighted gradients, averaged as DDP does, equal one process's."""
    torch.manual_seed(0)
    pairs = toy_pairs()
    source, target = tiny_tokenizers(pairs)
    model = Seq2Seq(tiny_config(source, target))
    examples = encode_pairs(pairs[:7], source, target, 256)

    def gradient(batch_examples, weight):
        model.zero_grad()
        batch = make_batch(batch_examples, PAD_ID, BOS_ID, EOS_ID)
        (model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out) * weight).backward()
        return [p.grad.clone() for p in model.parameters()]

    for batch_examples in (examples, examples[:1]):  # one sentence, two ranks: rank 1 joins with weight 0
        whole = gradient(batch_examples, 1.0)
        ranks = [distributed.shard(batch_examples, distributed.Group(rank=r, world=2)) for r in (0, 1)]
        averaged = [sum(g) / 2 for g in zip(*(gradient(mine, weight) for mine, weight in ranks))]
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(whole, averaged))
        assert sorted(id(e) for mine, w in ranks if w for e in mine) == sorted(id(e) for e in batch_examples)


def test_two_gloo_processes_match_one_process_and_rank_0_alone_writes(ddp_run, tmp_path):
    folder, result = ddp_run
    single = run(train_args(folder / "tiny.toml", tmp_path / "single"))
    assert single.returncode == 0, single.stderr
    ddp, one = history(folder / "m"), history(tmp_path / "single")
    assert [h["step"] for h in ddp] == [h["step"] for h in one] == [3, 6]
    for a, b in zip(ddp, one):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5, nan_ok=True)
    assert_same_weights(folder / "m.resume", tmp_path / "single.resume")
    assert (folder / "m" / "source.model").read_bytes() == (tmp_path / "single" / "source.model").read_bytes()
    # rank 0 wrote the checkpoint, the resume state and the log; rank 1 wrote nothing at all
    assert (folder / "audit" / "writes.1").read_text() == ""
    written = (folder / "audit" / "writes.0").read_text()
    assert str(folder / "log.jsonl") in written and ".m.resume." in written and "os.rename" in written
    assert result.stdout.count("best checkpoint") == 1
    logged = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["kind"] == "eval"] == [3, 6]  # once each: one writer
    first, second = ranks_state(folder / "audit")
    assert first == second and first["step"] == 6  # the same weights and Adam moments on both ranks


def test_resume_under_torchrun_restores_every_rank(ddp_run, tmp_path):
    folder, _ = ddp_run
    for name in ("m", "m.resume"):  # continue a copy of the 6-update run to 10
        subprocess.run(["cp", "-r", str(folder / name), str(tmp_path / name)], check=True)
    config = folder / "tiny.toml"
    result = torchrun(tmp_path / "audit", train_args(config, tmp_path / "m", "--resume", "--max-steps", "10",
                                                     "--log-file", str(tmp_path / "log.jsonl")))
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = ranks_state(tmp_path / "audit")
    assert first == second and first["step"] == 10
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert min(steps) > 6 and max(steps) == 10
    whole = run(train_args(config, tmp_path / "single", "--max-steps", "10"))  # one process, never stopped
    assert whole.returncode == 0, whole.stderr
    assert_same_weights(tmp_path / "m.resume", tmp_path / "single.resume")
    assert [h["val_loss"] for h in history(tmp_path / "m")] == pytest.approx(
        [h["val_loss"] for h in history(tmp_path / "single")], rel=1e-5)


def assert_complete(folder: Path) -> int:
    """A checkpoint that loads; returns the step its training.json records."""
    load_checkpoint(folder, "cpu")
    record = json.loads((folder / "training.json").read_text())
    return record.get("step", record.get("state", {}).get("step"))


def test_a_failing_rank_ends_the_job_and_leaves_no_half_written_checkpoint(ddp_run, tmp_path):
    folder, _ = ddp_run
    started = time.monotonic()
    result = torchrun(tmp_path / "audit", train_args(folder / "tiny.toml", tmp_path / "m", "--max-steps", "1000"),
                      timeout=150, S2S_TEST_FAIL_RANK="1", S2S_TEST_FAIL_STEP="5")
    assert result.returncode != 0 and "injected failure on rank 1 at update 5" in result.stderr
    assert time.monotonic() - started < 120
    visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert visible == ["audit", "m", "m.resume"]
    assert assert_complete(tmp_path / "m.resume") == 3 and assert_complete(tmp_path / "m") == 3


def test_stopping_the_job_saves_the_state_once_and_every_rank_stops_at_the_same_update(ddp_run, tmp_path):
    folder, _ = ddp_run
    log = tmp_path / "log.jsonl"
    command = torchrun_command(tmp_path / "audit", train_args(folder / "tiny.toml", tmp_path / "m", "--max-steps",
                                                              "100000", "--log-file", str(log)))
    output = stop_training_at(command, log, 10, signal.SIGTERM).output  # a scheduler (or Ctrl-C, via torchrun)
    first, second = ranks_state(tmp_path / "audit")
    assert first == second and first["step"] >= 10
    assert assert_complete(tmp_path / "m.resume") == first["step"]
    assert "continue with --resume" in output
    assert (tmp_path / "audit" / "writes.1").read_text() == ""
