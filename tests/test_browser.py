"""The app in a real browser (Playwright driving Debian's Chromium): what a person actually sees.

The app is conftest.app_server (`python app.py` as a user runs it), shared with test_app. Its first model,
html-en-de, has vocabularies that hold the literal piece `<b>x</b>` (a SentencePiece user-defined symbol), so
the heatmap's tick labels must show `<b>x</b>` and `</s>` as text, not as HTML. Screenshots go to
tests/artifacts/ (gitignored).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from s2s.api import Translator
from s2s.plots import attention_view
from tiny import APP_MODELS, HTML_PIECE, toy_pairs

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
MODEL = APP_MODELS[0]
SENTENCE = f"A {HTML_PIECE} dog."
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-default-apps", "--disable-extensions"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium")
pytest.importorskip("playwright.sync_api", reason="needs Playwright (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def checkpoint(app_checkpoints) -> Path:
    return app_checkpoints / MODEL


@pytest.fixture(scope="module")
def server(app_server) -> str:
    return app_server


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
        context.set_default_timeout(60_000)
        tab = context.new_page()
        tab.goto(server)
        tab.locator("#source textarea").wait_for()
        yield tab
        context.close()
        browser.close()


def tick_texts(page, plot: str, axis: str) -> list[str]:
    return page.locator(f"{plot} g.{axis}tick text").all_text_contents()


def wait_for_ticks(page, plot: str, axis: str, count: int) -> None:
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length === n", arg=[f"{plot} g.{axis}tick text", count])


def test_translate_shows_literal_token_labels(page, checkpoint):
    expected = Translator.load(checkpoint, device="cpu").translate(SENTENCE)
    assert HTML_PIECE in expected.source_pieces and expected.source_pieces[-1] == "</s>"
    page.locator("#source textarea").fill(SENTENCE)
    page.locator("#translate-btn").click()
    wait_for_ticks(page, "#heatmap", "x", len(expected.source_pieces))
    assert tick_texts(page, "#heatmap", "x") == expected.source_pieces  # every piece, literally, none skipped
    wait_for_ticks(page, "#heatmap", "y", len(expected.target_pieces))
    assert tick_texts(page, "#heatmap", "y") == expected.target_pieces
    assert page.locator("#translation textarea").input_value() == expected.translation
    assert page.locator("#heatmap g.xtick text tspan[style*='bold']").count() == 0  # <b> was not rendered
    assert tick_texts(page, "#coverage", "x") == expected.source_pieces
    page.screenshot(path=str(ARTIFACTS / "translate.png"), full_page=True)
    words = attention_view(expected, merge_words=True)
    page.get_by_label("Merge subword pieces into words").check()
    wait_for_ticks(page, "#heatmap", "x", len(words.source_labels))
    assert tick_texts(page, "#heatmap", "x") == words.source_labels and HTML_PIECE in words.source_labels
    assert tick_texts(page, "#heatmap", "y") == words.target_labels
    page.screenshot(path=str(ARTIFACTS / "translate_words.png"), full_page=True)


def test_clicking_an_example_fills_the_source(page):
    example = page.locator("#translate-examples button, #translate-examples .gallery-item").first
    text = example.inner_text().strip()
    example.click()
    page.wait_for_function("t => document.querySelector('#source textarea').value === t", arg=text)


def test_step_by_step_forcing_changes_the_continuation(page):
    page.get_by_role("tab", name="Step by step").click()
    page.locator("#step-source textarea").fill(SENTENCE)
    page.locator("#step-start").click()
    status = page.locator("#step-status")
    status.get_by_text("Step 0").wait_for()
    greedy = page.locator("#step-continuation textarea").input_value()
    page.locator("#step-next").click()
    status.get_by_text("Step 1").wait_for()
    page.locator("#step-next").click()
    status.get_by_text("Step 2").wait_for()
    assert page.locator("#step-continuation textarea").input_value() == greedy
    choices = page.locator("#step-pick label")
    assert choices.count() >= 2
    choices.nth(1).click()  # the second most likely piece
    status.get_by_text("forced by you").wait_for()
    status.get_by_text("Step 3").wait_for()
    assert page.locator("#step-pick input:checked").count() == 0  # the new candidates start unselected
    assert page.locator("#step-continuation textarea").input_value() != greedy
    page.wait_for_function("document.querySelectorAll('#step-heatmap g.ytick text').length === 3")
    page.screenshot(path=str(ARTIFACTS / "step.png"), full_page=True)


def test_fine_tune_adds_model_to_picker(page):
    page.get_by_role("tab", name="Fine-tune").click()
    pairs = "\n".join(f"{s}\t{t}" for s, t in toy_pairs()[20:40])
    page.locator("#ft-pairs textarea").fill(pairs)
    epochs = page.locator("#ft-epochs input[type='number']")
    epochs.fill("1")
    epochs.press("Tab")
    page.locator("#ft-start").click()
    page.locator("#ft-status").get_by_text("New model").wait_for(timeout=180_000)
    assert page.locator("#ft-loss g.scatterlayer g.trace").count() >= 1  # the loss chart
    page.wait_for_function(f"document.querySelector('#model-picker input').value === '{MODEL}-ft1'")
    page.locator("#model-picker input").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    names = [text.replace("✓", "").strip() for text in options.all_text_contents()]  # ✓ marks the selected one
    assert names == [*APP_MODELS, f"{MODEL}-ft1"]
    page.keyboard.press("Escape")
    page.locator(".s2s-header").first.click()  # close the option list before the screenshot
    page.screenshot(path=str(ARTIFACTS / "fine_tune.png"), full_page=True)


def test_model_tab_shows_the_card(page):
    page.get_by_role("tab", name="Model").click()
    page.locator("#model-card").get_by_text("LSTM encoder").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "model.png"), full_page=True)
