"""Is attention an explanation? What each source piece contributed to each target piece, beside α (issue 14).

For a source x (S pieces, </s> included) and a target y (T pieces: the model's own greedy translation, or
one a person gives), fₜ(x) = log p(yₜ | y<ₜ, x) under teacher forcing through `model.step`. Each fₜ is
attributed to the source positions i through their embeddings eᵢ (E numbers each):

    gradient × input        Gₜᵢ = eᵢ · ∂fₜ/∂eᵢ                                   (Shrikumar et al. 2016)
    integrated gradients    Aₜᵢ = (eᵢ − e′ᵢ) · ∫₀¹ ∂fₜ/∂eᵢ (e′ + a(e − e′)) da      (Sundararajan et al. 2017)

Baseline e′: the pad embedding at every position, the length (mask) unchanged: a sentence as long as x
that says nothing (the pad row of nn.Embedding is kept at zero, so e′ = 0 in these models). The integral
is the trapezoid rule over K steps: the K + 1 points a = 0, 1/K, …, 1 run as one batch, so one forward
pass and one (vmapped) backward pass per chunk of rows give every row's gradients; the point a = 1 is x
itself and gives G too. Completeness: Σᵢ Aₜᵢ = fₜ(x) − fₜ(e′) exactly for the true integral; the gap of the
K-step rule is reported per row (it shrinks like 1/K²).

A row shown beside αₜ is |Aₜᵢ| / Σᵢ |Aₜᵢ|: how much each source piece mattered, whichever way. A negative
Aₜᵢ means the piece made yₜ *less* likely; the signed values stay in `Attribution.integrated_raw`.

Agreement of two rows (αₜ and an attribution row, each summing to 1): whether their largest entries fall
on the same source piece (top-1), and the Jensen–Shannon distance √JSD (base 2: 0 equal, 1 disjoint).
Merging pieces into words uses the heatmap's rule (`s2s.plots.attention_view`): a source word sums its
pieces' columns, a target word averages its pieces' rows, so merged rows still sum to 1.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from . import search
from .config import DECODING_FIELDS
from .model import DecoderState, Memory, Seq2Seq
from .plots import attention_view
from .trace import Trace

DEFAULT_STEPS = 24  # integrated gradients' K. On the everyday set a sentence's largest completeness gap averages
# 0.01-0.04 nats for rows whose log p moves ~5 nats (bench/explain.py --agreement); 20 × 16 pieces take < 1 s
ROWS_PER_PASS = 16  # target rows per vmapped encoder backward pass: bounds memory at rows × (K+1) × S × 4H floats


@dataclass
class Attribution:
    """Everything about one (source, target) pair, as numpy; rows are target pieces, columns source pieces."""

    source_ids: list[int]
    target_ids: list[int]
    step_logprobs: np.ndarray  # (T,) log p(yₜ | y<ₜ, x): their sum is the score of the translation
    greedy_ids: np.ndarray  # (T,) the model's own top-1 piece under the same prefix y<ₜ
    greedy_logprobs: np.ndarray  # (T,) its log-probability
    alpha: np.ndarray  # (T, S) attention αₜᵢ
    gradient_input: np.ndarray  # (T, S) |Gₜᵢ| normalised per row
    integrated: np.ndarray  # (T, S) |Aₜᵢ| normalised per row
    integrated_raw: np.ndarray  # (T, S) Aₜᵢ, signed, in nats
    baseline_logprobs: np.ndarray  # (T,) fₜ(e′)
    completeness_error: np.ndarray  # (T,) |Σᵢ Aₜᵢ − (fₜ(x) − fₜ(e′))| in nats
    steps: int

    @property
    def score(self) -> float:
        return float(self.step_logprobs.sum())


def attribute(model: Seq2Seq, source_ids: Sequence[int], target_ids: Sequence[int], steps: int = DEFAULT_STEPS,
              rows_per_pass: int = ROWS_PER_PASS) -> Attribution:
    """Attention, gradient × input and integrated gradients of log p(yₜ | y<ₜ, x) for every target piece."""
    if not source_ids or not target_ids:
        raise ValueError("attribution needs at least one source and one target piece")
    if model.training:
        raise ValueError("attribution needs the model in eval mode (dropout would make every point random)")
    device = next(model.parameters()).device
    K = int(steps)
    src = torch.tensor([list(source_ids)], device=device)  # (1, S)
    tgt = torch.tensor(list(target_ids), device=device)  # (T,)
    lengths = torch.tensor([src.size(1)], device=device)
    with torch.enable_grad():
        e = model.encoder.embed(src).detach()  # (1, S, E)
        e_base = model.encoder.embed(torch.full_like(src, model.config.pad_id)).detach()  # (1, S, E)
        a = torch.linspace(0.0, 1.0, K + 1, device=device)[:, None, None]  # (K+1, 1, 1); a = 1 is x itself
        path = (e_base + a * (e - e_base)).requires_grad_()  # (K+1, S, E)
        f, alpha, greedy, grads = _forced_with_gradients(model, src.expand(K + 1, -1), lengths.expand(K + 1), path,
                                                         tgt, rows_per_pass)  # grads (T, K+1, S, E)
    weights = torch.full((K + 1,), 1.0 / K, device=device)
    weights[0] = weights[-1] = 0.5 / K  # trapezoid rule
    mean_grad = torch.einsum("k,tkse->tse", weights, grads)  # (T, S, E) ∫₀¹ ∂fₜ/∂e da
    integrated = (mean_grad * (e - e_base)).sum(-1)  # (T, S)
    grad_input = (grads[:, -1] * e).sum(-1)  # (T, S) at a = 1
    delta = f[-1] - f[0]  # (T,) fₜ(x) − fₜ(e′)
    return Attribution(
        source_ids=list(source_ids), target_ids=list(target_ids), step_logprobs=_np(f[-1]),
        greedy_ids=_np(greedy.indices[-1]), greedy_logprobs=_np(greedy.values[-1]), alpha=_np(alpha[-1]),
        gradient_input=normalise_rows(_np(grad_input)), integrated=normalise_rows(_np(integrated)),
        integrated_raw=_np(integrated), baseline_logprobs=_np(f[0]),
        completeness_error=np.abs(_np(integrated.sum(-1)) - _np(delta)), steps=K)


def _forced_with_gradients(model: Seq2Seq, src: Tensor, lengths: Tensor, embedded: Tensor, target: Tensor,
                           rows_per_pass: int):
    """Teacher forcing on N points of the path, and ∂fₜ/∂embedded for every target row t: (T, N, S, E).

    The graph is cut where the encoder hands over (h̄, h₀, c₀). Each row's gradient first runs back through
    its own steps only (step t's readout and the decoder steps before it: a row never pays for the others'
    vocabulary projections), then the encoder's backward pass runs once for a chunk of rows together, vmapped
    over their cotangents, so the encoder's forward pass is never repeated."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mkldnn.flags() warns about TF32 on Intel GPUs
        # oneDNN's LSTM backward has no vmap rule (vmap would loop over the rows); the plain one has. The flag
        # is process-wide: a translation running meanwhile in another thread is only slower, never different.
        with torch.backends.mkldnn.flags(enabled=False):
            memory, state = model.encode(src, lengths, embedded)
    handed = [memory.outputs, state.h] + ([state.c] if state.c is not None else [])
    leaves = [t.detach().requires_grad_() for t in handed]
    outputs, h0, c0 = leaves[0], leaves[1], leaves[2] if state.c is not None else None
    steps, alpha, greedy = teacher_forced(model, Memory(outputs, model.attention.keys(outputs), memory.mask),
                                          DecoderState(h0, c0, state.feed), target)
    T = target.size(0)
    # from each step's own output (not from a stacked f: its backward would run every step's readout per row)
    per_row = [torch.autograd.grad(steps[t].sum(), leaves, retain_graph=True, allow_unused=True) for t in range(T)]
    grads = []
    for start in range(0, T, rows_per_pass):
        chunk = per_row[start:start + rows_per_pass]
        cotangents = [torch.stack([row[j] if row[j] is not None else torch.zeros_like(leaves[j]) for row in chunk])
                      for j in range(len(leaves))]
        (grad,) = torch.autograd.grad(handed, embedded, cotangents, retain_graph=start + rows_per_pass < T,
                                      is_grads_batched=True)
        grads.append(grad)
    return torch.stack(steps, 1).detach(), alpha, greedy, torch.cat(grads)


