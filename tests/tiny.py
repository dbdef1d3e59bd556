"""Build tiny checkpoints for tests (and for the app/bench smoke runs)."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import sentencepiece as spm
import torch

from s2s.card import model_card
from s2s.checkpoint import save_checkpoint
from s2s.config import Config
from s2s.data import Batch, make_batch
from s2s.model import Seq2Seq
from s2s.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer
from s2s.train import encode_pairs

TOY = Path(__file__).resolve().parent / "data" / "toy_en_de.tsv"
BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench_script(name: str):
    """A script of bench/ (not a package) imported as a module, to test its functions."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_recipe(name: str, data: dict, dropout: float = 0.0, **train) -> str:
    """A recipe (TOML text) for a 32-unit model on the CPU: what the CLI, data and torchrun tests train.
    data: the [data] keys besides the 400-piece vocabularies; train: [train] keys over the test defaults."""
    data = {"src_vocab_size": 400, "tgt_vocab_size": 400, **data}
    model = {"emb_size": 32, "encoder_hidden_size": 32, "hidden_size": 32, "attentional_size": 32,
             "dropout": dropout}
    train = {"batch_tokens": 300, "patience": 0, "threads": 1, "half": False, **train}
    table = lambda values: "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())  # noqa: E731
    return f"name = {json.dumps(name)}\n[data]\n{table(data)}[model]\n{table(model)}[train]\n{table(train)}"


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


APP_MODELS = ("html-en-de", "tiny-en-de")  # what conftest.app_server serves, in the app's order
# A checkpoint whose vocabularies hold the literal piece `<b>x</b>`: the browser must show it as text.
HTML_PIECE = "<b>x</b>"
HTML_SENTENCE = f"A {HTML_PIECE} dog."


def html_tokenizer(lines: list[str]) -> Tokenizer:
    """A tiny SentencePiece model in which `<b>x</b>` is one piece (a user-defined symbol)."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=400, model_type="bpe", character_coverage=1.0,
        byte_fallback=True, hard_vocab_limit=False, pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        user_defined_symbols=[HTML_PIECE], num_threads=1, minloglevel=2)
    return Tokenizer(model.getvalue())


def make_html_checkpoint(folder: str | Path) -> Path:
    torch.manual_seed(0)
    pairs = toy_pairs()[:20] + [(HTML_SENTENCE, f"Ein {HTML_PIECE} Hund.")] * 2
    source = html_tokenizer([s for s, _ in toy_pairs()] + [HTML_SENTENCE])
    target = html_tokenizer([t for _, t in toy_pairs()] + [f"Ein {HTML_PIECE} Hund."])
    model = Seq2Seq(tiny_config(source, target))
    overfit(model, encode_pairs(pairs, source, target, model.config.max_src_tokens), steps=120)
    training = {"recipe": {"name": Path(folder).name, "corpus": "toy"}, "state": {}}
    return save_checkpoint(folder, model, source, target, card=model_card(model.config, training), training=training)


def stop_training_at(command: list[str], log: Path, update: int, stop: signal.Signals) -> subprocess.Popen:
    """Run a training command (it logs JSON lines to `log`) until it logs `update`, then send it `stop` and
    wait; returns the finished process with its .output (stdout and stderr together)."""
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        while not (log.exists() and any(json.loads(line)["step"] >= update for line in log.read_text().splitlines())):
            assert job.poll() is None and time.monotonic() < deadline, f"training did not reach update {update}"
            time.sleep(0.2)
        job.send_signal(stop)
        job.output, _ = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)  # the process group of the job started above, nothing else
    return job
