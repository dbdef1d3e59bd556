"""Trace -> plotly figures: attention heatmap, coverage, step candidates, beam tree, loss curves.

Plain data in, `plotly.graph_objects.Figure` out; no torch here, so the app and
the exports can draw any saved Trace.

Two plotly habits shape every axis below:

- plotly reads a subset of HTML in tick and hover text, so a piece such as `</s>`
  would vanish and `<b>x</b>` would turn bold. Every label goes through `label()`
  (html.escape), which plotly turns back into the literal characters.
- category axes merge equal labels (two "▁a" pieces would share one column) and
  thin out crowded ticks. Axes here are numeric positions 0..n-1 with
  `tickmode="array"` and explicit `tickvals`/`ticktext`: one tick per piece,
  duplicates kept apart, none skipped.
"""
from __future__ import annotations

import html
import math
import textwrap
from dataclasses import dataclass
from typing import Sequence

import plotly.graph_objects as go

from .tokenizer import SPECIAL_PIECES, WORD_START, readable_text
from .trace import BeamNode, Candidate, Trace
from .words import is_content_word

# Coverage flags (documented in the app): total attention a source *content* word received over all target
# pieces. 0.5 was chosen on scripts/omissions (forced decoding of translations with a word left out): it finds
# about a third of the omissions there; attention alone cannot see more (see the README).
OMISSION_BELOW = 0.5  # the model barely looked at the word: it may have been left out
REPETITION_ABOVE = 1.8  # the word was attended far more than once: it may have been translated twice
_SPECIAL = frozenset(SPECIAL_PIECES.values())  # never merged into words, never flagged by coverage

COLORS = dict(normal="#4c78a8", omission="#e45756", repetition="#f58518", special="#bab0ac", minor="#9ecae9",
              kept="#4c78a8", pruned="#c7c7c7", finished="#54a24b", best="#e45756", train="#4c78a8",
              heldout="#f58518", forced="#e45756")
FONT = dict(family="Inter, 'DejaVu Sans', Arial, sans-serif", size=13)
# A small template instead of "plotly_white": every figure carries its template, and the app sends figures as JSON.
# Transparent backgrounds and grey lines let a figure sit on the app's light or dark theme (style.css turns the
# text light in dark mode); exports set white.
TRANSPARENT = "rgba(0,0,0,0)"
TEMPLATE = go.layout.Template(layout=dict(
    paper_bgcolor=TRANSPARENT, plot_bgcolor=TRANSPARENT, hoverlabel=dict(align="left"),
    xaxis=dict(gridcolor="rgba(128,128,128,0.2)", linecolor="rgba(128,128,128,0.5)",
               zerolinecolor="rgba(128,128,128,0.5)", automargin=True),
    yaxis=dict(gridcolor="rgba(128,128,128,0.2)", linecolor="rgba(128,128,128,0.5)",
               zerolinecolor="rgba(128,128,128,0.5)", automargin=True)))
# α from 0 (transparent: the page shows through, light or dark) to 1 (full blue)
ALPHA_COLORS = [[0.0, "rgba(33,102,172,0)"], [0.5, "rgba(33,102,172,0.6)"], [1.0, "rgba(33,102,172,1)"]]


def label(piece: str) -> str:
    """A piece as literal text in a plotly label: `</s>` stays `</s>`, `<b>x</b>` is not bold."""
    return html.escape(str(piece), quote=False)


def _figure(traces: Sequence[dict], title: str, height: int, **layout) -> go.Figure:
    """A whole figure in one constructor call: each fig.update_* / add_* call re-validates the figure and
    costs milliseconds, which adds up to most of a translation's time in the app. The title reserves its own
    room (automargin), so axis labels at the top never run into it, however narrow the screen.

    _validate=False: plotly's validation of every property (and its deep copies) was 70% of a Step-tab click
    and most of a translation's figure cost; the properties here are fixed by this module and tested
    (tests/test_plots.py checks figures against plotly's schema)."""
    return go.Figure(data=list(traces), layout=dict(
        title=dict(text=title, x=0.01, xanchor="left", y=1, yref="container", yanchor="top", automargin=True,
                   pad=dict(t=8, b=8), font=dict(size=15)), height=height,
        margin=dict(l=10, r=10, t=10, b=10), font=FONT, template=TEMPLATE, **layout), _validate=False)


