"""Property-based tests (hypothesis) for issue 11: what a stranger can type or upload never crashes anything.

- the tokenizer round-trips any text up to SentencePiece's own normalisation, and never emits <unk>;
- the Translator decodes any string (lone surrogates, control characters, emoji, very long input);
- the data readers raise nothing but DataError, and a well-formed TSV/CSV reads back what was written;
- config.json values of any JSON type raise nothing but ConfigError;
- every piece that reaches a figure is HTML-escaped, so plotly shows it literally.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
import re
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from s2s import data, plots
from s2s.api import DecodeOptions, Translator
from s2s.config import Config, ConfigError
from s2s.data import DataError
from s2s.tokenizer import UNK_ID, Tokenizer, clean_text
from s2s.trace import BeamNode, Candidate, Hypothesis, Trace
from tiny import toy_pairs

# The machine running the suite may be busy: no per-example deadline; a fixed number of examples.
settings.register_profile("s2s", deadline=None, max_examples=60, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("s2s")

# Any str, lone surrogates (U+D800..U+DFFF) and control characters included: what an API client can send.
any_text = st.text(st.characters(codec=None, categories=None, exclude_categories=()), max_size=80)
# Characters that tend to break things: markup, entities, SentencePiece's word mark, byte-piece look-alikes.
tricky = st.sampled_from(["<", ">", "&", "</s>", "<s>", "<unk>", "<pad>", "<b>x</b>", "&amp;", "&lt;", "<br>",
                          "▁", "<0xE2>", "\t", "\n", "\r", "\x00", "\u200b", "\ufeff", "\ud800", "🚲", "é",
                          "e\u0301", "ﬁ", "\u2028", '"', "'", ",", "="])
mixed_text = st.lists(st.one_of(any_text, tricky), max_size=8).map("".join)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train([s for s, _ in toy_pairs()], 300)


@pytest.fixture(scope="module")
def translator(tiny_checkpoint) -> Translator:
    return Translator.load(tiny_checkpoint, device="cpu")


# ---------------------------------------------------------------------- tokenizer
def expected_round_trip(tokenizer: Tokenizer, text: str) -> str:
    """What decode(encode(text)) must give: the text after clean_text and SentencePiece's normaliser
    (NFKC, collapsed whitespace), with its word marks turned back into spaces."""
    return tokenizer.sp.normalize(clean_text(text)).replace("▁", " ").strip()


@given(text=mixed_text)
def test_tokenizer_round_trips_any_text_up_to_normalisation(tokenizer, text):
    ids = tokenizer.encode(text)
    assert UNK_ID not in ids  # byte fallback: no character is ever unknown
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == expected_round_trip(tokenizer, text)
    assert len(tokenizer.pieces(ids)) == len(ids)


words = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)


@given(text=st.lists(words, min_size=1, max_size=10).map(" ".join))
def test_tokenizer_round_trips_plain_ascii_exactly(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


@given(text=st.text(st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp", "Cf", "Mn", "Mc", "Me")),
                    min_size=1, max_size=20))
def test_tokenizer_round_trips_any_normalised_word_exactly(tokenizer, text):
    """A word that is already in its normal form (what NFKC leaves alone) comes back unchanged."""
    assume(unicodedata.is_normalized("NFKC", text) and tokenizer.sp.normalize(text) == "▁" + text)
    assert tokenizer.decode(tokenizer.encode(text)) == text


# ---------------------------------------------------------------------- decoding arbitrary strings
def check_trace(trace: Trace, text: str) -> None:
    assert trace.source == text and isinstance(trace.translation, str)
    assert len(trace.attention) == len(trace.target_pieces) == len(trace.step_logprobs)
    for row in trace.attention:
        assert len(row) == len(trace.source_pieces) and math.isclose(sum(row), 1.0, abs_tol=1e-4)
    json.loads(trace.to_json())  # what the app and `--json` send


@settings(max_examples=40)
@given(text=mixed_text)
def test_translator_decodes_any_string(translator, text):
    check_trace(translator.translate(text), text)


@settings(max_examples=15)
@given(text=mixed_text, method=st.sampled_from(["beam", "sample"]))
def test_beam_and_sampling_decode_any_string(translator, text, method):
    options = DecodeOptions(method=method, beam_size=3, nbest=2, seed=1)
    check_trace(translator.translate(text, options), text)


@settings(max_examples=10)
@given(texts=st.lists(mixed_text, max_size=6))
def test_batch_translation_keeps_one_output_per_input(translator, texts):
    assert len(translator.translate_batch(texts, batch_size=2)) == len(texts)


def test_very_long_input_is_truncated_with_a_notice(translator):
    trace = translator.translate("dog " * 5000 + "\ud800" * 10)
    assert len(trace.source_pieces) == translator.config.max_src_tokens and "truncated" in trace.notice


# ---------------------------------------------------------------------- data readers
names = st.sampled_from(["pairs.tsv", "pairs.csv", "pairs.txt", "pairs"])


@given(text=mixed_text, name=names)
@example(text="a," + "b" * 140_000, name="pairs.csv")  # a CSV field over the csv module's limit (csv.Error)
def test_parse_pairs_raises_only_data_errors(text, name):
    try:
        data.parse_pairs(text, name)
    except DataError:
        pass


@given(content=st.one_of(st.binary(max_size=300), mixed_text.map(lambda t: t.encode("utf-8", "surrogatepass"))),
       second=st.none() | st.binary(max_size=100), name=names)
@example(content=b'"' + b"x" * 140_000 + b'",y\n', second=None, name="pairs.csv")
def test_read_user_pairs_raises_only_data_errors(content, second, name):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        other = None
        if second is not None:
            other = Path(tmp) / "target.txt"
            other.write_bytes(second)
        try:
            pairs, report = data.read_user_pairs(path, other)
        except DataError:
            return
        assert report.kept == len(pairs)
        assert all(isinstance(s, str) and isinstance(t, str) and s and t for s, t in pairs)


# cells a person could type: no tabs or line breaks (those separate cells), no surrogates (not UTF-8), no BOM
cell_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="\ufeff")
cells = st.text(cell_chars, max_size=30)


def read_back(text: str, name: str) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        try:
            return data.read_user_pairs(path)[0]
        except DataError as err:
            assert "holds no sentence pairs" in str(err)  # every pair was blank
            return []


@given(pairs=st.lists(st.tuples(cells, cells), min_size=1, max_size=8))
def test_a_written_tsv_reads_back_as_its_cleaned_pairs(pairs):
    text = "".join(f"{s}\t{t}\n" for s, t in pairs)
    assert read_back(text, "pairs.tsv") == data.clean_pairs(pairs)[0]


@given(pairs=st.lists(st.tuples(cells, cells), min_size=1, max_size=8))
def test_a_written_csv_reads_back_as_its_cleaned_pairs(pairs):
    assume([c.strip().lower() for c in pairs[0]] not in (["source", "target"], ["src", "tgt"]))  # not a header
    out = io.StringIO()
    csv.writer(out).writerows(pairs)
    assert read_back(out.getvalue(), "pairs.csv") == data.clean_pairs(pairs)[0]


# ---------------------------------------------------------------------- config.json values
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=6)
config_fields = st.sampled_from(sorted(Config().to_dict()))


@given(changes=st.dictionaries(config_fields, json_values, max_size=4))
def test_config_values_of_any_type_raise_only_config_errors(changes):
    try:
        config = Config.from_dict({**Config().to_dict(), **changes})
    except ConfigError:
        return
    config.validate()


# ---------------------------------------------------------------------- labels in figures
pieces = st.lists(st.one_of(tricky, st.text(max_size=6)), min_size=1, max_size=6)
ENTITY = re.compile(r"&(amp|lt|gt|quot|#x27|#39);")


def figure_labels(figure) -> list[str]:
    """Every string from the data that plotly may render as HTML: tick texts, (hover) texts, custom data,
    annotations, with the line breaks plots.py itself writes (<br>) taken out. Hover templates and trace
    names are written by plots.py, not taken from data."""
    found: list[str] = []

    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                if k not in ("hovertemplate", "texttemplate", "template"):
                    walk(v, k)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key in ("ticktext", "text", "customdata", "hovertext"):
            found.append(value.replace("<br>", "\n"))
        elif hasattr(value, "tolist"):
            walk(value.tolist(), key)

    walk(figure.to_plotly_json())
    return found


def assert_escaped(figure, originals) -> None:
    labels = figure_labels(figure)
    for text in labels:
        assert "<" not in text and ">" not in text, text
        assert "&" not in ENTITY.sub("", text), text  # every & starts an entity
    shown = {html.unescape(text) for text in labels}
    for piece in originals:  # each piece is shown literally (inside a hover line, or as a tick of its own)
        assert any(piece in text for text in shown), (piece, shown)


def trace_of(source, target, candidates=()) -> Trace:
    attention = [[1.0 / len(source)] * len(source) for _ in target]
    nodes = [BeamNode(step=0, parent=-1, piece="<s>", id=2, logprob=0.0, status="kept")]
    nodes += [BeamNode(step=i + 1, parent=i, piece=p, id=10 + i, logprob=-float(i + 1),
                       status="finished" if i == len(target) - 1 else "kept") for i, p in enumerate(target)]
    return Trace(source="".join(source), source_pieces=list(source), target_pieces=list(target),
                 translation="".join(target), attention=attention, step_logprobs=[-1.0] * len(target),
                 top_k=[[Candidate(piece=p, id=i, prob=0.5) for i, p in enumerate(candidates)]] * len(target),
                 logprob=-1.0, method="beam", nbest=[Hypothesis("".join(target), list(target), -1.0, -1.0)],
                 beam_tree=nodes)


@settings(max_examples=40)
@given(source=pieces, target=pieces, merge=st.booleans())
def test_heatmap_and_coverage_labels_are_escaped(source, target, merge):
    trace = trace_of(source, target)
    view = plots.attention_view(trace, merge)
    assert_escaped(plots.attention_figure(trace, merge), view.source_labels + view.target_labels)
    # coverage counts a word's closing punctuation apart from it: its labels are its own items' words
    assert_escaped(plots.coverage_figure(trace, merge), [item.word for item in plots.coverage(trace, merge)])


@settings(max_examples=40)
@given(source=pieces, target=pieces)
def test_step_and_beam_tree_labels_are_escaped(source, target):
    trace = trace_of(source, target, candidates=target)
    assert_escaped(plots.candidates_figure(trace.top_k[0], chosen_id=0), target)
    assert_escaped(plots.source_attention_figure(source, trace.attention[0]), source)
    assert_escaped(plots.beam_tree_figure(trace), target)


@given(message=mixed_text)
def test_message_figures_escape_their_text(message):
    annotations = plots.empty_figure(message).to_plotly_json()["layout"]["annotations"]
    assert html.unescape(annotations[0]["text"]) == message and "<" not in annotations[0]["text"]
