"""Checkpoint folders: exactly what goes to the Hub.

    config.json          the architecture (s2s.config.Config)
    model.safetensors    the weights; pickles are never loaded
    source.model         SentencePiece model of the source language
    target.model         SentencePiece model of the target language
    README.md            model card
    training.json        (optional) how it was trained and its scores

Writes go to a temporary sibling folder that is renamed into place, so a crash
never leaves a half-written checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import Config, ConfigError
from .model import Seq2Seq
from .tokenizer import Tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SOURCE_TOKENIZER = "source.model"
TARGET_TOKENIZER = "target.model"
CARD_FILE = "README.md"
TRAINING_FILE = "training.json"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, SOURCE_TOKENIZER, TARGET_TOKENIZER)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class CheckpointError(ValueError):
    """A folder that is not a usable s2s checkpoint; the message says what is wrong."""


def save_checkpoint(folder: str | Path, model: Seq2Seq, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer,
                    card: str | None = None, training: dict | None = None, half: bool = False) -> Path:
    """Write a checkpoint folder atomically. half=True stores fp16 weights (loading restores fp32)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.config.save(tmp / CONFIG_FILE)
        state = {k: v.detach().to("cpu", torch.float16 if half else torch.float32).contiguous()
                 for k, v in model.state_dict().items() if k != "W_s.weight" or not model.config.tie_embeddings}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "library": "s2s"})
        source_tokenizer.save(tmp / SOURCE_TOKENIZER)
        target_tokenizer.save(tmp / TARGET_TOKENIZER)
        if card is not None:
            (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        elif (folder / CARD_FILE).exists():
            shutil.copy2(folder / CARD_FILE, tmp / CARD_FILE)
        if training is not None:
            (tmp / TRAINING_FILE).write_text(json.dumps(training, indent=2) + "\n", encoding="utf-8")
        elif (folder / TRAINING_FILE).exists():
            shutil.copy2(folder / TRAINING_FILE, tmp / TRAINING_FILE)
        os.chmod(tmp, 0o755)
        for path in tmp.iterdir():
            os.chmod(path, 0o644)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def check_folder(folder: str | Path) -> Path:
    """Raise CheckpointError unless folder has every file an s2s checkpoint needs (and no pickle only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if WEIGHTS_FILE in missing and any(p.suffix in PICKLE_SUFFIXES for p in folder.iterdir()):
        raise CheckpointError(f"{folder} has only pickle weights (.bin/.pt); s2s loads safetensors only, "
                              "because a pickle can run code when it is loaded")
    if missing:
        raise CheckpointError(f"{folder} is not an s2s checkpoint: missing {', '.join(missing)}")
    return folder


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu") -> tuple[Seq2Seq, Tokenizer, Tokenizer]:
    """Load (model in eval mode, source tokenizer, target tokenizer); every weight must match."""
    folder = check_folder(folder)
    try:
        config = Config.load(folder / CONFIG_FILE)
    except ConfigError as err:
        raise CheckpointError(f"{folder / CONFIG_FILE}: {err}") from None
    try:
        source, target = Tokenizer.load(folder / SOURCE_TOKENIZER), Tokenizer.load(folder / TARGET_TOKENIZER)
    except (RuntimeError, OSError, ValueError) as err:
        raise CheckpointError(f"{folder}: tokenizer model cannot be read ({err})") from None
    if source.vocab_size != config.src_vocab_size or target.vocab_size != config.tgt_vocab_size:
        raise CheckpointError(
            f"{folder}: tokenizer vocabularies ({source.vocab_size}, {target.vocab_size}) do not match config "
            f"({config.src_vocab_size}, {config.tgt_vocab_size})")
    try:
        weights = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{folder / WEIGHTS_FILE} cannot be read: {err}") from None
    model = Seq2Seq(config)
    load_weights(model, weights, str(folder))
    return model.to(device).eval(), source, target


def load_weights(model: Seq2Seq, weights: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Strict load: name every missing, unexpected and mis-shaped tensor."""
    expected = {k: v for k, v in model.state_dict().items()
                if k != "W_s.weight" or not model.config.tie_embeddings}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    misshaped = [f"{k} {tuple(weights[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                 if k in weights and weights[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing weights: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected weights: {', '.join(unexpected)}")
    if misshaped:
        problems.append(f"weights with the wrong shape: {'; '.join(misshaped)}")
    if problems:
        raise CheckpointError(f"{where}: weights do not match config.json ({' | '.join(problems)})")
    dtype = next(model.parameters()).dtype
    model.load_state_dict({k: v.to(dtype) for k, v in weights.items()}, strict=False)
