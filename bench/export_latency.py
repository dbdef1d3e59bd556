"""Export in the app as a person meets it: click "Export" → links to the CSV/JSON/HTML files, then to the PNG.

    python bench/export_latency.py [--app app.py] [--rounds 3] [--read-s 5] --out export.json

Starts the app, opens it in Debian's Chromium through Playwright, translates a sentence and opens the export
section. Three cases, each in a fresh browser tab of a freshly started app (so the PNG renderer is cold):
  - "at once":   Export clicked right after the section opened (the renderer is still starting);
  - "after reading": Export clicked `--read-s` seconds after the section opened (the time to look at the
                 heatmap; opening the section starts the renderer in the background);
  - "later":     further exports in the same tab, another sentence each (the renderer is running).
Times are from the click to the link appearing in the page. Needs /usr/bin/chromium and Playwright
(the test extras); without them it writes a "skipped" result.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_load import free_port, stop, wait_first_translation  # noqa: E402
from common import REPO, WORK, latency_summary, write_json  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
SENTENCES = ["A woman sits at a dark bar.", "Two men talk in the street.", "A dog runs through the snow.",
             "A child plays with a red ball.", "People wait for the train."]
LINK = ("name => Array.from(document.querySelectorAll('#export-files a'))"
        ".some(a => a.href.includes(name) && !window.s2sOldLinks.includes(a.href))")


def translate(page, text: str) -> None:
    old = page.locator("#translation textarea").input_value()
    page.locator("#source textarea").fill(text)
    page.locator("#translate-btn").click()
    page.wait_for_function("old => { const t = document.querySelector('#translation textarea').value; "
                           "return t && t !== old; }", arg=old)


def export(page) -> tuple[float, float]:
    """Click Export; seconds until the HTML link and until the PNG link of this export appear."""
    page.evaluate("window.s2sOldLinks = Array.from(document.querySelectorAll('#export-files a')).map(a => a.href)")
    page.locator("#export-btn").click()
    start = time.perf_counter()
    page.wait_for_function(LINK, arg="attention.html", polling=20)
    files = time.perf_counter() - start
    page.wait_for_function(LINK, arg="attention.png", polling=20)
    return files, time.perf_counter() - start


def one_app(app: Path, python: str, read_s: float, rounds: int, timeout_s: float) -> dict:
    """A fresh app and tab: the first export after `read_s` seconds, then `rounds` - 1 later ones."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / "export_app.log", "w") as out:
        process = subprocess.Popen([python, str(app)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            wait_first_translation(url, process, SENTENCES[0], time.perf_counter(), timeout_s)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
                page = browser.new_page(viewport=dict(width=1400, height=900))
                page.set_default_timeout(timeout_s * 1000)
                page.goto(url)
                translate(page, SENTENCES[0])
                page.get_by_text("Export: CSV, JSON, HTML, PNG").click()
                time.sleep(read_s)
                times = [export(page)]
                for k in range(1, rounds):
                    translate(page, SENTENCES[k % len(SENTENCES)])
                    times.append(export(page))
                browser.close()
        finally:
            stop(process)
    return dict(first_files_s=times[0][0], first_png_s=times[0][1],
                later_files_s=[t[0] for t in times[1:]], later_png_s=[t[1] for t in times[1:]])


def run(app: Path, python: str, rounds: int, read_s: float, timeout_s: float = 120.0, log=print) -> dict:
    if not CHROMIUM.exists():
        return dict(skipped=f"{CHROMIUM} not found: export benchmark skipped")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return dict(skipped="Playwright is not installed (pip install -e '.[test]'): export benchmark skipped")
    log("  export: Export clicked right after opening the section")
    at_once = one_app(app, python, 0.0, 1, timeout_s)
    log(f"  export: Export clicked {read_s:g} s after opening the section, then {rounds - 1} more")
    after_reading = one_app(app, python, read_s, rounds, timeout_s)
    later = after_reading["later_png_s"]
    return dict(read_s=read_s, at_once=at_once, after_reading=after_reading,
                later_png=latency_summary(later), later_files=latency_summary(after_reading["later_files_s"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default=str(REPO / "app.py"))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=4, help="exports in the 'after reading' tab (≥ 2)")
    parser.add_argument("--read-s", type=float, default=5.0, help="seconds between opening the section and Export")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = run(Path(args.app), args.python, max(2, args.rounds), args.read_s)
    write_json(args.out, result)
    if "skipped" in result:
        print(result["skipped"])
    else:
        a, b = result["at_once"], result["after_reading"]
        print(f"at once: files {a['first_files_s']:.2f} s, PNG {a['first_png_s']:.2f} s; after {args.read_s:g} s of "
              f"reading: files {b['first_files_s']:.2f} s, PNG {b['first_png_s']:.2f} s; later PNGs median "
              f"{result['later_png']['median_ms'] / 1000:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
