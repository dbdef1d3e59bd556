"""Search over `model.step`: greedy, forced prefix, sampling, beam. Nothing here knows about text.

Every function takes a batch (B sentences) already encoded, so batched
translation and batch-1 interactive use run the same code. They return
`Decoded` hypotheses holding ids, the α matrix and per-step candidates as numpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from .model import DecoderState, Memory, Seq2Seq


@dataclass
class Decoded:
    ids: list[int]  # y₁..y_T, ending with </s> when finished
    alpha: np.ndarray  # (T, S) attention rows over the source
    step_logprobs: list[float]
    top_ids: np.ndarray  # (T, k) the k candidates (most likely pieces) at each step
    top_probs: np.ndarray  # (T, k) their probabilities
    score: float = 0.0  # ranking score (length-normalised for beam; + λ·back_logprob when reranked)
    finished: bool = True
    back_logprob: float | None = None  # reranked (s2s.rerank): the reverse model's mean log p(x | y) per piece

    @property
    def logprob(self) -> float:
        return float(sum(self.step_logprobs))


@dataclass
class BeamResult:
    nbest: list[Decoded]
    tree: list[dict] = field(default_factory=list)  # BeamNode fields, see trace.py


def max_target_length(src_lengths: Tensor, ratio: float = 2.0, extra: int = 10, cap: int = 400) -> Tensor:
    """Longest target we allow per sentence, relative to its source length."""
    return (src_lengths.float() * ratio + extra).clamp(max=cap).long()


Chooser = Callable[[Tensor], Tensor]  # log_probs (B, V) -> ids (B,)


class Resume(NamedTuple):
    """Where `decode` goes on from: `steps` pieces already decoded, the last of them `last` (the next y_prev)."""

    steps: int
    last: int


def argmax_chooser(log_probs: Tensor) -> Tensor:
    return log_probs.argmax(dim=-1)


def sampling_chooser(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                     seed: int | None = None) -> Chooser:
    """Sample from p^(1/temperature), restricted to the top_k pieces and the top_p nucleus."""
    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else torch.seed())
    temperature = max(float(temperature), 1e-4)

    def choose(log_probs: Tensor) -> Tensor:
        scores = log_probs.float().cpu() / temperature  # (B, V)
        if top_k and top_k > 0:
            kth = scores.topk(min(int(top_k), scores.size(-1)), dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if top_p < 1.0:
            sorted_scores, order = scores.sort(dim=-1, descending=True)
            cumulative = sorted_scores.softmax(-1).cumsum(-1)
            drop = cumulative - sorted_scores.softmax(-1) > top_p  # keep the smallest set reaching top_p
            scores = scores.scatter(-1, order, sorted_scores.masked_fill(drop, float("-inf")))
        ids = torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(-1)
        return ids.to(log_probs.device)

    return choose


@torch.inference_mode()
def decode(model: Seq2Seq, memory: Memory, state: DecoderState, max_len: Tensor,
           choose: Chooser = argmax_chooser, prefixes: Sequence[Sequence[int]] | None = None,
           candidates: int = 5, resume: Resume | None = None, states: list[DecoderState] | None = None
           ) -> list[Decoded]:
    """Left-to-right decoding for greedy and sampling; prefixes force the first tokens (forced prefix).

    `candidates`: how many of the most likely pieces to record per step (0: none, for bare translation).
    `resume`: go on from a kept state instead of <s> (the Step tab): `state` is the state after `resume.steps`
    pieces, the last of them `resume.last`; prefixes force the pieces after those, and max_len still counts
    from the first piece. `states`: when a list, each step's input state is appended to it (states[t] is
    the state that chooses piece t + 1 of the returned rows), so that a later call can resume from any of them.
    """
    cfg = model.config
    batch = memory.mask.size(0)
    device = memory.mask.device
    offset = resume.steps if resume else 0
    y = torch.full((batch,), resume.last if resume else cfg.bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    max_len = max_len.to(device)
    longest_prefix = max((len(p) for p in prefixes), default=0) if prefixes else 0
    forced = None
    if longest_prefix:
        forced = torch.full((batch, longest_prefix), -1, dtype=torch.long)
        for b, prefix in enumerate(prefixes):
            forced[b, :len(prefix)] = torch.as_tensor(list(prefix), dtype=torch.long)
        forced = forced.to(device)
    prefix_len = torch.tensor([len(p) for p in prefixes] if prefixes else [0] * batch, device=device)
    tokens, logps, alphas, top_ids, top_probs = [], [], [], [], []
    steps = int(max(max_len.max().item() - offset, longest_prefix))
    for t in range(steps):  # t counts from the resume point; t + offset from the first piece
        if states is not None:
            states.append(state)
        log_probs, state, alpha = model.step(y, state, memory)  # (B, V), state, (B, S)
        y = choose(log_probs)
        if forced is not None and t < longest_prefix:
            y = torch.where(forced[:, t] >= 0, forced[:, t], y)
        y = torch.where(finished, torch.full_like(y, cfg.pad_id), y)
        if candidates:
            top = log_probs.topk(candidates, dim=-1)
            top_ids.append(top.indices)
            top_probs.append(top.values.exp())
        tokens.append(y)
        logps.append(log_probs.gather(1, y[:, None]).squeeze(1))
        alphas.append(alpha)
        finished = finished | (y == cfg.eos_id) | ((t + 1 + offset >= max_len) & (t + 1 >= prefix_len))
        if bool(finished.all()):
            break
    return _collect(tokens, logps, alphas, top_ids, top_probs, memory.mask, cfg.eos_id, candidates)


def _collect(tokens, logps, alphas, top_ids, top_probs, mask, eos_id, candidates) -> list[Decoded]:
    tokens = torch.stack(tokens, 1).cpu().numpy()  # (B, T)
    logps = torch.stack(logps, 1).float().cpu().numpy()
    alphas = torch.stack(alphas, 1).float().cpu().numpy()  # (B, T, S)
    lengths = mask.sum(1).cpu().numpy()
    if candidates:
        top_ids = torch.stack(top_ids, 1).cpu().numpy()  # (B, T, k)
        top_probs = torch.stack(top_probs, 1).float().cpu().numpy()
    out = []
    for b in range(tokens.shape[0]):
        row = tokens[b].tolist()
        end = row.index(eos_id) + 1 if eos_id in row else len(row)
        s = int(lengths[b])
        out.append(Decoded(
            ids=row[:end], alpha=alphas[b, :end, :s], step_logprobs=logps[b, :end].tolist(),
            top_ids=top_ids[b, :end] if candidates else np.zeros((end, 0), int),
            top_probs=top_probs[b, :end] if candidates else np.zeros((end, 0)),
            score=float(logps[b, :end].sum()), finished=eos_id in row))
    return out


def length_norm(length: int, length_penalty: float) -> float:
    """GNMT length normalisation lp(Y) = ((5 + |Y|) / 6)^length_penalty (Wu et al. 2016); a hypothesis ranks
    by log p / lp(Y), so length_penalty = 0 ranks by raw log-probability."""
    return ((5.0 + length) / 6.0) ** length_penalty


def coverage_score(coverage: Tensor, mask: Tensor, beta: float) -> Tensor:
    """GNMT coverage penalty (Wu et al. 2016, eq. 14): β · Σᵢ log min(Σₜ αₜᵢ, 1), over real source positions.

    It is ≤ 0 and lowers the score of a hypothesis that left source pieces unattended (dropped phrases).
    coverage: (N, S) summed attention; mask: (N, S) True on real positions. Returns (N,).
    """
    if not beta:
        return torch.zeros(coverage.size(0), device=coverage.device)
    floor = 1e-3  # log 0 would make any hypothesis with one unattended piece unrankable
    return beta * (coverage.clamp(floor, 1.0).log() * mask).sum(-1)


@torch.inference_mode()
def beam_search(model: Seq2Seq, memory: Memory, state: DecoderState, max_len: Tensor, beam_size: int = 5,
                length_penalty: float = 1.0, nbest: int = 1, candidates: int = 5,
                record_tree: bool = False, coverage_penalty: float = 0.0) -> list[BeamResult]:
    """Beam search over B sentences at once: all B·K live hypotheses advance in one `model.step` call.

    Each step keeps, per sentence, the K best extensions that do not end; an </s> among the K best
    extensions finishes a hypothesis, ranked by log p / length_norm + coverage penalty. A sentence is done
    when it has K finished hypotheses or reaches its maximum length. History is kept as parent pointers.
    """
    cfg = model.config
    batch, device = memory.mask.size(0), memory.mask.device
    K = beam_size
    flat = torch.arange(batch, device=device).repeat_interleave(K)  # (B*K,) sentence of each hypothesis
    memory, state = memory.select(flat), state.select(flat)
    scores = torch.full((batch, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis per sentence at the start
    y = torch.full((batch * K,), cfg.bos_id, dtype=torch.long, device=device)
    max_len = max_len.tolist()
    history, ends = _BeamHistory(), _Endings(batch, K, cfg.bos_id, record_tree)
    base = (torch.arange(batch, device=device) * K)[:, None]  # (B, 1)
    coverage = torch.zeros(memory.mask.shape, device=device)  # (B*K, S) Σₜ αₜᵢ of each live hypothesis
    bonus = [[0.0] * K for _ in range(batch)]  # coverage penalty of each live hypothesis
    for t in range(max(max_len)):
        log_probs, state, attn = model.step(y, state, memory)  # (B*K, V), state, (B*K, S)
        if coverage_penalty:
            coverage = coverage + attn.float()  # what each parent has attended to, this step included
            bonus = coverage_score(coverage, memory.mask, coverage_penalty).view(batch, K).tolist()
        step = _expand(scores, log_probs, K, cfg.eos_id)
        rows = (base + step.next_beam).view(-1)  # (B*K,) flat row of each survivor's parent
        history.add(step.next_tok, step.next_beam, log_probs[rows, step.next_tok.view(-1)].view(batch, K),
                    log_probs[:, cfg.eos_id], attn, log_probs.topk(candidates, dim=-1) if candidates else None)
        ends.record(t, step, bonus, length_penalty, max_len)
        if coverage_penalty:
            coverage = coverage[rows]
        if all(ends.done):
            break
        scores = step.next_scores.masked_fill(torch.tensor(ends.done, device=device)[:, None], float("-inf"))
        state = state.select(rows)
        y = step.next_tok.view(-1)
    results = []
    for b in range(batch):
        slots = slice(b * K, (b + 1) * K)
        ranked = ends.ranked(b, nbest, length_penalty,
                             lambda: coverage_score(coverage[slots], memory.mask[slots], coverage_penalty).tolist())
        hyps = [history.backtrack(b, K, step, beam, score, memory.mask, cfg.eos_id) for score, step, beam in ranked]
        results.append(BeamResult(hyps, ends.trees[b] if record_tree else []))
    return results


class _Expansion(NamedTuple):
    """One step's 2K best extensions of each sentence, (B, 2K), and the K of them that live on, (B, K)."""

    scores: Tensor  # cumulative log-probability
    beam: Tensor  # the beam slot each extends
    tok: Tensor  # the piece it adds
    eos: Tensor  # it adds </s>
    keep: Tensor  # (B, K) indices into the 2K of those that live on, best first
    next_beam: Tensor
    next_tok: Tensor
    next_scores: Tensor


