"""A bounded load against the app on loopback, as a crowd of strangers makes it (issue 11): in each round
16 clients send 50 translations each; in the first, one more client fine-tunes a model meanwhile. Every
client is a new session. Reports errors (there must be none), latency (median, p90, p99, max) and the
app's resident memory after every round, which must not grow after the first.

    python bench/load_hostile.py [--clients 16] [--translations 50] [--rounds 3] [--models DIR] --out load.json

`--models DIR` serves that folder of checkpoint folders (S2S_CHECKPOINTS); by default the bundled ones.
Everything is bounded: each call waits at most --timeout seconds, each round at most the sum of its calls.
The exit status is 1 when a call failed or memory grew by more than --max-growth-mb over the rounds.
tests/test_load.py runs a short variant against the app server of the test suite.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_load import Endpoint, free_port, make_client, stop, tree_memory_mb  # noqa: E402
from common import REPO, WORK, latency_summary, write_json  # noqa: E402

SENTENCES = ["A man is riding a bicycle.", "Two dogs play in the snow.", "A woman sits at a dark bar.",
             "Children are playing soccer in a park.", "A girl is reading a book under a tree.",
             "The old man walks his dog along the beach.", "Three people are waiting for the bus.",
             "A cat sleeps on a red sofa."]
PAIRS = [("A man is riding a bicycle.", "Ein Mann fährt Fahrrad."),
         ("Two dogs play in the snow.", "Zwei Hunde spielen im Schnee."),
         ("A woman sits at a dark bar.", "Eine Frau sitzt an einer dunklen Bar."),
         ("A cat sleeps on a red sofa.", "Eine Katze schläft auf einem roten Sofa."),
         ("A girl is reading a book.", "Ein Mädchen liest ein Buch.")]


def one_round(url: str, clients: int, translations: int, timeout_s: float = 120.0, fine_tune: bool = True) -> dict:
    """`clients` new sessions send `translations` translations each, while one more session fine-tunes."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    endpoint = Endpoint(make_client(url))  # the /translate inputs, read once from the API description

    def translator(k: int) -> None:
        client = make_client(url)  # a session of its own
        for i in range(translations):
            text = SENTENCES[(k + i) % len(SENTENCES)]
            start = time.perf_counter()
            try:
                answer = client.submit(*endpoint.inputs(text), api_name="/translate").result(timeout=timeout_s)
                error = "" if isinstance(answer, (list, tuple)) and answer and answer[0] else f"empty: {answer!r}"
            except Exception as err:  # noqa: BLE001 - counted, reported
                error = f"{type(err).__name__}: {err}"
            with lock:
                (errors.append(f"translate: {error[:200]}") if error else
                 latencies.append(time.perf_counter() - start))

    fine_tuned: dict = {}

    def fine_tuner() -> None:
        start = time.perf_counter()
        try:
            pairs = "\n".join(f"{s}\t{t}" for s, t in PAIRS)
            answer = make_client(url).submit(pairs_text=pairs, files=[], epochs=1,
                                             api_name="/fine_tune").result(timeout=timeout_s * 5)
            status = str(answer[0] if isinstance(answer, (list, tuple)) else answer)
            if "New model" not in status:
                raise RuntimeError(f"no new model: {status[:200]}")
            fine_tuned["seconds"] = round(time.perf_counter() - start, 2)
        except Exception as err:  # noqa: BLE001 - counted, reported
            with lock:
                errors.append(f"fine_tune: {type(err).__name__}: {str(err)[:200]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients + 1) as pool:
        jobs = [pool.submit(translator, k) for k in range(clients)] + ([pool.submit(fine_tuner)] if fine_tune else [])
        for job in jobs:
            job.result(timeout=timeout_s * (translations + 5))
    wall = time.perf_counter() - started
    summary = latency_summary(latencies)
    return dict(clients=clients, translations=clients * translations, ok=len(latencies), errors=len(errors),
                error_examples=sorted(set(errors))[:5], wall_s=round(wall, 2),
                translations_per_s=round(len(latencies) / wall, 2),
                max_ms=round(max(latencies) * 1000, 1) if latencies else None,
                fine_tune_s=fine_tuned.get("seconds"), **{k: round(v, 1) for k, v in summary.items()})


def hostile_load(url: str, pid: int | None, rounds: int = 3, clients: int = 16, translations: int = 50,
                 timeout_s: float = 120.0, log=print) -> dict:
    """`rounds` rounds against a running app; the app's RSS (its process tree) after each round."""
    results = []
    for number in range(1, rounds + 1):
        result = one_round(url, clients, translations, timeout_s, fine_tune=number == 1)
        result["rss_mb"] = tree_memory_mb(pid, "VmRSS") if pid else None
        results.append(result)
        log(f"round {number}: {result['ok']}/{result['translations']} translations, {result['errors']} errors, "
            f"p99 {result['p99_ms']} ms, fine-tune {result['fine_tune_s']} s, RSS {result['rss_mb']} MB")
    rss = [r["rss_mb"] for r in results if r["rss_mb"] is not None]
    return dict(rounds=results, errors=sum(r["errors"] for r in results),
                p99_ms=max(r["p99_ms"] for r in results), rss_mb=rss,
                rss_growth_mb=round(rss[-1] - rss[0], 1) if len(rss) > 1 else None)


def start_app(python: str, models: str | None, log_path: Path, timeout_s: float = 180.0
              ) -> tuple[subprocess.Popen, str]:
    """`python app.py` on a free loopback port; returns the process and its URL once it serves."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    if models:
        env["S2S_CHECKPOINTS"] = str(Path(models).resolve())
    out = open(log_path, "w")
    process = subprocess.Popen([python, str(REPO / "app.py")], cwd=REPO, env=env, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with status {process.returncode}; see {log_path}")
        try:
            Endpoint(make_client(url))
            return process, url
        except Exception:  # not serving yet
            time.sleep(0.5)
    stop(process)
    raise TimeoutError(f"the app did not serve within {timeout_s:.0f} s; see {log_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--translations", type=int, default=50, help="per client and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", help="a folder of checkpoint folders (default: the bundled ones)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one call may take")
    parser.add_argument("--max-growth-mb", type=float, default=100.0, help="RSS growth allowed over the rounds")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    log_path = WORK / "load_hostile_app.log"
    process, url = start_app(args.python, args.models, log_path)
    try:
        result = hostile_load(url, process.pid, args.rounds, args.clients, args.translations, args.timeout)
    finally:
        stop(process)
    result.update(clients=args.clients, translations_per_client=args.translations, app_log=str(log_path),
                  max_growth_mb=args.max_growth_mb)
    write_json(args.out, result)
    print(f"{result['errors']} errors, worst p99 {result['p99_ms']} ms, RSS {result['rss_mb']} MB "
          f"(growth {result['rss_growth_mb']} MB)")
    growth = result["rss_growth_mb"] or 0.0
    return 0 if result["errors"] == 0 and growth <= args.max_growth_mb else 1


if __name__ == "__main__":
    sys.exit(main())
