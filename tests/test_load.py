"""The short variant of bench/load_hostile.py (issue 11): 16 new sessions translating at once while one more
fine-tunes, then a round of translations alone. No call may fail, and the app's memory must not grow from the
first round to the second.

The app here is its own (`python app.py` on the two app models, as bench/load_hostile.py starts it), not the
suite's shared server: by this point that one holds every session of the other app and browser tests
(~1.5 GB), and whether their state is released during the two rounds moved its RSS by ±50 MB from run to run,
more than the leak this test is after. A fresh app measures ~10 MB of growth."""
from __future__ import annotations

import sys

import pytest

from tiny import bench_script


@pytest.fixture(scope="module")
def load_hostile():
    return bench_script("load_hostile")


def test_sixteen_clients_and_a_fine_tune_at_once(load_hostile, app_checkpoints, tmp_path):
    process, url = load_hostile.start_app(sys.executable, str(app_checkpoints), tmp_path / "app.log")
    try:
        result = load_hostile.hostile_load(url, process.pid, rounds=2, clients=16, translations=2)
    finally:
        load_hostile.stop(process)
    assert result["errors"] == 0, [r["error_examples"] for r in result["rounds"]]
    assert result["rounds"][0]["fine_tune_s"] is not None and result["rounds"][0]["ok"] == 32
    assert result["rss_growth_mb"] < 50, result["rss_mb"]
    print(f"p99 {result['p99_ms']} ms, RSS {result['rss_mb']} MB")
