"""The Translate tab: decoding options from the UI, one translation with its figures, the merge switch,
exports and the beam tree."""
from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from .. import plots, png
from ..api import DecodeOptions
from ..files import atomic_write
from ..trace import Trace, TraceTooLarge, check_trace_data
from .common import UserError, check_text, code, gpu, md, number
from .models import Session, get_translator

log = logging.getLogger("s2s.service")
PNG_TIMEOUT_S = 90.0
MAX_TRACE_JSON_CHARS = 10_000_000  # a trace sent back as JSON text; the largest a decode makes is about 7 MB
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may read as a formula (OWASP)


def decode_options(method: str = "greedy", beam_size: Any = 5, length_penalty: Any = None, nbest: Any = 1,
                   temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0, seed: Any = None) -> DecodeOptions:
    """UI values -> validated DecodeOptions (its RANGES), with a clear message for every bad value."""
    method = (method or "greedy").strip().lower()
    if method not in DecodeOptions.METHODS:
        raise UserError(f"Decoding must be greedy, beam or sample, not {method!r}")

    def parse(value: Any, field: str, cast=float):
        return number(value, DecodeOptions.LABELS[field].capitalize(), cast)

    no_seed = seed is None or (isinstance(seed, str) and not seed.strip())
    options = DecodeOptions(
        method=method, beam_size=parse(beam_size, "beam_size", int),
        length_penalty=None if length_penalty is None else parse(length_penalty, "length_penalty"),
        nbest=parse(nbest, "nbest", int) if method == "beam" else 1, temperature=parse(temperature, "temperature"),
        top_k=parse(top_k, "top_k", int), top_p=parse(top_p, "top_p"), seed=None if no_seed else parse(seed, "seed", int))
    try:
        options.validate()
    except ValueError as err:
        raise UserError(str(err)[:1].upper() + str(err)[1:]) from None
    return options


@gpu()
def translate(model: str, text: str, method: str = "greedy", beam_size: Any = 5, length_penalty: Any = None,
              nbest: Any = 1, temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0, seed: Any = None,
              merge_words: bool = False, session: Session | None = None) -> dict:
    """Translate one sentence: translation, n-best rows, trace (dict), heatmap, coverage, beam tree, notice."""
    text = check_text(text)
    options = decode_options(method, beam_size, length_penalty, nbest, temperature, top_k, top_p, seed)
    trace = get_translator(model, session).translate(text, options, record_tree=options.method == "beam")
    rows = [[rank, h.text, round(h.score, 4), round(h.logprob, 4)] for rank, h in enumerate(trace.nbest, 1)]
    return dict(translation=trace.translation, nbest=rows, trace=trace.to_dict(), notice=trace.notice,
                beam_tree=plots.beam_tree_figure(trace), **_views(trace, bool(merge_words)))


def attention_views(trace_data: dict | str | None, merge_words: bool = False) -> dict:
    """Heatmap, coverage chart and coverage notes of a saved trace (no decoding: the merge switch)."""
    return _views(trace_from(trace_data), bool(merge_words))


def _views(trace: Trace, merge_words: bool) -> dict:
    return dict(heatmap=plots.attention_figure(trace, merge_words), coverage=plots.coverage_figure(trace, merge_words),
                coverage_notes=coverage_markdown(trace, merge_words))


def trace_from(trace_data: dict | str | None) -> Trace:
    """A Trace from the JSON the app keeps (or a client sends back), refused when it is larger than any
    translation here (TraceLimits) before anything is drawn from it."""
    if not trace_data:
        raise UserError("Nothing translated yet: translate a sentence first.")
    try:
        if isinstance(trace_data, str) and len(trace_data) > MAX_TRACE_JSON_CHARS:
            raise TraceTooLarge(f"{len(trace_data):,} characters of JSON; at most {MAX_TRACE_JSON_CHARS:,}")
        data = json.loads(trace_data) if isinstance(trace_data, str) else trace_data
        check_trace_data(data)
        return Trace.from_dict(data)
    except TraceTooLarge as err:
        raise UserError(f"This trace is larger than any translation here ({err}); translate the sentence again.") \
            from None
    except (TypeError, ValueError, KeyError, RecursionError) as err:
        raise UserError(f"This is not an s2s trace ({str(err)[:200]}).") from None


