"""s2s.plots: literal labels, one tick per piece, word merging math, coverage flags, the beam tree."""
from __future__ import annotations

import math

import pytest

from s2s import plots
from s2s.api import DecodeOptions, Translator
from s2s.trace import Candidate, Trace

SOURCE = ["▁a", "▁a", "▁<b>x</b>", "▁ca", "t", "</s>"]  # duplicate pieces, HTML-looking pieces, </s>
TARGET = ["▁ein", "▁Kat", "ze", "▁&", "</s>"]
ATTENTION = [
    [0.70, 0.10, 0.05, 0.05, 0.05, 0.05],
    [0.05, 0.05, 0.10, 0.40, 0.30, 0.10],
    [0.05, 0.05, 0.10, 0.20, 0.50, 0.10],
    [0.05, 0.05, 0.60, 0.10, 0.10, 0.10],
    [0.05, 0.05, 0.05, 0.05, 0.05, 0.75],
]


def toy_trace(**changes) -> Trace:
    fields = dict(source="a a <b>x</b> cat", source_pieces=SOURCE, target_pieces=TARGET, translation="ein Katze &",
                  attention=ATTENTION, step_logprobs=[-0.1] * 5, top_k=[], logprob=-0.5)
    fields.update(changes)
    return Trace(**fields)


