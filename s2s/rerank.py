"""Reranking a beam's n-best by the model that translates back (noisy-channel reranking).

The forward score log p(y | x) does not ask whether y says everything x said: a translation that drops a
phrase is shorter and often scores well. The reverse model asks exactly that: log p(x | y) is low when y
leaves part of x out, because x's pieces cannot be predicted from y. Each of the beam's finished
hypotheses is ranked by

    score(y) = log p(y | x) / lp(|y|) + β·coverage  +  λ · log p(x | y) / |x|

(the direct + channel form of Yee et al. 2019, "Simple and Effective Noisy Channel Modeling for Neural
Machine Translation", without their language model), with |x| the source's pieces under the reverse
model and λ chosen on validation data (bench/tune_decoding.py, stored as config.reverse_weight).

Search outside the model: the beam runs as always and only its finished hypotheses are reordered. The
reverse model scores a pair by teacher forcing (`Seq2Seq.forward`, the fused form of `step`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

import torch

from .search import Decoded

if TYPE_CHECKING:
    from .api import Translator


@torch.inference_mode()
def back_logprobs(reverse: "Translator", sources: Sequence[str], translations: Sequence[str],
                  batch_size: int = 128) -> list[float]:
    """Per pair, the reverse model's mean log p(source piece | translation), </s> included: how well the
    translation explains its source (0 is perfect; lower is worse)."""
    model, config = reverse.model, reverse.config
    inputs = [reverse.encode_source(text)[0] for text in translations]  # the translation is its source
    outputs = [reverse.target_tokenizer.encode(text)[:config.max_src_tokens] + [config.eos_id] for text in sources]
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))  # similar lengths share a batch
    scores = [0.0] * len(inputs)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        src = _padded([inputs[i] for i in chunk], config.pad_id)  # (B, S)
        gold = _padded([outputs[i] for i in chunk], config.pad_id)  # (B, T): x₁..x_T, </s> last
        tgt_in = torch.cat([torch.full_like(gold[:, :1], config.bos_id), gold[:, :-1]], dim=1)  # <s> x₁..x_{T-1}
        lengths = torch.tensor([len(inputs[i]) for i in chunk])
        log_probs = torch.log_softmax(model(src.to(reverse.device), lengths.to(reverse.device),
                                            tgt_in.to(reverse.device)).float(), dim=-1)  # (B, T, V)
        gold = gold.to(reverse.device)
        picked = log_probs.gather(2, gold[:, :, None]).squeeze(2).masked_fill(gold == config.pad_id, 0.0)  # (B, T)
        means = picked.sum(1) / (gold != config.pad_id).sum(1)
        for i, mean in zip(chunk, means.tolist()):
            scores[i] = mean
    return scores


def rerank(nbest: Sequence[Decoded], back: Sequence[float], weight: float) -> list[Decoded]:
    """The hypotheses best first by score + weight · back, each with its `back_logprob` and its new score."""
    scored = [replace(h, score=h.score + weight * b, back_logprob=b) for h, b in zip(nbest, back)]
    return sorted(scored, key=lambda h: -h.score)


def _padded(rows: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, :len(row)] = torch.tensor(list(row), dtype=torch.long)
    return out