def empty_figure(message: str, height: int = 260) -> go.Figure:
    """A blank figure carrying a short message (before anything was translated, or on error)."""
    note = dict(text=label(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                font=dict(size=14, color="#666"))
    return _figure([], "", height, annotations=[note], xaxis=dict(visible=False), yaxis=dict(visible=False))


def _positional_axis(labels: Sequence[str], **extra) -> dict:
    """Numeric axis with one explicit tick per position: duplicates stay apart, no tick is skipped."""
    return dict(tickmode="array", tickvals=list(range(len(labels))), ticktext=[label(t) for t in labels],
                range=[-0.5, len(labels) - 0.5], showgrid=False, zeroline=False, automargin=True, **extra)


# ---------------------------------------------------------------------- merging pieces into words
def _is_byte_piece(piece: str) -> bool:
    return len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")


def _word_text(pieces: Sequence[str]) -> str:
    """Join a word's pieces into its surface form (byte-fallback pieces decoded as UTF-8)."""
    out, pending = [], bytearray()
    for piece in pieces:
        if _is_byte_piece(piece):
            pending.append(int(piece[3:5], 16))
            continue
        if pending:
            out.append(pending.decode("utf-8", errors="replace"))
            pending.clear()
        out.append(piece)
    if pending:
        out.append(pending.decode("utf-8", errors="replace"))
    text = "".join(out).replace(WORD_START, " ").strip()
    return text or "".join(pieces)


def word_groups(pieces: Sequence[str]) -> list[list[int]]:
    """Indices of the pieces of each word: a word starts at a `▁` piece; special pieces stand alone."""
    groups: list[list[int]] = []
    previous_special = True
    for i, piece in enumerate(pieces):
        special = piece in _SPECIAL
        if special or previous_special or piece.startswith(WORD_START):
            groups.append([i])
        else:
            groups[-1].append(i)
        previous_special = special
    return groups


@dataclass
class AttentionView:
    """The α matrix as drawn: rows are target labels, columns source labels."""

    source_labels: list[str]
    target_labels: list[str]
    matrix: list[list[float]]  # (rows, columns)
    merged: bool


def attention_view(trace: Trace, merge_words: bool = False) -> AttentionView:
    """α per piece, or per word: a source word gets the SUM of its pieces' weights (so each row still sums
    to 1), a target word the MEAN of its pieces' rows (the average attention while writing that word)."""
    if not merge_words:
        return AttentionView(list(trace.source_pieces), list(trace.target_pieces),
                             [list(map(float, row)) for row in trace.attention], False)
    source_groups, target_groups = word_groups(trace.source_pieces), word_groups(trace.target_pieces)
    summed = [[sum(row[i] for i in group) for group in source_groups] for row in trace.attention]
    matrix = [[sum(summed[t][w] for t in rows) / len(rows) for w in range(len(source_groups))]
              for rows in target_groups]
    return AttentionView([_word_text([trace.source_pieces[i] for i in g]) for g in source_groups],
                         [_word_text([trace.target_pieces[t] for t in g]) for g in target_groups], matrix, True)


# ---------------------------------------------------------------------- heatmap
def attention_figure(trace: Trace, merge_words: bool = False, title: str | None = None) -> go.Figure:
    """Heatmap of αₜᵢ: target pieces (or words) down, source pieces (or words) across, α on hover."""
    view = attention_view(trace, merge_words)
    if not view.matrix or not view.source_labels:
        return empty_figure("No attention to show yet: translate a sentence first.")
    unit = "words" if view.merged else "pieces"
    hover = [[f"target: {label(tgt)}<br>source: {label(src)}" for src in view.source_labels]
             for tgt in view.target_labels]
    # α to 3 decimals, as the hover shows it: a third of the figure's JSON (full floats) for no visible change
    heatmap = dict(
        type="heatmap", z=[[round(a, 3) for a in row] for row in view.matrix], x=list(range(len(view.source_labels))),
        y=list(range(len(view.target_labels))), text=hover, hovertemplate="%{text}<br>α = %{z:.3f}<extra></extra>",
        zmin=0.0, zmax=1.0, colorscale=ALPHA_COLORS, colorbar=dict(title=dict(text="α"), thickness=12), xgap=1, ygap=1)
    rows = len(view.target_labels)
    xaxis = _positional_axis(view.source_labels, side="top", tickangle=_tick_angle(view.source_labels),
                             title=dict(text=f"source {unit}"))
    yaxis = {**_positional_axis(view.target_labels, title=dict(text=f"target {unit}")),
             "range": [rows - 0.5, -0.5]}  # reversed: the first target piece at the top
    height = int(min(1400, max(320, 150 + 30 * rows)))
    return _figure([heatmap], title if title is not None else f"Attention αₜᵢ ({unit})", height,
                   xaxis=xaxis, yaxis=yaxis)


def export_figure(trace: Trace, merge_words: bool = False) -> go.Figure:
    """The heatmap for a file (PNG): on white, titled with the sentence and its translation (wrapped), and
    sized by the number of pieces so that no label runs into another."""
    view = attention_view(trace, merge_words)
    width = int(min(2400, max(700, 240 + 34 * len(view.source_labels))))
    wrap = max(40, width // 9)  # characters per title line at 15 px
    lines = [f"<b>{name}:</b> " + "<br>".join(label(part) for part in textwrap.wrap(text, wrap) or [""])
             for name, text in (("Source", trace.source), ("Translation", readable_text(trace.target_pieces)))]
    title = "<br>".join(lines)
    rows = title.count("<br>") + 1
    figure = attention_figure(trace, merge_words, title=title)
    # plotly's title automargin misplaces a title of several lines in kaleido: the top margin is sized here
    # instead, for the title plus the slanted source labels and the axis title under it
    labels = 0.87 * 8 * max(len(t) for t in view.source_labels) + 50
    top = int(24 + 22 * rows + labels)
    height = figure.layout.height + top
    figure.update_layout(width=width, height=height, paper_bgcolor="white", plot_bgcolor="white",
                         font=dict(color="#333"), margin=dict(l=20, r=20, t=top, b=20),
                         title=dict(y=1 - 14 / height, yref="container", yanchor="top", automargin=False))
    return figure


# ---------------------------------------------------------------------- coverage
@dataclass
class CoverageItem:
    word: str  # a source piece, or a word when merged
    total: float  # Σₜ αₜᵢ over every target piece (the coverage penalty's quantity); a word: over its pieces
    flag: str  # normal | omission | repetition | minor (function word, punctuation) | special (</s>)


def coverage(trace: Trace, merge_words: bool = False) -> list[CoverageItem]:
    """Total attention each source piece (or word) received, Σₜ αₜᵢ over every target piece.

    Flags are about words: a content word whose pieces together got less than OMISSION_BELOW may have been
    left out ("omission"), more than REPETITION_ABOVE translated twice ("repetition"); each piece of a word
    carries its word's flag. Function words and punctuation (s2s.words) are "minor" and special pieces such
    as `</s>` "special": never flagged (a translation drops articles all the time; the model parks attention
    on `</s>`).
    """
    alpha = trace.attention
    column = [float(sum(row[i] for row in alpha)) for i in range(len(trace.source_pieces))]
    items: list[CoverageItem] = []
    for group in _coverage_groups(trace.source_pieces):
        pieces = [trace.source_pieces[i] for i in group]
        total = sum(column[i] for i in group)
        word = _word_text(pieces)
        if pieces[0] in _SPECIAL:
            flag = "special"
        elif not is_content_word(word, trace.source_lang):
            flag = "minor"
        else:
            flag = "omission" if total < OMISSION_BELOW else "repetition" if total > REPETITION_ABOVE else "normal"
        if merge_words:
            items.append(CoverageItem(word, total, flag))
        else:
            items += [CoverageItem(piece, column[i], flag) for piece, i in zip(pieces, group)]
    return items


def _coverage_groups(pieces: Sequence[str]) -> list[list[int]]:
    """word_groups, with the punctuation a word ends with (`stairs` + `.`) as a group of its own: the full stop's
    attention must not count for the word."""
    groups = []
    for group in word_groups(pieces):
        cut = len(group)
        while cut > 1 and not any(ch.isalnum() for ch in pieces[group[cut - 1]]):
            cut -= 1
        groups += [group[:cut]] + ([group[cut:]] if cut < len(group) else [])
    return groups


COVERAGE_NAMES = dict(normal="content word", omission=f"omission? (< {OMISSION_BELOW})",
                      repetition=f"repetition? (> {REPETITION_ABOVE})", minor="function word, punctuation",
                      special="</s>")


def coverage_figure(trace: Trace, merge_words: bool = False) -> go.Figure:
    """Bar per source piece/word: Σₜ αₜᵢ, coloured by flag, with the two thresholds drawn. The scale follows
    the words: `</s>` (often several times more) is cut at the top, with its value written on it."""
    items = coverage(trace, merge_words)
    if not items or not trace.attention:
        return empty_figure("Coverage appears after a translation.", height=220)
    labels = [item.word for item in items]
    top = max([REPETITION_ABOVE + 0.4] + [item.total * 1.25 for item in items if item.flag != "special"])
    bars = []
    for flag in ("normal", "omission", "repetition", "minor", "special"):
        positions = [i for i, item in enumerate(items) if item.flag == flag]
        if not positions:
            continue
        bars.append(dict(
            type="bar", x=positions, y=[min(items[i].total, top * 0.92) for i in positions], width=0.8,
            name=label(COVERAGE_NAMES[flag]), marker_color=COLORS[flag],
            text=[f"{items[i].total:.1f}" for i in positions], textposition="outside", cliponaxis=False,
            customdata=[[label(labels[i]), items[i].total] for i in positions],
            hovertemplate="%{customdata[0]}<br>Σₜ αₜᵢ = %{customdata[1]:.3f}<extra></extra>"))
    # threshold lines as plain layout shapes (fig.add_hline re-lays out the figure: ~20 ms each)
    thresholds = [dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=value, y1=value,
                       line=dict(dash="dot", color="#888", width=1)) for value in (OMISSION_BELOW, REPETITION_ABOVE)]
    return _figure(bars, "Coverage: Σₜ αₜᵢ of each source " + ("word" if merge_words else "piece"),
                   340, barmode="overlay", legend=dict(orientation="h", x=0, y=1, yanchor="bottom"),
                   shapes=thresholds, uniformtext=dict(minsize=9, mode="hide"),
                   xaxis=_positional_axis(labels, tickangle=_tick_angle(labels)),
                   yaxis=dict(range=[0, top], title=dict(text="Σₜ αₜᵢ")))


def _tick_angle(labels: Sequence[str]) -> int:
    """Upright labels when few and short, else slanted (a phone shows ~8 upright short labels)."""
    return 0 if len(labels) <= 6 and sum(len(t) for t in labels) <= 36 else -60


# ---------------------------------------------------------------------- one decoding step
def percent(p: float) -> str:
    """A probability for people: 41.2%, 0.35%, <0.01% (never a bare 0.0%)."""
    return f"{p:.1%}" if p >= 0.01 else f"{p:.2%}" if p >= 0.0001 else "<0.01%"


def piece_name(piece: str) -> str:
    """A candidate piece as a person reads it: a bare ▁ is a space (the word it starts comes in the next
    pieces), a byte piece such as <0xC3> part of a character the vocabulary spells byte by byte."""
    if piece == WORD_START:
        return "▁ (space: a new word starts)"
    if _is_byte_piece(piece):
        return f"{piece} (byte)"
    return piece


def candidates_figure(candidates: Sequence[Candidate], chosen_id: int | None = None,
                      title: str = "Next piece: top candidates") -> go.Figure:
    """Horizontal bars of the k most likely next pieces (most likely on top)."""
    if not candidates:
        return empty_figure("Decoding finished: no more candidates.", height=260)
    labels = [piece_name(c.piece) for c in candidates]
    colors = [COLORS["forced"] if chosen_id is not None and c.id == chosen_id else COLORS["kept"]
              for c in candidates]
    bars = dict(
        type="bar", x=[c.prob for c in candidates], y=list(range(len(candidates))), orientation="h",
        marker=dict(color=colors), text=[percent(c.prob) for c in candidates], textposition="outside",
        customdata=[[label(c.piece), c.id] for c in candidates],
        hovertemplate="%{customdata[0]} (id %{customdata[1]})<br>p = %{x:.4f}<extra></extra>")
    return _figure([bars], title, 80 + 36 * len(candidates),
                   yaxis={**_positional_axis(labels), "range": [len(labels) - 0.5, -0.5]},
                   xaxis=dict(range=[0, 1.15], tickformat=".0%", title=dict(text="probability")))


def source_attention_figure(source_pieces: Sequence[str], alpha: Sequence[float] | None,
                            title: str = "Attention over the source at this step") -> go.Figure:
    """Bars of αₜ over the source pieces for one step."""
    if not alpha or not source_pieces:
        return empty_figure("No step yet.", height=260)
    bars = dict(type="bar", x=list(range(len(source_pieces))), y=list(alpha), marker=dict(color=COLORS["kept"]),
                customdata=[label(p) for p in source_pieces],
                hovertemplate="%{customdata}<br>α = %{y:.3f}<extra></extra>")
    return _figure([bars], title, 300,
                   xaxis=_positional_axis(source_pieces, tickangle=_tick_angle(source_pieces)),
                   yaxis=dict(range=[0, 1.05], title=dict(text="α")))


# ---------------------------------------------------------------------- beam tree
def _tree_layout(nodes: Sequence[BeamNode]) -> list[float]:
    """y position per node: leaves in depth-first order (children by log-prob), parents centred on children."""
    children: list[list[int]] = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        if node.parent >= 0:
            children[node.parent].append(i)
    for kids in children:
        kids.sort(key=lambda i: -nodes[i].logprob)
    y = [0.0] * len(nodes)
    next_leaf = 0
    roots = [i for i, node in enumerate(nodes) if node.parent < 0]
    stack = [(r, False) for r in reversed(roots)]
    while stack:  # iterative post-order, so deep trees need no recursion
        index, expanded = stack.pop()
        if not children[index]:
            y[index] = float(next_leaf)
            next_leaf += 1
        elif expanded:
            y[index] = sum(y[c] for c in children[index]) / len(children[index])
        else:
            stack.append((index, True))
            stack.extend((c, False) for c in reversed(children[index]))
    return y


def _best_path(nodes: Sequence[BeamNode], best_pieces: Sequence[str]) -> set[int]:
    """Nodes on the path of the best hypothesis (matched by its pieces), empty if not found."""
    if not best_pieces:
        return set()
    for i, node in enumerate(nodes):
        if node.step != len(best_pieces) or node.status == "pruned":
            continue
        path, j = [], i
        while nodes[j].parent >= 0:
            path.append(j)
            j = nodes[j].parent
        if [nodes[k].piece for k in reversed(path)] == list(best_pieces):
            return set(path) | {j}
    return set()


def beam_tree_figure(trace: Trace) -> go.Figure:
    """The beam search tree: one column per step, edges to parents, kept/pruned/finished coloured, the best
    hypothesis in red; hover shows each node's cumulative log-prob."""
    nodes = trace.beam_tree
    if not nodes:
        return empty_figure("The beam tree appears after a beam search translation.", height=240)
    y = _tree_layout(nodes)
    best = _best_path(nodes, trace.nbest[0].pieces if trace.nbest else trace.target_pieces)
    traces = []
    for on_best in (False, True):
        xs, ys = [], []
        for i, node in enumerate(nodes):
            if node.parent >= 0 and ((i in best and node.parent in best) == on_best):
                xs += [nodes[node.parent].step, node.step, None]
                ys += [y[node.parent], y[i], None]
        traces.append(dict(type="scatter", x=xs, y=ys, mode="lines", hoverinfo="skip",
                           showlegend=on_best and bool(xs), name="best hypothesis" if on_best else "expansions",
                           line=dict(color=COLORS["best"] if on_best else "#d0d0d0", width=3 if on_best else 1)))
    for status in ("kept", "finished", "pruned"):
        members = [i for i, node in enumerate(nodes) if node.status == status]
        if not members:
            continue
        traces.append(dict(
            type="scatter", x=[nodes[i].step for i in members], y=[y[i] for i in members], mode="markers+text",
            name=status, text=[label(nodes[i].piece) for i in members], textposition="middle right",
            textfont=dict(size=11, color="#333" if status != "pruned" else "#999"),
            marker=dict(color=COLORS[status], size=9 if status != "pruned" else 6,
                        symbol="diamond" if status == "finished" else "circle",
                        line=dict(width=1.5, color=[COLORS["best"] if i in best else "white" for i in members])),
            customdata=[[label(nodes[i].piece), nodes[i].logprob, status] for i in members],
            hovertemplate="step %{x}: %{customdata[0]}<br>cumulative log-prob %{customdata[1]:.3f}"
                          "<br>%{customdata[2]}<extra></extra>"))
    steps = max(node.step for node in nodes)
    leaves = max(y) + 1
    return _figure(traces, f"Beam search tree ({len(nodes)} nodes)", int(min(2400, max(380, 110 + 17 * leaves))),
                   legend=dict(orientation="h", y=-0.08, x=0), yaxis=dict(visible=False, range=[leaves, -1]),
                   xaxis=dict(title=dict(text="decoding step"), tickmode="array", tickvals=list(range(steps + 1)),
                              range=[-0.5, steps + 1.2], showgrid=False, zeroline=False))


# ---------------------------------------------------------------------- fine-tuning
def loss_figure(train_points: Sequence[tuple[float, float]], heldout_points: Sequence[tuple[float, float]],
                title: str = "Loss while fine-tuning",
                train_name: str = "training loss (with label smoothing 0.1)") -> go.Figure:
    """Training loss (every few updates) and held-out loss (before training, then every epoch) by update step.

    The training loss includes label smoothing, so it sits above a held-out loss measured without it."""
    finite = [(x, v) for x, v in train_points if v is not None and math.isfinite(v)]
    held = [(x, v) for x, v in heldout_points if v is not None and math.isfinite(v)]
    if not finite and not held:
        return empty_figure("The loss curve appears once training starts.", height=300)
    traces = []
    if finite:
        traces.append(dict(type="scatter", x=[x for x, _ in finite], y=[v for _, v in finite],
                           mode="lines+markers", name=train_name, line=dict(color=COLORS["train"])))
    if held:
        traces.append(dict(type="scatter", x=[x for x, _ in held], y=[v for _, v in held], mode="lines+markers",
                           name="held-out loss", line=dict(color=COLORS["heldout"], dash="dash")))
    return _figure(traces, title, 320, legend=dict(orientation="h", y=-0.25, x=0),
                   xaxis=dict(title=dict(text="update step"), rangemode="tozero"),
                   yaxis=dict(title=dict(text="cross-entropy (nats / token)")))