def coverage_markdown(trace: Trace, merge_words: bool = False) -> str:
    """The coverage flags in words, with the thresholds."""
    items = plots.coverage(trace, merge_words)
    omitted = [i.word for i in items if i.flag == "omission"]
    repeated = [i.word for i in items if i.flag == "repetition"]
    unit = "word" if merge_words else "piece"

    def listing(words: list[str]) -> str:
        return ", ".join(code(w) for w in words) if words else "none"

    return (f"Possible omissions (source {unit}s with Σₜ αₜᵢ < {plots.OMISSION_BELOW}): {listing(omitted)}.  \n"
            f"Possible repetitions (Σₜ αₜᵢ > {plots.REPETITION_ABOVE}): {listing(repeated)}.")


def export_trace(trace_data: dict | str | None, merge_words: bool = False, session: Session | None = None) -> dict:
    """Attention as CSV, the trace as JSON, the heatmap as HTML and (if a Chrome is available) PNG.

    Returns {"files": [paths], "message": markdown}. PNG failing is reported, never fatal.
    """
    trace = trace_from(trace_data)
    if not trace.attention:
        raise UserError("Nothing to export: the trace has no attention weights.")
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=(session or Session()).files()))
    view = plots.attention_view(trace, merge_words)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["target \\ source", *map(csv_text, view.source_labels)])
    for target_label, row in zip(view.target_labels, view.matrix):
        writer.writerow([csv_text(target_label), *(f"{value:.6f}" for value in row)])
    figure = plots.attention_figure(trace, merge_words)
    files = [atomic_write(folder / "attention.csv", table.getvalue()),
             atomic_write(folder / "trace.json", trace.to_json(indent=2) + "\n"),
             atomic_write(folder / "attention.html", figure.to_html(include_plotlyjs=True, full_html=True))]
    message = "Exported attention.csv, trace.json and attention.html"
    try:
        files.append(atomic_write(folder / "attention.png", png_bytes(figure)))
        message += " and attention.png."
    except Exception as err:  # kaleido missing, or no Chrome to drive: keep the other files
        log.warning("PNG export failed: %s", err)
        message += (". PNG export is not available here (kaleido needs Chrome or Chromium; set BROWSER_PATH to "
                    f"its executable): {md(str(err).splitlines()[0] if str(err) else type(err).__name__)}. "
                    "The HTML file has the same figure, and its toolbar can save a PNG.")
    return dict(files=[str(p) for p in files], message=message)


def csv_text(text: str) -> str:
    """A text cell a spreadsheet shows as text: one that starts like a formula (= + - @, tab, CR) gets a
    leading apostrophe, so `=HYPERLINK(...)` from a piece or a client's trace is never evaluated."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def png_bytes(figure) -> bytes:
    """A figure as PNG within PNG_TIMEOUT_S, at the size its layout sets: s2s.png renders it in a child process
    whose browser stays open between renders (the first export starts it; later ones take well under a second)."""
    return png.render(figure.to_json(), int(figure.layout.width or 900), int(figure.layout.height or 500),
                      timeout_s=PNG_TIMEOUT_S)


@gpu()
def beam_tree(model: str, text: str, beam_size: Any = 4, length_penalty: Any = None,
              session: Session | None = None) -> dict:
    """Beam search on one sentence with its search tree: {"figure", "translation"}."""
    text = check_text(text)
    options = decode_options("beam", beam_size, length_penalty, 1)
    trace = get_translator(model, session).translate(text, options, record_tree=True)
    return dict(figure=plots.beam_tree_figure(trace), translation=trace.translation)
