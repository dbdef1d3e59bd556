"""Screenshots of every tab for the README, taken from the real app in a real browser.

    .venv/bin/python assets/make_screenshots.py [--checkpoints DIR] [--out assets/screenshots]

Runs `python app.py` on a free port with the bundled models (checkpoints/, or --checkpoints), drives
Debian's Chromium with Playwright (translate an example of the default model, step by step with a forced
word, the beam tree, a short fine-tuning run, the model card, the Translate tab at phone size, 390×844, and
the Explain tab; `--only-explain` takes that one alone) and writes PNGs. Before the bundled models exist, it
falls back to a copy of the in-progress runs/en-de-multi30k/model (copied to a temp folder; runs/ is never touched).
"""
from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-default-apps", "--disable-extensions"]
MULTI30K_VAL = ROOT.parent / "shared" / "data" / "multi30k"
EXAMPLE = 0  # the first example of the default model is translated (clicking it translates it)
PHONE = dict(width=390, height=844)


def model_folder(requested: str | None, scratch: Path) -> Path:
    """A folder of checkpoint folders holding an en-de model."""
    if requested:
        return Path(requested)
    bundled = ROOT / "checkpoints"
    if any((bundled / name / "config.json").is_file() for name in ("en-de", "en-de-multi30k")):
        return bundled
    in_progress = ROOT / "runs" / "en-de-multi30k" / "model"
    if not (in_progress / "config.json").is_file():
        sys.exit("no model: pass --checkpoints DIR (a folder of checkpoint folders)")
    shutil.copytree(in_progress, scratch / "en-de-multi30k")  # a snapshot: the trainer replaces it from time to time
    return scratch


def fine_tune_pairs(count: int = 200) -> str:
    """The first validation pairs of Multi30k (validation, never test), or the toy pairs of the tests."""
    en, de = MULTI30K_VAL / "val.en.gz", MULTI30K_VAL / "val.de.gz"
    if en.is_file() and de.is_file():
        with gzip.open(en, "rt", encoding="utf-8") as f_en, gzip.open(de, "rt", encoding="utf-8") as f_de:
            pairs = list(zip(f_en.read().splitlines(), f_de.read().splitlines()))[:count]
    else:
        pairs = [tuple(line.split("\t")) for line in
                 (ROOT / "tests" / "data" / "toy_en_de.tsv").read_text(encoding="utf-8").splitlines()]
    return "\n".join(f"{s}\t{t}" for s, t in pairs)


