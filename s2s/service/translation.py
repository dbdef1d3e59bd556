"""The Translate tab: decoding options from the UI, one translation with its figures, the merge switch,
exports and the beam tree."""
from __future__ import annotations

import csv
import html
import io
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from .. import plots, png
from ..api import DecodeOptions
from ..files import atomic_write
from ..sentences import split_sentences
from ..tokenizer import readable_text
from ..trace import Trace, TraceTooLarge, check_trace_data
from .common import UserError, check_text, code, gpu, md, number
from .models import LANGUAGES, Session, get_translator

log = logging.getLogger("s2s.service")
PNG_TIMEOUT_S = 90.0
MAX_TRACE_JSON_CHARS = 10_000_000  # a trace sent back as JSON text; the largest a decode makes is about 7 MB
MAX_SENTENCES = 20  # a pasted paragraph is translated sentence by sentence
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may read as a formula (OWASP)


def decode_options(method: str = "greedy", beam_size: Any = 5, length_penalty: Any = None, nbest: Any = 1,
                   temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0, seed: Any = None,
                   reverse_weight: Any = None) -> DecodeOptions:
    """UI values -> validated DecodeOptions (its RANGES), with a clear message for every bad value. n-best
    above the beam width is cut to the beam width (a beam holds no more hypotheses than that)."""
    method = (method or "greedy").strip().lower()
    if method not in DecodeOptions.METHODS:
        raise UserError(f"Decoding must be greedy, beam or sample, not {method!r}")

    def parse(value: Any, field: str, cast=float):
        return number(value, DecodeOptions.LABELS[field].capitalize(), cast)

    no_seed = seed is None or (isinstance(seed, str) and not seed.strip())
    options = DecodeOptions(
        method=method, beam_size=parse(beam_size, "beam_size", int),
        length_penalty=None if length_penalty is None else parse(length_penalty, "length_penalty"),
        reverse_weight=None if reverse_weight is None else parse(reverse_weight, "reverse_weight"),
        nbest=parse(nbest, "nbest", int) if method == "beam" else 1, temperature=parse(temperature, "temperature"),
        top_k=parse(top_k, "top_k", int), top_p=parse(top_p, "top_p"), seed=None if no_seed else parse(seed, "seed", int))
    if options.method == "beam" and 1 <= options.beam_size < options.nbest:
        options.nbest = options.beam_size
    try:
        options.validate()
    except ValueError as err:
        raise UserError(str(err)[:1].upper() + str(err)[1:]) from None
    return options


@gpu()
def translate(model: str, text: str, method: str = "greedy", beam_size: Any = 5, length_penalty: Any = None,
              nbest: Any = 1, temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0, seed: Any = None,
              merge_words: bool = False, session: Session | None = None, reverse_weight: Any = None) -> dict:
    """Translate a sentence, or a paragraph sentence by sentence. reverse_weight: λ of the reranking by the model
    that translates back (None: the model's own).

    Returns the whole translation, every sentence's trace ("traces", dicts) with a short label each
    ("sentences"), a "notice" (truncation, n-best reduced to the beam width) and the views of the first
    sentence: "nbest" rows, its "trace", "heatmap", "coverage", "coverage_notes" and "beam_tree".
    """
    text = check_text(text)
    options = decode_options(method, beam_size, length_penalty, nbest, temperature, top_k, top_p, seed, reverse_weight)
    lines = [split_sentences(line) for line in text.splitlines() if line.strip()]
    sentences = [sentence for line in lines for sentence in line]
    if len(sentences) > MAX_SENTENCES:
        raise UserError(f"The text has {len(sentences)} sentences; the limit is {MAX_SENTENCES} at a time.")
    translator = get_translator(model, session)
    traces = [translator.translate(sentence, options, record_tree=options.method == "beam")
              for sentence in sentences]
    texts = iter([readable_text(trace.target_pieces) for trace in traces])
    notices = list(dict.fromkeys(trace.notice for trace in traces if trace.notice))
    if options.method == "beam" and number(nbest, "N-best", int) > options.nbest:
        notices.append(f"n-best shows {options.nbest}: at most the beam width.")
    return dict(translation="\n".join(" ".join(next(texts) for _ in line) for line in lines),
                traces=[trace.to_dict() for trace in traces], notice=" ".join(notices),
                sentences=[f"{i}. {sentence if len(sentence) <= 70 else sentence[:69] + '…'}"
                           for i, sentence in enumerate(sentences, 1)],
                **_sentence_views(traces[0], bool(merge_words)))