def _expand(scores: Tensor, log_probs: Tensor, K: int, eos_id: int) -> _Expansion:
    """scores (B, K) of the live hypotheses, log_probs (B*K, V) of their next pieces -> the extensions."""
    batch, vocab = scores.size(0), log_probs.size(-1)
    total = (scores.view(-1, 1) + log_probs).view(batch, K * vocab)  # (B, K*V)
    cand_scores, cand_index = total.topk(2 * K, dim=-1)  # (B, 2K): room for K that do not end
    cand_beam, cand_tok = cand_index // vocab, cand_index % vocab
    is_eos = cand_tok == eos_id
    rank = torch.arange(2 * K, device=scores.device).expand(batch, -1) + is_eos.long() * (2 * K)  # eos ranked last
    keep = rank.topk(K, dim=-1, largest=False).indices.sort(dim=-1).values  # (B, K), best first
    return _Expansion(cand_scores, cand_beam, cand_tok, is_eos, keep, cand_beam.gather(1, keep),
                      cand_tok.gather(1, keep), cand_scores.gather(1, keep))


class _Endings:
    """Per sentence: its finished hypotheses (score, step, beam), whether it is done, and its search tree."""

    def __init__(self, batch: int, K: int, bos_id: int, record_tree: bool) -> None:
        self.K, self.record_tree = K, record_tree
        self.finished: list[list[tuple[float, int, int]]] = [[] for _ in range(batch)]
        self.live_at_end: list[tuple[int, list[float]] | None] = [None] * batch
        self.done = [False] * batch
        self.trees = [[dict(step=0, parent=-1, piece="", id=bos_id, logprob=0.0, status="kept")]
                      for _ in range(batch)]
        self.node_of_beam = [[0] * K for _ in range(batch)]

    def record(self, t: int, step: _Expansion, bonus: list[list[float]], length_penalty: float,
               max_len: list[int]) -> None:
        """An </s> among the K best extensions finishes a hypothesis; a sentence with K of them, or at its
        length limit, is done (its live hypotheses are kept in case none finished)."""
        K = self.K
        c_scores, c_beam, c_tok, c_eos, kept = (step.scores.tolist(), step.beam.tolist(), step.tok.tolist(),
                                                step.eos.tolist(), step.keep.tolist())
        live_scores = step.next_scores.tolist()
        for b in range(len(self.done)):
            if self.done[b]:
                continue
            for j in range(K):
                if c_eos[b][j] and c_scores[b][j] > float("-inf"):
                    self.finished[b].append((c_scores[b][j] / length_norm(t + 1, length_penalty)
                                             + bonus[b][c_beam[b][j]], t, c_beam[b][j]))
            if self.record_tree:
                self.node_of_beam[b] = _grow_tree(self.trees[b], self.node_of_beam[b], t, K, c_scores[b],
                                                  c_beam[b], c_tok[b], c_eos[b], kept[b])
            if len(self.finished[b]) >= K or t + 1 >= max_len[b]:
                self.done[b] = True
                self.live_at_end[b] = (t, live_scores[b])

    def ranked(self, b: int, nbest: int, length_penalty: float, live_bonus: Callable[[], list[float]]
               ) -> list[tuple]:
        """The nbest of sentence b, best first; if nothing ended, its live hypotheses (beam = -1 - slot)."""
        if not self.finished[b] and self.live_at_end[b] is not None:
            step, live = self.live_at_end[b]
            live_bonus = live_bonus()
            self.finished[b] = [(s / length_norm(step + 1, length_penalty) + live_bonus[j], step, -1 - j)
                                for j, s in enumerate(live) if s > float("-inf")]
        return sorted(self.finished[b], key=lambda f: -f[0])[:max(nbest, 1)]


