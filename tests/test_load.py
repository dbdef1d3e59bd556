"""The short variant of bench/load_hostile.py (issue 11): 16 new sessions translating at once while one more
fine-tunes, against the app server of the test suite, then a round of translations alone. No call may fail,
and the app's memory must not grow from the first round to the second."""
from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "load_hostile.py"


def test_sixteen_clients_and_a_fine_tune_at_once(app_server):
    spec = importlib.util.spec_from_file_location("load_hostile", BENCH)
    load_hostile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load_hostile)
    result = load_hostile.hostile_load(app_server, app_server.pid, rounds=2, clients=16, translations=2)
    assert result["errors"] == 0, [r["error_examples"] for r in result["rounds"]]
    assert result["rounds"][0]["fine_tune_s"] is not None and result["rounds"][0]["ok"] == 32
    assert result["rss_growth_mb"] < 50, result["rss_mb"]
    print(f"p99 {result['p99_ms']} ms, RSS {result['rss_mb']} MB")
