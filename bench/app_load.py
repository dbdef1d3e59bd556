"""The Gradio app as a user meets it: cold start to the first served translation, then translation latency
through the app's API under 1 and N concurrent clients, and the app's peak memory.

    python bench/app_load.py [--app app.py] [--requests 100] [--clients 1 8] --out app.json

Talks to the app only through gradio_client (the documented API, endpoint "/translate"), on 127.0.0.1.
Every request loop is bounded in count and time. If app.py does not exist, it says so and writes a
"skipped" result instead of failing.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MULTI30K, REPO, WORK, latency_summary, proc_status_kb, write_json  # noqa: E402

API_NAME = "/translate"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                pass
    return found


def tree_memory_mb(pid: int, field: str) -> float:
    return round(sum(proc_status_kb(p, field) or 0 for p in process_tree(pid)) / 1024.0, 1)


def make_client(url: str):
    from gradio_client import Client
    return Client(url, verbose=False, download_files=False, analytics_enabled=False)


class AppApiError(RuntimeError):
    """The app serves, but not the API this benchmark needs: waiting longer will not help."""


class Endpoint:
    """The /translate endpoint's inputs, read from the app's API description: every input at its default value
    except the sentence, which goes into the input called `text` (else the first textbox)."""

    def __init__(self, client) -> None:
        info = client.view_api(print_info=False, return_format="dict")["named_endpoints"].get(API_NAME)
        if info is None:
            raise AppApiError(f"the app has no {API_NAME} endpoint")
        params = info["parameters"]
        names = [p.get("parameter_name") for p in params]
        textboxes = [i for i, p in enumerate(params) if p.get("component") == "Textbox"]
        if "text" in names:
            self.text_index = names.index("text")
        elif textboxes:
            self.text_index = textboxes[0]
        else:
            raise AppApiError(f"no text input among the {API_NAME} inputs {names}")
        self.defaults = [p.get("parameter_default") for p in params]
        self.described = {name or str(i): value for i, (name, value) in enumerate(zip(names, self.defaults))}

    def inputs(self, text: str) -> list:
        values = list(self.defaults)
        values[self.text_index] = text
        return values


def translate_once(client, endpoint: Endpoint, text: str, timeout_s: float):
    return client.submit(*endpoint.inputs(text), api_name=API_NAME).result(timeout=timeout_s)


class HttpCaller:
    """The endpoint over plain HTTP (POST /gradio_api/call/<name>, then read its event stream), as curl would:
    the same server work as through gradio_client, without the client library's own cost."""

    def __init__(self, url: str, endpoint: Endpoint) -> None:
        self.base = url.rstrip("/") + "/gradio_api/call/" + API_NAME.strip("/")
        self.endpoint = endpoint

    def __call__(self, text: str, timeout_s: float):
        body = json.dumps({"data": self.endpoint.inputs(text)}).encode()
        request = urllib.request.Request(self.base, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            event_id = json.load(answer)["event_id"]
        event = ""
        with urllib.request.urlopen(f"{self.base}/{event_id}", timeout=timeout_s) as stream:
            for raw in stream:
                line = raw.decode("utf-8", errors="replace").strip()
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "complete":
                    return json.loads(line[5:])
                elif line.startswith("data:") and event == "error":
                    raise RuntimeError(f"server error: {line[5:].strip()[:200]}")
        raise RuntimeError("event stream ended without a result")


def wait_first_translation(url: str, process: subprocess.Popen, text: str, started: float,
                           timeout_s: float) -> tuple[dict, Endpoint]:
    """Poll until the app answers one translation; times are from process start."""
    port_open_s = client_ready_s = None
    host, port = url.split("//")[1].rstrip("/").split(":")
    last_error = ""
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with code {process.returncode} before serving")
        if port_open_s is None:
            try:
                socket.create_connection((host, int(port)), timeout=0.2).close()
                port_open_s = time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
                continue
        try:
            client = make_client(url)
        except Exception as err:  # the port can open before the app's routes are ready
            last_error = f"{type(err).__name__}: {err}"
            time.sleep(0.1)
            continue
        endpoint = Endpoint(client)  # AppApiError goes up: no point in waiting
        try:
            client_ready_s = client_ready_s or time.perf_counter() - started
            answer = translate_once(client, endpoint, text, timeout_s)
            return dict(port_open_s=port_open_s, client_ready_s=client_ready_s,
                        first_translation_s=time.perf_counter() - started, inputs=endpoint.described,
                        first_answer=repr(answer)[:300]), endpoint
        except Exception as err:  # e.g. the first model load failing; keep trying until the timeout
            last_error = f"{type(err).__name__}: {err}"
            time.sleep(0.1)
    raise TimeoutError(f"no translation within {timeout_s:.0f} s (last error: {last_error})")


def load(url: str, endpoint: Endpoint, sentences: list[str], clients: int, requests: int, timeout_s: float,
         http: bool = False) -> dict:
    """`clients` threads share `requests` requests; latency per request. Each thread has its own gradio_client
    Client, or with http=True calls the endpoint over plain HTTP."""
    if http:
        pool = [HttpCaller(url, endpoint) for _ in range(clients)]
    else:
        pool = [(lambda text, timeout, c=make_client(url): translate_once(c, endpoint, text, timeout))
                for _ in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(k, requests, clients):
            text = sentences[i % len(sentences)]
            start = time.perf_counter()
            try:
                answer = pool[k](text, timeout_s)
                translation = answer[0] if isinstance(answer, (list, tuple)) and answer else answer
                error = "" if translation else f"empty translation for {text!r}"
            except Exception as err:
                error = f"{type(err).__name__}: {err}"
            elapsed = time.perf_counter() - start
            with lock:
                if error:
                    errors.append(error[:200])
                else:
                    latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout_s * (requests // clients + 2))
    wall = time.perf_counter() - started
    return dict(via="http" if http else "gradio_client", clients=clients, requests=requests,
                ok=len(latencies), errors=len(errors),
                error_examples=sorted(set(errors))[:3], wall_s=wall, requests_per_s=len(latencies) / wall,
                **latency_summary(latencies))


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C to the app's own process group (started by us with start_new_session), then harder."""
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def run(app: Path, python: str, sentences: list[str], requests: int, client_counts: list[int],
        extra_env: dict[str, str], timeout_s: float = 120.0, log=print) -> dict:
    if not app.exists():
        message = f"{app} not found: app benchmark skipped"
        log(message)
        return dict(skipped=message)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra_env}
    WORK.mkdir(parents=True, exist_ok=True)
    app_log = WORK / "app.log"
    with open(app_log, "w") as out:
        started = time.perf_counter()
        process = subprocess.Popen([python, str(app)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            first, endpoint = wait_first_translation(url, process, sentences[0], started, timeout_s)
            result = dict(app=str(app), port=port, env=extra_env, **first)
            result["idle_rss_mb"] = tree_memory_mb(process.pid, "VmRSS")
            result["load"], result["load_http"] = {}, {}
            for http in (False, True):
                for clients in client_counts:
                    via = "plain HTTP" if http else "gradio_client"
                    log(f"  app: {requests} requests from {clients} concurrent client(s), {via}")
                    result["load_http" if http else "load"][str(clients)] = load(
                        url, endpoint, sentences, clients, requests, timeout_s, http)
            result["peak_rss_mb"] = tree_memory_mb(process.pid, "VmHWM")
            result["processes"] = len(process_tree(process.pid))
        except Exception as err:
            result = dict(app=str(app), error=f"{type(err).__name__}: {err}", log=str(app_log))
            log(f"  app benchmark failed: {result['error']} (app output in {app_log})")
        finally:
            stop(process)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default=str(REPO / "app.py"))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--requests", type=int, default=100, help="per concurrency level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra app environment")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from s2s.data import read_multi30k
    sentences = [s for s, _ in read_multi30k(MULTI30K, "test_2016_flickr")]
    extra = dict(item.split("=", 1) for item in args.env)
    write_json(args.out, run(Path(args.app), args.python, sentences, args.requests, args.clients, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