def start_app(checkpoints: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, S2S_CHECKPOINTS=str(checkpoints), GRADIO_SERVER_PORT=str(port),
               GRADIO_SERVER_NAME="127.0.0.1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.setdefault("S2S_THREADS", "1")  # this machine's CPU is shared with training runs
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                               stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                sys.exit(f"app.py did not start; see {log_path}")
            time.sleep(0.5)


def stop_app(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)  # the process group started above
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def take_screenshots(url: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        page = open_page(browser, url, dict(width=1280, height=900))
        default = page.locator("#model-picker input").input_value()  # the model the app opened on

        def shot(name: str, element: str | None = None) -> None:
            path = out / name
            page.wait_for_timeout(800)  # let plotly finish its transitions
            (page.locator(element).screenshot(path=str(path)) if element else
             page.screenshot(path=str(path), full_page=True))
            shots.append(path)

        translate_example(page)
        shot("translate.png")

        # Step by step: it starts from the Translate tab's sentence; three steps, then force the second candidate
        page.get_by_role("tab", name="Step by step").click()
        status = page.locator("#step-status")
        status.get_by_text("Step 0").wait_for()
        for step in (1, 2, 3):
            page.locator("#step-next").click()
            status.get_by_text(f"Step {step}").wait_for()
        page.locator("#step-pick label").nth(1).click()
        status.get_by_text("forced by you").wait_for()
        shot("step.png")

        # The beam tree of the same sentence
        page.get_by_text("Beam search tree", exact=True).click()
        page.get_by_role("button", name="Draw the beam tree for this sentence").click()
        page.wait_for_function("document.querySelectorAll('#step-beam-tree g.scatterlayer g.trace').length > 1")
        shot("beam_tree.png", "#step-beam-tree")

        # Fine-tune on 200 pairs for 3 epochs
        page.get_by_role("tab", name="Fine-tune").click()
        page.locator("#ft-pairs textarea").fill(fine_tune_pairs())
        page.locator("#ft-start").click()
        page.locator("#ft-status").get_by_text("New model").wait_for(timeout=600_000)
        page.locator("#ft-pairs textarea").evaluate("el => el.scrollTop = 0")
        shot("fine_tune.png")

        # Model card of the bundled model the app opened on
        page.get_by_role("tab", name="Model").click()
        page.locator("#model-picker input").click()
        page.get_by_role("option", name=default, exact=True).click()
        page.locator("#model-card h1").first.wait_for()
        shot("model.png")
        shots.append(phone_screenshot(browser, url, out / "phone.png"))
        shots.append(explain_screenshot(browser, url, out / "explain.png"))
        browser.close()
    return shots


EXPLAIN_SENTENCE = "My sister works in a hospital in Berlin."


def explain_screenshot(browser, url: str, path: Path) -> Path:
    """The Explain tab on one sentence (per word): the agreement summary, then attention beside attribution."""
    page = open_page(browser, url, dict(width=1280, height=900))
    page.get_by_role("tab", name="Explain").click()
    page.locator("#explain-source textarea").fill(EXPLAIN_SENTENCE)
    page.locator("#explain-merge input").check()
    page.locator("#explain-btn").click()
    page.locator("#explain-summary").get_by_text("agree on the most important source").wait_for()
    page.wait_for_function("document.querySelectorAll('#explain-attribution g.xtick text').length > 3")
    page.wait_for_timeout(800)
    top = page.locator("#explain-summary").bounding_box()
    bottom = page.locator("#explain-attribution").bounding_box()
    page.set_viewport_size(dict(width=1280, height=int(bottom["y"] + bottom["height"] + 40)))
    page.wait_for_timeout(500)
    top = page.locator("#explain-summary").bounding_box()
    bottom = page.locator("#explain-attribution").bounding_box()
    page.screenshot(path=str(path), clip=dict(x=0, y=max(0, top["y"] - 8), width=1280,
                                              height=bottom["y"] + bottom["height"] - top["y"] + 16))
    page.context.close()
    return path


def open_page(browser, url: str, viewport: dict):
    page = browser.new_context(viewport=viewport, locale="en-US", device_scale_factor=1).new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    page.locator("#source textarea").wait_for()
    page.locator("#translate-examples button, #translate-examples .gallery-item").first.wait_for()
    page.wait_for_function("document.querySelector('#model-picker input').value !== ''")
    return page


def translate_example(page) -> None:
    """Click an example of the model the app opened on: it is translated at once."""
    page.locator("#translate-examples button, #translate-examples .gallery-item").nth(EXAMPLE).click()
    page.wait_for_function("document.querySelectorAll('#heatmap g.xtick text').length > 3")
    page.wait_for_function("document.querySelector('#translation textarea').value !== ''")


def phone_screenshot(browser, url: str, path: Path) -> Path:
    """Two phone screens side by side: the text and its translation, then the heatmap."""
    from PIL import Image

    page = open_page(browser, url, PHONE)
    translate_example(page)
    page.wait_for_timeout(800)
    screens = []
    for element in ("#model-picker", "#heatmap"):
        page.locator(element).scroll_into_view_if_needed()
        page.evaluate(f"window.scrollTo(0, document.querySelector('{element}').getBoundingClientRect().top "
                      "+ window.scrollY - 8)")
        page.wait_for_timeout(500)
        screens.append(Image.open(io.BytesIO(page.screenshot())))
    page.context.close()
    gap = 16
    joined = Image.new("RGB", (2 * PHONE["width"] + gap, PHONE["height"]), "white")
    for i, screen in enumerate(screens):
        joined.paste(screen, (i * (PHONE["width"] + gap), 0))
    joined.save(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", help="folder of checkpoint folders (default: checkpoints/)")
    parser.add_argument("--out", default=str(ROOT / "assets" / "screenshots"))
    parser.add_argument("--only-explain", action="store_true", help="only explain.png (the Explain tab)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="s2s-screenshots-") as scratch:
        checkpoints = model_folder(args.checkpoints, Path(scratch))
        process, url = start_app(checkpoints, Path(scratch) / "app.log")
        try:
            if args.only_explain:
                from playwright.sync_api import sync_playwright
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
                    print(explain_screenshot(browser, url, out / "explain.png"))
                    browser.close()
            else:
                for path in take_screenshots(url, out):
                    print(path)
        finally:
            stop_app(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