def test_labels_are_escaped_so_plotly_shows_them_literally():
    assert plots.label("</s>") == "&lt;/s&gt;"
    assert plots.label("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    assert plots.label("&") == "&amp;"
    assert plots.label("▁Mann") == "▁Mann"


def test_heatmap_has_one_literal_tick_per_piece_including_duplicates():
    fig = plots.attention_figure(toy_trace())
    x, y = fig.layout.xaxis, fig.layout.yaxis
    assert x.tickmode == "array" and y.tickmode == "array"
    assert list(x.tickvals) == list(range(len(SOURCE)))  # numeric positions: the two "▁a" stay apart
    assert list(x.ticktext) == [plots.label(p) for p in SOURCE]
    assert list(y.ticktext) == [plots.label(p) for p in TARGET]
    assert "&lt;/s&gt;" in x.ticktext and "▁&lt;b&gt;x&lt;/b&gt;" in x.ticktext
    heatmap = fig.data[0]
    assert list(heatmap.x) == list(range(len(SOURCE))) and list(heatmap.y) == list(range(len(TARGET)))
    assert [list(row) for row in heatmap.z] == ATTENTION
    assert "source: ▁&lt;b&gt;x&lt;/b&gt;" in heatmap.text[3][2] and "target: ▁&amp;" in heatmap.text[3][2]
    assert tuple(y.range) == (len(TARGET) - 0.5, -0.5)  # first target piece at the top


def test_word_groups_follow_sentencepiece_word_starts_and_isolate_specials():
    assert plots.word_groups(SOURCE) == [[0], [1], [2], [3, 4], [5]]
    assert plots.word_groups(["▁Kat", "ze", "</s>", "x"]) == [[0, 1], [2], [3]]
    assert plots.word_groups(["▁a", "<b>", "▁c"]) == [[0, 1], [2]]  # no ▁: continues the word


def test_merge_sums_source_pieces_and_averages_target_pieces():
    view = plots.attention_view(toy_trace(), merge_words=True)
    assert view.source_labels == ["a", "a", "<b>x</b>", "cat", "</s>"]
    assert view.target_labels == ["ein", "Katze", "&", "</s>"]
    cat_from_katze = ((0.40 + 0.30) + (0.20 + 0.50)) / 2  # sum over ▁ca+t, mean over ▁Kat+ze
    assert view.matrix[1][3] == pytest.approx(cat_from_katze)
    assert view.matrix[0] == pytest.approx([0.70, 0.10, 0.05, 0.10, 0.05])
    for row in view.matrix:
        assert sum(row) == pytest.approx(1.0)  # still a distribution over the source
    fig = plots.attention_figure(toy_trace(), merge_words=True)
    assert list(fig.layout.xaxis.ticktext) == ["a", "a", "&lt;b&gt;x&lt;/b&gt;", "cat", "&lt;/s&gt;"]


def test_merge_decodes_byte_fallback_pieces():
    view = plots.attention_view(toy_trace(source_pieces=["▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "</s>"]),
                                merge_words=True)
    assert view.source_labels == ["😀", "</s>"]


def test_coverage_flags_omissions_and_repetitions_but_not_end_of_sentence():
    attention = [[0.05, 0.95, 0.0], [0.0, 0.95, 0.05], [0.0, 0.0, 1.0]]
    trace = toy_trace(source_pieces=["▁cat", "▁dog", "</s>"], target_pieces=["▁Hund", "▁Hund", "</s>"],
                      attention=attention)
    items = plots.coverage(trace)
    assert [(i.word, i.flag) for i in items] == [("▁cat", "omission"), ("▁dog", "repetition"), ("</s>", "special")]
    assert items[1].total == pytest.approx(1.9)
    fig = plots.coverage_figure(trace)
    names = {bar.name for bar in fig.data}
    assert any("omission" in n for n in names) and any("repetition" in n for n in names)
    assert list(fig.layout.xaxis.ticktext) == ["▁cat", "▁dog", "&lt;/s&gt;"]


def test_step_figures_escape_labels_and_show_every_candidate():
    candidates = [Candidate("</s>", 3, 0.5), Candidate("<b>x</b>", 9, 0.3), Candidate("▁a", 7, 0.2)]
    fig = plots.candidates_figure(candidates, chosen_id=9)
    assert list(fig.layout.yaxis.ticktext) == ["&lt;/s&gt;", "&lt;b&gt;x&lt;/b&gt;", "▁a"]
    assert list(fig.data[0].x) == [0.5, 0.3, 0.2]
    bars = plots.source_attention_figure(SOURCE, ATTENTION[0])
    assert list(bars.layout.xaxis.tickvals) == list(range(len(SOURCE)))
    assert list(bars.layout.xaxis.ticktext) == [plots.label(p) for p in SOURCE]
    assert plots.candidates_figure([]).layout.annotations  # finished: a message, not an error


def test_loss_figure_skips_missing_values():
    fig = plots.loss_figure([(1, 3.0), (2, float("nan")), (3, 2.0)], [(3, 2.5)])
    assert list(fig.data[0].x) == [1, 3] and list(fig.data[1].y) == [2.5]
    assert plots.loss_figure([], []).layout.annotations


def test_empty_trace_gives_a_message_figure():
    empty = toy_trace(source_pieces=[], target_pieces=[], attention=[])
    assert plots.attention_figure(empty).layout.annotations
    assert plots.coverage_figure(empty).layout.annotations
    assert plots.beam_tree_figure(empty).layout.annotations


def test_beam_tree_figure_from_a_real_beam_search(tiny_checkpoint):
    translator = Translator.load(tiny_checkpoint, device="cpu")
    trace = translator.translate("A woman sits at a dark bar.", DecodeOptions(method="beam", beam_size=3, nbest=2))
    assert trace.beam_tree and trace.beam_tree[0].piece == "<s>"
    fig = plots.beam_tree_figure(trace)
    markers = [d for d in fig.data if d.mode == "markers+text"]
    assert sum(len(d.x) for d in markers) == len(trace.beam_tree)  # every node drawn once
    assert {d.name for d in markers} <= {"kept", "pruned", "finished"}
    assert "finished" in {d.name for d in markers}
    for d in markers:  # hover carries the cumulative log-prob of each node
        for (x, piece, logprob, status) in zip(d.x, [c[0] for c in d.customdata], [c[1] for c in d.customdata],
                                               [c[2] for c in d.customdata]):
            assert status == d.name and math.isfinite(logprob)
    best_edges = next(d for d in fig.data if d.name == "best hypothesis")
    segments = len([x for x in best_edges.x if x is None])
    assert segments == len(trace.nbest[0].pieces)  # the best path: one edge per target piece
    edges = next(d for d in fig.data if d.mode == "lines" and d.name != "best hypothesis")
    assert segments + len([x for x in edges.x if x is None]) == len(trace.beam_tree) - 1  # one edge per non-root


def test_coverage_flags_only_content_words_and_keeps_end_of_sentence_out_of_the_scale():
    """Issue 10, item 5: articles and full stops are never flagged, a word's full stop does not count for it,
    and a large </s> is cut at the top instead of squashing every other bar."""
    pieces = ["▁The", "▁man", "▁reads", "▁the", "▁news", "pa", "per", ".", "</s>"]
    attention = [[0.02, 0.9, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.02],
                 [0.02, 0.01, 0.9, 0.01, 0.01, 0.01, 0.01, 0.01, 0.02],
                 [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.6, 0.33],
                 [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]] + [[0.0] * 8 + [1.0]] * 5
    trace = toy_trace(source_pieces=pieces, target_pieces=["▁Der", "▁Mann", "▁liest", "."] + ["</s>"] * 5,
                      attention=attention, source_lang="en")
    words = {item.word: item.flag for item in plots.coverage(trace, merge_words=True)}
    assert words == {"The": "minor", "man": "normal", "reads": "normal", "the": "minor", "newspaper": "omission",
                     ".": "minor", "</s>": "special"}
    pieces_flags = [item.flag for item in plots.coverage(trace)]
    assert pieces_flags[4:7] == ["omission"] * 3  # each piece of the word carries its flag
    figure = plots.coverage_figure(trace)
    eos = next(bar for bar in figure.data if bar.name == plots.label("</s>"))
    assert eos.text[0] == "6.4" and figure.layout.yaxis.range[1] < 6.4  # cut, with its value written on it
    assert {bar.name for bar in figure.data} >= {"function word, punctuation", "omission? (&lt; 0.5)"}


def test_step_labels_explain_bare_word_starts_bytes_and_tiny_probabilities():
    assert plots.piece_name("▁") == "▁ (space: a new word starts)"
    assert plots.piece_name("<0xC3>") == "<0xC3> (byte)" and plots.piece_name("▁Hund") == "▁Hund"
    assert [plots.percent(p) for p in (0.412, 0.0035, 0.00002)] == ["41.2%", "0.35%", "<0.01%"]


def test_export_figure_carries_the_sentence_and_its_translation_on_white():
    figure = plots.export_figure(toy_trace())
    assert "Source:" in figure.layout.title.text and "a a &lt;b&gt;x&lt;/b&gt; cat" in figure.layout.title.text
    assert "Translation:" in figure.layout.title.text and figure.layout.paper_bgcolor == "white"
    assert figure.layout.width >= 700 and figure.layout.height > plots.attention_figure(toy_trace()).layout.height


def test_app_figures_are_see_through_for_light_and_dark_themes():
    layout = plots.attention_figure(toy_trace()).layout
    assert layout.template.layout.paper_bgcolor == plots.TRANSPARENT == layout.template.layout.plot_bgcolor


def test_every_figure_passes_plotly_validation(tiny_checkpoint):
    """plots builds figures with _validate=False (plotly's checks were most of a click's server time), so here
    each kind of figure is rebuilt with validation on: a misspelt property or a bad value raises."""
    import plotly.graph_objects as go

    translator = Translator.load(tiny_checkpoint, device="cpu")
    beam = translator.translate("A woman sits at a dark bar.", DecodeOptions(method="beam", beam_size=3, nbest=2))
    candidates = [Candidate("</s>", 3, 0.5), Candidate("<b>x</b>", 9, 0.3)]
    figures = [plots.attention_figure(toy_trace()), plots.attention_figure(toy_trace(), merge_words=True),
               plots.export_figure(toy_trace()), plots.coverage_figure(toy_trace()),
               plots.coverage_figure(toy_trace(), merge_words=True), plots.candidates_figure(candidates, chosen_id=9),
               plots.candidates_figure([]), plots.source_attention_figure(SOURCE, ATTENTION[0]),
               plots.beam_tree_figure(beam), plots.loss_figure([(1, 3.0), (3, 2.0)], [(3, 2.5)]),
               plots.empty_figure("nothing")]
    for fig in figures:
        go.Figure(fig.to_plotly_json())  # validates every property; raises ValueError on a bad one
