"""Small helpers shared by the benchmark scripts.

Standard library only: `joeynmt_driver.py` imports this module from inside JoeyNMT's
own virtual environment, where the s2s package and its dependencies are absent.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
WORK = BENCH / "work"
RESULTS = BENCH / "results"
MULTI30K = REPO.parent / "shared" / "data" / "multi30k"


def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile (0..100) with linear interpolation between the two nearest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(seconds: Sequence[float]) -> dict:
    """Per-call wall times (s) -> median / p90 / p99 / mean in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return dict(n=len(ms), median_ms=percentile(ms, 50), p90_ms=percentile(ms, 90), p99_ms=percentile(ms, 99),
                mean_ms=sum(ms) / len(ms) if ms else math.nan)


def proc_status_kb(pid: int | str = "self", field: str = "VmHWM") -> int | None:
    """A memory field of /proc/<pid>/status in KiB (VmHWM = peak resident set size), None if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb(pid: int | str = "self") -> float | None:
    kb = proc_status_kb(pid, "VmHWM")
    return None if kb is None else round(kb / 1024.0, 1)


def seconds_since_process_start() -> float | None:
    """Wall time since this process was started (from /proc: its start tick and the system uptime)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat; counted after the ")" that ends the command name
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_bf16() -> str:
    """The CPU flags that make bf16 matrix products fast (AVX512-BF16, AMX), '' when there are none."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    return " ".join(f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags)


def git_commit(short: bool = True) -> str:
    """The checked-out commit, with '+dirty' when tracked files differ from it (benchmarks of edits stay honest)."""
    try:
        command = ["git", "rev-parse", "--short", "HEAD"] if short else ["git", "rev-parse", "HEAD"]
        commit = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict:
    info = dict(cpu=cpu_model(), cores=os.cpu_count(), python=sys.version.split()[0], platform=platform.platform())
    try:
        memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
        info["memory_gib"] = round(memory_kb / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info


def write_text(path: str | Path, text: str) -> None:
    """Write through a temporary file and rename it, so a crash never leaves half a result."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: str | Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, default=float) + "\n")


def claim_stem(base: Path) -> Path:
    """BASE, or BASE-2, BASE-3, … : the first whose .json this call creates (O_EXCL), so two runs that finish
    in the same minute (say, one model each on the two cores) never overwrite each other's results."""
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        stem = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            os.close(os.open(stem.with_suffix(".json"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return stem
        except FileExistsError:
            continue


def save_result(kind: str, result: dict, markdown: str, results: Path = RESULTS) -> Path:
    """Write bench/results/DATE-COMMIT-KIND.json and .md (atomically), print the Markdown; return the stem."""
    from datetime import datetime  # here, not at the top: the stem's time is the time of writing
    stem = claim_stem(results / f"{datetime.now():%Y-%m-%d-%H%M}-{git_commit()}-{kind}")
    write_json(stem.with_suffix(".json"), result)
    write_text(stem.with_suffix(".md"), markdown)
    print(markdown)
    return stem


def read_lines(path: str | Path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").splitlines()
