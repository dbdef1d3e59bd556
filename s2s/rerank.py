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

from .data import make_batch
from .search import Decoded

if TYPE_CHECKING:
    from .api import Translator


@torch.inference_mode()
def back_logprobs(reverse: "Translator", sources: Sequence[str], translations: Sequence[str],
                  batch_size: int = 128) -> list[float]:
    """Per pair, the reverse model's mean log p(source piece | translation), </s> included: how well the
    translation explains its source (0 is perfect; lower is worse)."""
    model, config = reverse.model, reverse.config
    # the reverse model reads the translation and is taught the source, as in training (s2s.data.make_batch)
    examples = [(reverse.encode_source(translation)[0], reverse.target_tokenizer.encode(source)[:config.max_src_tokens])
                for source, translation in zip(sources, translations)]
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))  # similar lengths share a batch
    scores = [0.0] * len(examples)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = make_batch([examples[i] for i in chunk], config.pad_id, config.bos_id, config.eos_id).to(reverse.device)
        log_probs = torch.log_softmax(model(batch.src, batch.src_lengths, batch.tgt_in).float(), dim=-1)  # (B, T, V)
        real = batch.tgt_out != config.pad_id  # (B, T): x₁..x_T and </s>
        picked = log_probs.gather(2, batch.tgt_out[:, :, None]).squeeze(2).masked_fill(~real, 0.0)  # (B, T)
        for i, mean in zip(chunk, (picked.sum(1) / real.sum(1)).tolist()):
            scores[i] = mean
    return scores


def rerank(nbest: Sequence[Decoded], back: Sequence[float], weight: float) -> list[Decoded]:
    """The hypotheses best first by score + weight · back, each with its `back_logprob` and its new score."""
    scored = [replace(h, score=h.score + weight * b, back_logprob=b) for h, b in zip(nbest, back)]
    return sorted(scored, key=lambda h: -h.score)