def teacher_forced(model: Seq2Seq, memory: Memory, state: DecoderState, target: Tensor):
    """Teacher forcing through `model.step` on a batch of N (copies of one sentence, or points of a path).

    target (T,) -> T tensors log p(yₜ | y<ₜ) (N,), α (N, T, S), and the top-1 (values, indices: (N, T)) of
    each step's distribution: the model's own choice under the same prefix.
    """
    batch = memory.mask.size(0)
    y = torch.full((batch,), model.config.bos_id, dtype=torch.long, device=target.device)
    logps, alphas, top_values, top_ids = [], [], [], []
    for t in range(target.size(0)):
        log_probs, state, alpha = model.step(y, state, memory)  # (N, V), state, (N, S)
        logps.append(log_probs[:, target[t]])
        alphas.append(alpha.detach())
        best = log_probs.detach().max(dim=-1)
        top_values.append(best.values)
        top_ids.append(best.indices)
        y = target[t].expand(batch)
    top = torch.return_types.max((torch.stack(top_values, 1), torch.stack(top_ids, 1)))
    return logps, torch.stack(alphas, 1), top


def _np(tensor: Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """|values| / row sum of |values|: each row sums to 1 (a row of zeros becomes uniform)."""
    magnitude = np.abs(np.asarray(matrix, dtype=np.float64))
    total = magnitude.sum(-1, keepdims=True)
    uniform = np.full_like(magnitude, 1.0 / max(magnitude.shape[-1], 1))
    return np.where(total > 0, magnitude / np.where(total > 0, total, 1.0), uniform)


# ---------------------------------------------------------------------- agreement
@dataclass
class Agreement:
    """How far attention and an attribution agree, row by row and over the sentence."""

    top1: list[bool]  # per row: the largest α and the largest attribution fall on the same source piece/word
    js_distance: list[float]  # per row: Jensen–Shannon distance (base 2), 0 = equal, 1 = disjoint

    @property
    def agreeing(self) -> int:
        return int(sum(self.top1))

    @property
    def top1_rate(self) -> float:
        return self.agreeing / len(self.top1) if self.top1 else float("nan")

    @property
    def mean_js(self) -> float:
        return float(np.mean(self.js_distance)) if self.js_distance else float("nan")

    def summary(self, merged: bool = False) -> str:
        unit = "word" if merged else "piece"
        return (f"attention and attribution agree on the most important source {unit} for {self.agreeing} of "
                f"{len(self.top1)} target {unit}s")

    def to_dict(self) -> dict:
        return {**asdict(self), "agreeing": self.agreeing, "top1_rate": self.top1_rate, "mean_js": self.mean_js}


def js_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Jensen–Shannon distance √(½ KL(p‖m) + ½ KL(q‖m)), m = (p + q)/2, log base 2: in [0, 1]."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(a / m), 0.0).sum(-1)

    return np.sqrt(np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0))


