"""Build tiny checkpoints for tests (and for the app/bench smoke runs)."""
from __future__ import annotations

from pathlib import Path

import torch

from s2s.checkpoint import save_checkpoint
from s2s.config import Config
from s2s.data import Batch, make_batch
from s2s.model import Seq2Seq
from s2s.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer
from s2s.train import encode_pairs

TOY = Path(__file__).resolve().parent / "data" / "toy_en_de.tsv"


def toy_pairs() -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in TOY.read_text(encoding="utf-8").splitlines()]


def tiny_config(source: Tokenizer, target: Tokenizer, **overrides) -> Config:
    fields = dict(src_vocab_size=source.vocab_size, tgt_vocab_size=target.vocab_size, emb_size=32,
                  encoder_hidden_size=32, hidden_size=32, attentional_size=32, dropout=0.0, src_lang="en",
                  tgt_lang="de")
    fields.update(overrides)
    return Config(**fields)


def tiny_tokenizers(pairs=None) -> tuple[Tokenizer, Tokenizer]:
    pairs = pairs or toy_pairs()
    return Tokenizer.train([s for s, _ in pairs], 400), Tokenizer.train([t for _, t in pairs], 400)


def overfit(model: Seq2Seq, examples, steps: int, lr: float = 1e-2) -> float:
    """Full-batch Adam on a few examples; returns the last loss."""
    torch.manual_seed(0)
    batch: Batch = make_batch(examples, PAD_ID, BOS_ID, EOS_ID)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        loss = model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return float(loss.detach())


def make_tiny_checkpoint(folder: str | Path, steps: int = 120, n_pairs: int = 20, seed: int = 0, **config) -> Path:
    torch.manual_seed(seed)
    pairs = toy_pairs()
    source, target = tiny_tokenizers(pairs)
    model = Seq2Seq(tiny_config(source, target, **config))
    overfit(model, encode_pairs(pairs[:n_pairs], source, target, model.config.max_src_tokens), steps)
    return save_checkpoint(folder, model, source, target,
                           training={"recipe": {"name": "tiny", "corpus": "toy"}, "state": {}})