def _grow_tree(tree, node_of_beam, t, K, c_scores, c_beam, c_tok, c_eos, kept) -> list[int]:
    """Add this step's 2K candidates to one sentence's tree; return the node of each surviving beam."""
    new_nodes = [0] * K
    for j in range(2 * K):
        if c_scores[j] == float("-inf"):
            continue
        status = "finished" if c_eos[j] and j < K else "kept" if j in kept else "pruned"
        tree.append(dict(step=t + 1, parent=node_of_beam[c_beam[j]], piece="", id=c_tok[j],
                         logprob=c_scores[j], status=status))
        if j in kept:
            new_nodes[kept.index(j)] = len(tree) - 1
    return new_nodes


class _BeamHistory:
    """Per step: the survivors' tokens and parents (B, K), their log-probs, </s> log-probs, α and top-k."""

    def __init__(self) -> None:
        self.tok, self.parent, self.logp, self.eos_logp, self.alpha, self.top = [], [], [], [], [], []

    def add(self, tok, parent, logp, eos_logp, alpha, top) -> None:
        self.tok.append(tok.cpu())
        self.parent.append(parent.cpu())
        self.logp.append(logp.float().cpu())
        self.eos_logp.append(eos_logp.float().cpu())
        self.alpha.append(alpha.float().cpu())
        self.top.append(None if top is None else (top.indices.cpu(), top.values.float().exp().cpu()))

    def backtrack(self, b: int, K: int, step: int, beam: int, score: float, mask: Tensor, eos_id: int) -> Decoded:
        """beam >= 0: the hypothesis took </s> at `step` from beam slot `beam`;
        beam < 0: the live hypothesis in slot -1-beam after `step`, unfinished."""
        ids, logps, rows = [], [], []
        if beam >= 0:
            ids.append(eos_id)
            logps.append(float(self.eos_logp[step][b * K + beam]))
            rows.append(beam)
            pos, t = beam, step - 1
        else:
            pos, t = -1 - beam, step
        while t >= 0:
            ids.append(int(self.tok[t][b, pos]))
            logps.append(float(self.logp[t][b, pos]))
            pos = int(self.parent[t][b, pos])
            rows.append(pos)
            t -= 1
        ids.reverse(), logps.reverse(), rows.reverse()
        length = int(mask[b * K].sum())
        alpha = np.stack([self.alpha[t][b * K + r, :length].numpy() for t, r in enumerate(rows)])
        has_top = self.top and self.top[0] is not None
        top_ids = np.stack([self.top[t][0][b * K + r].numpy() for t, r in enumerate(rows)]) if has_top else None
        top_probs = np.stack([self.top[t][1][b * K + r].numpy() for t, r in enumerate(rows)]) if has_top else None
        return Decoded(ids=ids, alpha=alpha, step_logprobs=logps,
                       top_ids=top_ids if has_top else np.zeros((len(ids), 0), int),
                       top_probs=top_probs if has_top else np.zeros((len(ids), 0)),
                       score=score, finished=beam >= 0)