def translate_again(model: str, text: str, trace_data: dict | str | None, method: str = "greedy",
                    beam_size: Any = 5, nbest: Any = 1, temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0,
                    seed: Any = None, merge_words: bool = False, session: Session | None = None) -> dict | None:
    """After the model changed: the shown sentence translated again by the new model (with its own length
    penalty), so no result of the old model stays on screen. None when nothing was shown; when the new
    model reads another language, the old result is cleared and "message" says what to type."""
    if not trace_data or not (text or "").strip():
        return None
    translator = get_translator(model, session)
    was = str((trace_data if isinstance(trace_data, dict) else {}).get("source_lang") or "")
    name = LANGUAGES.get(translator.config.src_lang, translator.config.src_lang)
    if was and was != translator.config.src_lang:
        empty = plots.empty_figure("Translate a sentence to see its attention.")
        return dict(translation="", traces=[], sentences=[], notice="", nbest=[], trace=None, heatmap=empty,
                    coverage=plots.empty_figure("Coverage appears after a translation.", 220), coverage_notes="",
                    beam_tree=plots.empty_figure("", 240),
                    message=f"The model changed and reads {name} now: type or pick a {name} sentence.")
    result = translate(model, text, method, beam_size, None, nbest, temperature, top_k, top_p, seed, merge_words,
                       session)
    return {**result, "message": f"Translated again with the model now selected ({md(name)} source)."}


def sentence_views(traces: list | None, index: Any = 0, merge_words: bool = False) -> dict:
    """The views of one sentence of a translated paragraph (the sentence picker)."""
    if not traces:
        raise UserError("Nothing translated yet: translate a sentence first.")
    index = number(index if index is not None else 0, "Sentence", int, 0, len(traces) - 1)
    return _sentence_views(trace_from(traces[index]), bool(merge_words))


def _sentence_views(trace: Trace, merge_words: bool) -> dict:
    rows = [[rank, readable_text(h.pieces), round(h.score, 4), round(h.logprob, 4),
             "–" if h.back_logprob is None else round(h.back_logprob, 4)] for rank, h in enumerate(trace.nbest, 1)]
    return dict(nbest=rows, trace=trace.to_dict(), beam_tree=plots.beam_tree_figure(trace),
                **_views(trace, merge_words))


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
    """The coverage flags in words (flags are per word whether or not pieces are merged), with the thresholds."""
    items = plots.coverage(trace, merge_words=True)
    omitted = [i.word for i in items if i.flag == "omission"]
    repeated = [i.word for i in items if i.flag == "repetition"]
    parked = sum(i.total for i in items if i.flag == "special")

    def listing(words: list[str]) -> str:
        return ", ".join(code(w) for w in words) if words else "none"

    return (f"Possible omissions (content words with Σₜ αₜᵢ < {plots.OMISSION_BELOW}): {listing(omitted)}.  \n"
            f"Possible repetitions (Σₜ αₜᵢ > {plots.REPETITION_ABOVE}): {listing(repeated)}.  \n"
            f"Function words and punctuation are not flagged; `</s>` received {parked:.1f} (the model parks "
            "attention there). A hint, not proof: on sentences with a word left out on purpose it finds some of "
            "the omissions, not all (README: \"How good is the omission hint?\").")


