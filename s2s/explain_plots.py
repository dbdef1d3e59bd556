"""Figures of the Explain tab: attribution beside attention, the score of each piece of a translation, and
state trajectories. Plain data in, plotly figures out (no torch), with the conventions of s2s.plots: every
label escaped (`label`), positional axes with one tick per piece (`tickmode="array"`), transparent
backgrounds that sit on the light or dark theme."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .plots import ALPHA_COLORS, COLORS, _figure, _positional_axis, _tick_angle, empty_figure, label, percent

# attribution in orange, so it is never mistaken for α (blue) when the two maps sit side by side
ATTRIBUTION_COLORS = [[0.0, "rgba(230,85,13,0)"], [0.5, "rgba(230,85,13,0.6)"], [1.0, "rgba(230,85,13,1)"]]


def map_figure(source_labels: Sequence[str], target_labels: Sequence[str], matrix, title: str, symbol: str,
               attribution: bool = False, marks: Sequence[int] | None = None) -> go.Figure:
    """A (target × source) map whose rows sum to 1, drawn like the attention heatmap; `marks[t]` (a column)
    outlines each row's largest entry."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.size == 0 or not source_labels:
        return empty_figure("Explain a sentence to see this map.")
    hover = [[f"target: {label(tgt)}<br>source: {label(src)}" for src in source_labels] for tgt in target_labels]
    heatmap = dict(type="heatmap", z=matrix.tolist(), x=list(range(len(source_labels))),
                   y=list(range(len(target_labels))), text=hover, zmin=0.0, zmax=1.0, xgap=1, ygap=1,
                   hovertemplate=f"%{{text}}<br>{symbol} = %{{z:.3f}}<extra></extra>",
                   colorscale=ATTRIBUTION_COLORS if attribution else ALPHA_COLORS,
                   colorbar=dict(title=dict(text=symbol), thickness=12))
    traces = [heatmap]
    if marks is not None:
        traces.append(dict(type="scatter", x=list(marks), y=list(range(len(marks))), mode="markers",
                           marker=dict(symbol="square-open", size=14, color="#888", line=dict(width=2)),
                           hoverinfo="skip", showlegend=False))
    rows = len(target_labels)
    xaxis = _positional_axis(source_labels, side="top", tickangle=_tick_angle(source_labels),
                             title=dict(text="source"))
    yaxis = {**_positional_axis(target_labels, title=dict(text="target")), "range": [rows - 0.5, -0.5]}
    return _figure(traces, title, int(min(1400, max(320, 150 + 30 * rows))), xaxis=xaxis, yaxis=yaxis)


def piece_scores_figure(pieces: Sequence[str], logprobs: Sequence[float], greedy: Sequence[str],
                        greedy_logprobs: Sequence[float]) -> go.Figure:
    """p(yₜ | y<ₜ, x) of each piece of a translation as bars coloured from red (unlikely) to green, with the
    model's own top-1 piece under the same prefix written beside every step where it differs."""
    if not pieces:
        return empty_figure("Explain a sentence to see the probability of each piece.", height=220)
    probs = np.exp(np.asarray(logprobs, dtype=float))
    differs = [g != p for p, g in zip(pieces, greedy)]
    text = [f"{percent(p)}  · model: {label(g)}" if d else percent(p) for p, g, d in zip(probs, greedy, differs)]
    custom = [[label(p), lp, label(g), float(np.exp(glp))]
              for p, lp, g, glp in zip(pieces, logprobs, greedy, greedy_logprobs)]
    bars = dict(type="bar", x=probs.tolist(), y=list(range(len(pieces))), orientation="h", text=text,
                textposition="outside", cliponaxis=False, customdata=custom,
                marker=dict(color=probs.tolist(), colorscale=[[0, COLORS["omission"]], [0.5, "#f2cf5b"],
                                                              [1, COLORS["finished"]]], cmin=0, cmax=1),
                hovertemplate="%{customdata[0]}: p = %{x:.3f} (log p = %{customdata[1]:.3f})<br>the model's own "
                              "choice here: %{customdata[2]} (p = %{customdata[3]:.3f})<extra></extra>")
    return _figure([bars], "p(yₜ | y<ₜ, x) of each piece · where the model would choose another piece, it is named",
                   int(min(1400, max(240, 90 + 26 * len(pieces)))),
                   yaxis={**_positional_axis(list(pieces)), "range": [len(pieces) - 0.5, -0.5]},
                   xaxis=dict(range=[0, 1.6], tickvals=[0, 0.25, 0.5, 0.75, 1], tickformat=".0%",
                              title=dict(text="probability")))


def trajectories_figure(source_pieces: Sequence[str], encoder_xy, target_pieces: Sequence[str], decoder_xy,
                        explained: tuple[Sequence[float], Sequence[float]], sample: str) -> go.Figure:
    """Encoder states h̄ᵢ (top) and decoder states hₜ (bottom) in 2-D, each a path through its pieces in order;
    two panels because the two kinds of state live in different spaces with bases of their own."""
    if not len(source_pieces):
        return empty_figure("Explain a sentence to see its state trajectories.")
    traces = []
    for axis, pieces, xy, name, color in (("", source_pieces, encoder_xy, "encoder h̄ᵢ", COLORS["kept"]),
                                          ("2", target_pieces, decoder_xy, "decoder hₜ", COLORS["heldout"])):
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        traces.append(dict(type="scatter", x=xy[:, 0].tolist(), y=xy[:, 1].tolist(), mode="lines+markers+text",
                           xaxis=f"x{axis}", yaxis=f"y{axis}", name=name, text=[label(p) for p in pieces],
                           textposition="top center", textfont=dict(size=11),
                           customdata=[[i + 1, label(p)] for i, p in enumerate(pieces)],
                           hovertemplate=f"{name} %{{customdata[0]}}: %{{customdata[1]}}<extra></extra>",
                           line=dict(color=color, width=1.5), marker=dict(color=color, size=8)))
    share = [f"PC1 {e[0]:.0%}, PC2 {e[1]:.0%} of the variance" for e in explained]
    axes = dict(showgrid=True, zeroline=False)
    return _figure(traces, f"State trajectories · PCA fitted on {label(sample)}", 720,
                   legend=dict(orientation="h", x=0, y=-0.06),
                   xaxis=dict(domain=[0, 1], anchor="y", title=dict(text=f"encoder: {share[0]}"), **axes),
                   yaxis=dict(domain=[0.56, 1], anchor="x", **axes),
                   xaxis2=dict(domain=[0, 1], anchor="y2", title=dict(text=f"decoder: {share[1]}"), **axes),
                   yaxis2=dict(domain=[0, 0.42], anchor="x2", **axes))