def agreement(alpha: np.ndarray, attribution: np.ndarray) -> Agreement:
    """Top-1 agreement and JS distance of each row of two (T, S) maps whose rows sum to 1."""
    alpha, attribution = np.asarray(alpha, np.float64), np.asarray(attribution, np.float64)
    if alpha.shape != attribution.shape:
        raise ValueError(f"maps of different shapes: {alpha.shape} and {attribution.shape}")
    if alpha.size == 0:
        return Agreement([], [])
    top1 = (alpha.argmax(-1) == attribution.argmax(-1)).tolist()
    return Agreement(top1, js_distance(alpha, attribution).tolist())


# ---------------------------------------------------------------------- pieces or words
@dataclass
class MapView:
    """A (T, S) map as drawn: per piece, or merged into words by the heatmap's rule."""

    source_labels: list[str]
    target_labels: list[str]
    matrix: np.ndarray
    merged: bool


def map_view(matrix: np.ndarray, source_pieces: Sequence[str], target_pieces: Sequence[str],
             merge_words: bool = False) -> MapView:
    """`matrix` per piece, or per word exactly as the attention heatmap merges α (s2s.plots.attention_view)."""
    trace = Trace(source="", source_pieces=list(source_pieces), target_pieces=list(target_pieces), translation="",
                  attention=np.asarray(matrix, np.float64).tolist(), step_logprobs=[], top_k=[], logprob=0.0)
    view = attention_view(trace, merge_words)
    return MapView(view.source_labels, view.target_labels, np.asarray(view.matrix, np.float64), view.merged)


def compare(alpha: np.ndarray, attribution: np.ndarray, source_pieces: Sequence[str],
            target_pieces: Sequence[str], merge_words: bool = False) -> Agreement:
    """Agreement of α and an attribution map, per piece or per word."""
    return agreement(map_view(alpha, source_pieces, target_pieces, merge_words).matrix,
                     map_view(attribution, source_pieces, target_pieces, merge_words).matrix)


# ---------------------------------------------------------------------- the model's own translation
@torch.inference_mode()
def greedy_ids(model: Seq2Seq, source_ids: Sequence[int]) -> list[int]:
    """The model's greedy translation of `source_ids` (ids ending with </s> when it finished), via `model.step`."""
    device = next(model.parameters()).device
    src = torch.tensor([list(source_ids)], device=device)
    lengths = torch.tensor([src.size(1)], device=device)
    memory, state = model.encode(src, lengths)
    return search.decode(model, memory, state, search.max_target_length(lengths), candidates=0)[0].ids


# ---------------------------------------------------------------------- models that differ only in the score


def differences_besides_attention(models: Sequence[Seq2Seq]) -> list[str]:
    """What sets these models apart other than their attention score and module: config fields (the decoding
    defaults tuned after training aside) and weights outside `attention.` (names and shapes). [] when nothing."""
    if len(models) < 2:
        return []
    first, problems = models[0], []
    skip = {"attention", *DECODING_FIELDS}
    base = {k: v for k, v in first.config.to_dict().items() if k not in skip}
    shapes = {k: tuple(v.shape) for k, v in first.state_dict().items() if not k.startswith("attention.")}
    for model in models[1:]:
        config = {k: v for k, v in model.config.to_dict().items() if k not in skip}
        problems += [f"{k}: {base.get(k)!r} vs {config.get(k)!r}" for k in sorted(set(base) | set(config))
                     if base.get(k) != config.get(k)]
        other = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("attention.")}
        problems += [f"weight {k}: {shapes.get(k)} vs {other.get(k)}" for k in sorted(set(shapes) | set(other))
                     if shapes.get(k) != other.get(k)]
    return list(dict.fromkeys(problems))
