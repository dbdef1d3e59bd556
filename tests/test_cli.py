import json
import os
import subprocess
import sys
from pathlib import Path

S2S = [sys.executable, "-m", "s2s.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def run(args, stdin="", cwd=None):
    return subprocess.run(S2S + args, input=stdin, capture_output=True, text=True, env=ENV, cwd=cwd, timeout=120)


def test_translate_reads_stdin_and_prints_one_line_per_sentence(tiny_checkpoint):
    result = run(["translate", "--model", str(tiny_checkpoint)], "A man rides a bike.\n\nTwo dogs play.\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert len(lines) == 4 and lines[0] and lines[1] == "" and lines[2] and lines[3] == ""


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
    assert no_cuda.returncode in (0, 2)
    if no_cuda.returncode == 2:
        assert "CUDA is not available" in no_cuda.stderr


def test_evaluate_writes_scores_with_signature(tiny_checkpoint, tmp_path):
    test_file = Path(__file__).parent / "data" / "toy_en_de.tsv"
    out = tmp_path / "scores.json"
    result = run(["evaluate", "--model", str(tiny_checkpoint), "--test", str(test_file), "--beam", "1", "3",
                  "--json", str(out)])
    assert result.returncode == 0, result.stderr
    scores = json.loads(out.read_text())
    assert set(scores) == {f"{test_file}/greedy", f"{test_file}/beam 3"}
    assert all("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in s["signature"] for s in scores.values())
