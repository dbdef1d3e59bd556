"""Data-parallel training: 1 vs N processes under torchrun, target tokens/s and the loss curve (issue 15).

    .venv/bin/python bench/ddp.py                                  # CPU: 1 and 2 processes, gloo
    .venv/bin/python bench/ddp.py --device cuda --procs 1 2 4 8    # GPUs: one per process, nccl

Each run is `torchrun --standalone --nproc_per_node N -m s2s.cli train` on the recipe (default
configs/en-de-multi30k.toml) for --updates updates with the recipe's global batch (batch_tokens): the same
batches in every run, split over the processes. Evaluation is cut to 50 validation sentences (it is not what
is measured). Tokens/s is the global rate rank 0 logs every 10 updates, averaged after the first 10; the loss
is the logged training loss at every 10th update. One process per core at most: each process gets
--threads threads (default: the recipe's).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import REPO, WORK, git_commit, machine_info, save_result  # noqa: E402

FOLDER = WORK / "ddp"


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def bench_recipe(config: Path, updates: int, threads: int | None, target: Path) -> Path:
    """The recipe with a fixed number of updates and a short evaluation, written as TOML."""
    raw = tomllib.loads(config.read_text(encoding="utf-8"))
    train = raw.setdefault("train", {})
    train.update(max_steps=updates, max_minutes=0, eval_every=0, val_size=50, patience=0)
    if threads is not None:
        train["threads"] = threads
    lines = []
    for key, value in raw.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {toml_value(value)}")
    for section, values in raw.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def run(procs: int, recipe: Path, device: str, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "log.jsonl"
    log.unlink(missing_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
               "-m", "s2s.cli", "train", "--config", str(recipe), "--output", str(folder / "model"),
               "--device", device, "--log-file", str(log), "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{procs} processes failed:\n{done.stderr[-3000:]}")
    steps = [json.loads(line) for line in log.read_text().splitlines()]
    steps = [s for s in steps if s["kind"] == "step" and s["step"] % 10 == 0]
    measured = [s["tokens_per_s"] for s in steps if s["step"] > 10]
    return dict(processes=procs, device=device, wall_s=round(wall, 1),
                target_tokens_per_s=round(sum(measured) / len(measured)) if measured else None,
                loss={s["step"]: round(s["loss"], 4) for s in steps})


def render(result: dict) -> str:
    steps = sorted({int(k) for r in result["runs"] for k in r["loss"]})
    head = "| processes | target tokens/s | speed-up | " + " | ".join(f"loss @{s}" for s in steps) + " |"
    rows = [head, "|---:|---:|---:|" + "---:|" * len(steps)]
    base = result["runs"][0]["target_tokens_per_s"] or 1
    for r in result["runs"]:
        losses = " | ".join(f"{r['loss'].get(str(s), r['loss'].get(s, float('nan'))):.3f}" for s in steps)
        rows.append(f"| {r['processes']} | {r['target_tokens_per_s']:,} | {r['target_tokens_per_s'] / base:.2f}× | "
                    f"{losses} |")
    return "\n".join([
        f"# Data-parallel training, {result['device']} ({result['date']}, {result['commit']})", "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; load average at start "
        f"{result['load_average']}. Recipe {result['config']} ({result['updates']} updates, global batch "
        f"{result['batch_tokens']:,} target tokens, {result['threads']} thread(s) per process).", "", *rows, "",
        *[f"- {n}" for n in result["notes"]]]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/en-de-multi30k.toml")
    parser.add_argument("--updates", type=int, default=40, help="a multiple of 10")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="threads per process (default: the recipe's)")
    args = parser.parse_args(argv)
    FOLDER.mkdir(parents=True, exist_ok=True)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    recipe = bench_recipe(REPO / args.config, args.updates, args.threads, FOLDER / "recipe.toml")
    raw = tomllib.loads(recipe.read_text())
    runs = []
    for procs in args.procs:
        runs.append(run(procs, recipe, args.device, FOLDER / f"{procs}"))
        print(runs[-1], flush=True)
    notes = ["The same global batches in every run (the recipe's seed and batch_tokens), split over the processes; "
             "the losses differ only by each rank's dropout masks and the order of floating-point sums."]
    if float(load) > 0.5:
        notes.append(f"The machine was busy (load average {load} on {os.cpu_count()} cores): each process got "
                     "a share of the cores, so the speed-up shows DDP overlapping work, not how it scales on "
                     "an idle machine.")
    result = dict(date=datetime.now().strftime("%Y-%m-%d %H:%M"), commit=git_commit(), machine=machine_info(),
                  load_average=load, config=args.config, updates=args.updates, device=args.device,
                  batch_tokens=raw["train"].get("batch_tokens"), threads=raw["train"].get("threads", 0),
                  runs=runs, notes=notes)
    save_result(f"ddp-{args.device}", result, render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
