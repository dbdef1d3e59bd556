"""`s2s` on the command line, run in this process (s2s.cli.main with its own stdin, stdout and stderr);
tests/test_hub.py runs it as a real subprocess (`python -m s2s.cli push`, then translate by repo id)."""
import io
import json
import signal
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from s2s import cli
from tiny import TOY, stop_training_at, tiny_recipe


def run(args: list[str], stdin: str | bytes = "") -> SimpleNamespace:
    """`s2s ARGS` with `stdin`: returncode (argparse's exit status too), stdout and stderr as text."""
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    out, err = io.StringIO(), io.StringIO()
    saved_stdin, sys.stdin = sys.stdin, io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = cli.main(args)
            except SystemExit as exit_:  # argparse refusing an option
                code = exit_.code
    finally:
        sys.stdin = saved_stdin
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def test_translate_reads_stdin_and_prints_one_line_per_sentence(tiny_checkpoint):
    result = run(["translate", "--model", str(tiny_checkpoint)], "A man rides a bike.\n\nTwo dogs play.\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert len(lines) == 4 and lines[0] and lines[1] == "" and lines[2] and lines[3] == ""


def test_translate_by_sentence_joins_the_sentences_translated_alone(tiny_checkpoint):
    alone = run(["translate", "--model", str(tiny_checkpoint)], "A man rides a bike.\nTwo dogs play.\n").stdout
    joined = run(["translate", "--model", str(tiny_checkpoint), "--by-sentence"], "A man rides a bike. Two dogs play.\n")
    assert joined.returncode == 0 and joined.stdout == " ".join(alone.splitlines()) + "\n"
    refused = run(["translate", "--model", str(tiny_checkpoint), "--by-sentence", "--json"], "A dog.\n")
    assert refused.returncode != 0 and "--by-sentence writes one joined translation per line" in refused.stderr


def test_translate_json_traces_with_attention_and_files(tiny_checkpoint, tmp_path):
    (tmp_path / "in.txt").write_text("A man rides a bike.\n", encoding="utf-8")
    result = run(["translate", "--model", str(tiny_checkpoint), "--json", "--beam", "3", "--input",
                  str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.jsonl"), "--device", "cpu"])
    assert result.returncode == 0, result.stderr
    trace = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert trace["method"] == "beam" and len(trace["attention"]) == len(trace["target_pieces"])


def test_translate_nbest_and_sampling(tiny_checkpoint):
    nbest = run(["translate", "--model", str(tiny_checkpoint), "--beam", "4", "--nbest", "3"], "A dog runs.\n")
    assert nbest.returncode == 0 and len(nbest.stdout.rstrip("\n").split("\t")) == 6
    sample = run(["translate", "--model", str(tiny_checkpoint), "--sample", "--seed", "1", "--top-p", "0.9"],
                 "A dog runs.\n")
    assert sample.returncode == 0 and sample.stdout.strip()


def test_bad_model_and_options_are_clear_errors(tiny_checkpoint, tmp_path):
    missing = run(["translate", "--model", str(tmp_path)], "x\n")
    assert missing.returncode == 2 and "not an s2s checkpoint" in missing.stderr and "Traceback" not in missing.stderr
    bad_beam = run(["translate", "--model", str(tiny_checkpoint), "--beam", "100"], "x\n")
    assert bad_beam.returncode == 2 and "beam width" in bad_beam.stderr
    no_cuda = run(["translate", "--model", str(tiny_checkpoint), "--device", "cuda"], "x\n")
    if torch.cuda.is_available():
        assert no_cuda.returncode == 0 and no_cuda.stdout.strip(), no_cuda.stderr
    else:
        assert no_cuda.returncode == 2 and "--device cuda was asked for, but CUDA is not available" in no_cuda.stderr


def test_evaluate_writes_scores_with_signature(tiny_checkpoint, tmp_path):
    test_file = Path(__file__).parent / "data" / "toy_en_de.tsv"
    out = tmp_path / "scores.json"
    result = run(["evaluate", "--model", str(tiny_checkpoint), "--test", str(test_file), "--beam", "1", "3",
                  "--json", str(out)])
    assert result.returncode == 0, result.stderr
    scores = json.loads(out.read_text())
    assert set(scores) == {f"{test_file}/greedy", f"{test_file}/beam 3"}
    assert all("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in s["signature"] for s in scores.values())
    by_sentence = run(["evaluate", "--model", str(tiny_checkpoint), "--test", str(test_file), "--beam", "1",
                       "--by-sentence", "--json", str(out)])
    assert by_sentence.returncode == 0, by_sentence.stderr
    assert set(json.loads(out.read_text())) == {f"{test_file}/greedy, by sentence"}


# ---------------------------------------------------------------------- hostile options (issue 11, item 7)
@pytest.mark.parametrize("option, value, message", [
    ("--batch-size", "-1", "--batch-size: batch size must be an integer from 1 to 1024, got '-1'"),
    ("--batch-size", "0", "--batch-size: batch size must be an integer from 1 to 1024"),
    ("--batch-size", "x", "--batch-size: batch size must be an integer from 1 to 1024, got 'x'"),
    ("--beam", "0", "--beam: beam width must be an integer from 1 to 64, got '0'"),
    ("--beam", "-1", "--beam: beam width must be an integer from 1 to 64"),
    ("--nbest", "0", "--nbest: n-best must be an integer from 1 to 64"),
    ("--top-k", "-5", "--top-k: top-k must be an integer from 0 to 1000"),
    ("--temperature", "nan", "--temperature: temperature must be a number from 0.05 to 10, got 'nan'"),
    ("--temperature", "0", "--temperature: temperature must be a number from 0.05 to 10"),
    ("--temperature", "inf", "--temperature: temperature must be a number from 0.05 to 10"),
    ("--top-p", "nan", "--top-p: top-p must be a number from 0.05 to 1"),
    ("--top-p", "1.5", "--top-p: top-p must be a number from 0.05 to 1"),
    ("--top-p", "0", "--top-p: top-p must be a number from 0.05 to 1"),
    ("--length-penalty", "nan", "--length-penalty: length penalty must be a number from 0 to 5"),
    ("--length-penalty", "-1", "--length-penalty: length penalty must be a number from 0 to 5"),
    ("--seed", "-3", "--seed: seed must be an integer from 0 to 2147483647"),
])
def test_out_of_range_translate_options_are_refused_by_argparse(tiny_checkpoint, option, value, message):
    result = run(["translate", "--model", str(tiny_checkpoint), "--sample", option, value], "A dog.\n")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--model", "m", "--beam", "5", "0"], "--beam: beam width must be an integer from 1 to 64"),
    (["evaluate", "--model", "m", "--batch-size", "0"], "--batch-size: batch size must be an integer from 1 to"),
    (["evaluate", "--model", "m", "--length-penalty", "nan"], "--length-penalty: length penalty must be a number"),
    (["train", "--config", "c", "--max-minutes", "nan"], "--max-minutes: time limit must be a number from 0 to"),
    (["train", "--config", "c", "--max-minutes", "-1"], "--max-minutes: time limit must be a number from 0 to"),
    (["train", "--config", "c", "--max-steps", "-1"], "--max-steps: update limit must be an integer from 0 to"),
    (["train", "--config", "c", "--threads", "-2"], "--threads: thread count must be an integer from 0 to"),
])
def test_out_of_range_evaluate_and_train_options_are_refused(args, message):
    result = run(args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_invalid_utf8_on_stdin_is_replaced_and_reported_like_input_files(tiny_checkpoint, tmp_path):
    data = b"A dog \xff\xfe runs.\nTwo \xc3 dogs.\nA man.\n"
    via_stdin = run(["translate", "--model", str(tiny_checkpoint)], data)
    assert via_stdin.returncode == 0, via_stdin.stderr
    assert len(via_stdin.stdout.split("\n")) == 4  # three translations, nothing lost
    assert "note: 3 bytes of stdin were not valid UTF-8 and became U+FFFD" in via_stdin.stderr
    (tmp_path / "in.txt").write_bytes(data)
    via_file = run(["translate", "--model", str(tiny_checkpoint), "--input", str(tmp_path / "in.txt")])
    assert via_file.returncode == 0 and via_file.stdout == via_stdin.stdout
    assert "3 bytes of in.txt were not valid UTF-8" in via_file.stderr
    clean = run(["translate", "--model", str(tiny_checkpoint)], "A man.\n")
    assert clean.returncode == 0 and "UTF-8" not in clean.stderr


# ---------------------------------------------------------------------- training log (issue 11, item 10)
TINY_RECIPE = tiny_recipe("tiny", {"corpus": "pairs", "data_path": str(TOY), "n_val": 6, "n_test": 6}, dropout=0.1,
                          lr=0.005, max_steps=10, eval_every=5, seed=3)


def test_train_log_is_json_lines_without_nan(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY_RECIPE)
    result = run(["train", "--config", str(tmp_path / "tiny.toml"), "--output", str(tmp_path / "m"), "--log",
                  str(tmp_path / "log.jsonl"), "--quiet", "--device", "cpu"])
    assert result.returncode == 0, result.stderr

    def no_constants(name):
        raise ValueError(f"{name} is not JSON")

    records = [json.loads(line, parse_constant=no_constants)
               for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {"eval", "done"} <= {r["kind"] for r in records}
    assert any(value is None for r in records for value in r.values())  # a value not measured at a step: null
    evaluation = next(r for r in records if r["kind"] == "eval")
    assert isinstance(evaluation["val_loss"], float) and isinstance(evaluation["val_bleu"], float)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_stopping_a_training_run_saves_its_state_and_resume_goes_on_from_there(tmp_path, stop):
    """Ctrl-C (SIGINT) or a scheduler's SIGTERM in a plain one-process run: the update in hand finishes, the
    resume state is saved, and --resume continues from that update instead of the last evaluation."""
    (tmp_path / "tiny.toml").write_text(tiny_recipe("tiny", {"corpus": "pairs", "data_path": str(TOY), "n_val": 6,
                                                              "n_test": 6}, eval_every=100000, max_steps=100000))
    log, output = tmp_path / "log.jsonl", tmp_path / "m"
    train = [sys.executable, "-m", "s2s.cli", "train", "--config", str(tmp_path / "tiny.toml"), "--output",
             str(output), "--log", str(log), "--quiet", "--device", "cpu"]
    job = stop_training_at(train, log, 10, stop)
    assert job.returncode == 0 and "continue with --resume" in job.output and "Traceback" not in job.output, job.output
    saved = json.loads((tmp_path / "m.resume" / "training.json").read_text())["step"]
    assert saved >= 10  # no evaluation ran: only the stop can have saved this state

    resumed = run(["train", "--config", str(tmp_path / "tiny.toml"), "--output", str(output), "--resume",
                   "--max-steps", str(saved + 3), "--quiet", "--device", "cpu"])
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((output / "training.json").read_text())["state"]["step"] == saved + 3


def test_restart_lr_without_init_from_is_refused_clearly():
    result = run(["train", "--config", "configs/en-de.toml", "--restart-lr", "0.001"])
    assert result.returncode == 2 and "--restart-lr sets the learning rate of --init-from" in result.stderr