def export_trace(trace_data: dict | str | None, merge_words: bool = False, session: Session | None = None) -> dict:
    """Attention as CSV, the trace as JSON and the heatmap as a small HTML page, at once (`export_png` makes
    the PNG: it needs a browser). Returns {"files": [paths], "message": markdown}."""
    trace = _exportable(trace_data)
    folder = _export_folder(session)
    view = plots.attention_view(trace, merge_words)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["target \\ source", *map(csv_text, view.source_labels)])
    for target_label, row in zip(view.target_labels, view.matrix):
        writer.writerow([csv_text(target_label), *(f"{value:.6f}" for value in row)])
    files = [atomic_write(folder / "attention.csv", table.getvalue()),
             atomic_write(folder / "trace.json", trace.to_json(indent=2) + "\n"),
             atomic_write(folder / "attention.html", html_page(trace, merge_words))]
    return dict(files=[str(p) for p in files], message="Exported attention.csv, trace.json and attention.html.")


def export_png(trace_data: dict | str | None, merge_words: bool = False, session: Session | None = None) -> dict:
    """The heatmap, titled with the sentence and its translation, as PNG: {"files": [path] or [], "message"}.

    s2s.png drives a headless Chrome/Chromium that stays open between exports (the first one starts it).
    PNG failing is reported in the message, never raised: the other formats are already there.
    """
    trace = _exportable(trace_data)
    folder = _export_folder(session)
    try:
        path = atomic_write(folder / "attention.png", png_bytes(plots.export_figure(trace, merge_words)))
    except Exception as err:  # kaleido missing, or no Chrome to drive
        log.warning("PNG export failed: %s", err)
        return dict(files=[], message=(
            "PNG export is not available here (kaleido needs Chrome or Chromium; set BROWSER_PATH to its "
            f"executable): {md(str(err).splitlines()[0] if str(err) else type(err).__name__)}. The HTML file "
            "has the same figure, and its toolbar can save a PNG."))
    return dict(files=[str(path)], message="Exported attention.png.")


def _export_folder(session: Session | None) -> Path:
    """A new folder for one export: in the session's folder (deleted with the session), or, called from
    Python without a session, in the system's temporary folder (the caller's to keep or delete)."""
    return Path(tempfile.mkdtemp(prefix="export-", dir=session.files() if session else None))


def _exportable(trace_data: dict | str | None) -> Trace:
    trace = trace_from(trace_data)
    if not trace.attention:
        raise UserError("Nothing to export: the trace has no attention weights.")
    return trace


def html_page(trace: Trace, merge_words: bool = False) -> str:
    """The heatmap as a small web page titled with the sentence (plotly.js comes from its CDN: ~20 kB
    instead of 4.8 MB; the PNG is the offline copy)."""
    figure = plots.attention_figure(trace, merge_words).to_html(include_plotlyjs="cdn", full_html=False)
    source, translation = html.escape(trace.source), html.escape(readable_text(trace.target_pieces))
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
            f"<title>Attention: {html.escape(trace.source[:100])}</title></head>\n"
            f"<body style=\"font-family: sans-serif\">\n<p><b>Source:</b> {source}<br>\n"
            f"<b>Translation:</b> {translation}</p>\n{figure}\n"
            "<p style=\"color: #666\">Attention weights αₜᵢ exported from s2s.</p>\n</body>\n</html>\n")


def csv_text(text: str) -> str:
    """A text cell a spreadsheet shows as text: one that starts like a formula (= + - @, tab, CR) gets a
    leading apostrophe, so `=HYPERLINK(...)` from a piece or a client's trace is never evaluated."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def prepare_png_export() -> None:
    """Someone opened the export section: start the PNG renderer in the background now, so that their first PNG
    takes well under a second instead of the browser's start-up (~5 s). Returns at once."""
    png.warm(timeout_s=PNG_TIMEOUT_S)


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
    return dict(figure=plots.beam_tree_figure(trace), translation=readable_text(trace.target_pieces))
