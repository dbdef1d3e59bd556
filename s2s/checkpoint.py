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
import math
import shutil
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch.overrides import TorchFunctionMode

from .config import Config, ConfigError
from .files import atomic_folder
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
# What a checkpoint from anywhere may ask this loader for. The bundled models have ~7-10 million parameters.
MAX_PARAMETERS = 100_000_000  # 400 MB in fp32
MAX_TOKENIZER_BYTES = 20 * 1024 * 1024  # a 65k-piece SentencePiece model is ~1.5 MB
MAX_HEADER_BYTES = 1024 * 1024  # the safetensors header (JSON: names, dtypes, shapes); ours is ~3 KB
WEIGHT_DTYPES = ("F32", "F16", "BF16")


class CheckpointError(ValueError):
    """A folder that is not a usable s2s checkpoint; the message says what is wrong."""


def save_checkpoint(folder: str | Path, model: Seq2Seq, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer,
                    card: str | None = None, training: dict | None = None, half: bool = False) -> Path:
    """Write a checkpoint folder atomically. half=True stores fp16 weights (loading restores fp32)."""
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        write_checkpoint(tmp, model, source_tokenizer, target_tokenizer, card, training, half, keep_from=folder)
    return folder


def write_checkpoint(folder: Path, model: Seq2Seq, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer,
                     card: str | None = None, training: dict | None = None, half: bool = False,
                     keep_from: Path | None = None) -> None:
    """The checkpoint files into an existing (temporary) folder; a card or training record that is not
    given is copied from `keep_from`, the folder being replaced."""
    model.config.save(folder / CONFIG_FILE)
    state = {k: v.detach().to("cpu", torch.float16 if half else torch.float32).contiguous()
             for k, v in model.state_dict().items() if k != "W_s.weight" or not model.config.tie_embeddings}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt", "library": "s2s"})
    source_tokenizer.save(folder / SOURCE_TOKENIZER)
    target_tokenizer.save(folder / TARGET_TOKENIZER)
    texts = {CARD_FILE: card, TRAINING_FILE: None if training is None else json.dumps(training, indent=2) + "\n"}
    for name, text in texts.items():
        if text is not None:
            (folder / name).write_text(text, encoding="utf-8")
        elif keep_from is not None and (keep_from / name).exists():
            shutil.copy2(keep_from / name, folder / name)


def average_checkpoints(folders: list[str | Path], output: str | Path, half: bool = False) -> Path:
    """Write the mean of the weights of `folders` (snapshots of one training run) as a checkpoint at `output`.

    Averaging the last few saves of a run smooths the noise of the last updates (Vaswani et al. 2017 average
    the last 5 or 20); it needs one architecture and one pair of tokenizers, checked here. The training record
    is the last folder's, with the folders averaged added; the card is the last folder's."""
    folders = [check_folder(folder) for folder in folders]
    if len(folders) < 2:
        raise CheckpointError("averaging needs at least two checkpoints of the same run")
    configs = [json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")) for folder in folders]
    tokenizers = [((folder / SOURCE_TOKENIZER).read_bytes(), (folder / TARGET_TOKENIZER).read_bytes())
                  for folder in folders]
    for folder, config, pair in zip(folders[1:], configs[1:], tokenizers[1:]):
        if config != configs[0]:
            raise CheckpointError(f"{folder} has another architecture than {folders[0]} (config.json differs)")
        if pair != tokenizers[0]:
            raise CheckpointError(f"{folder} has other tokenizers than {folders[0]}: not the same run")
    model, source, target = load_checkpoint(folders[0])
    total = {name: value.double() for name, value in model.state_dict().items()}
    for folder in folders[1:]:
        for name, value in load_checkpoint(folder)[0].state_dict().items():
            total[name] += value.double()
    model.load_state_dict({name: (value / len(folders)).float() for name, value in total.items()})
    last = folders[-1] / TRAINING_FILE
    training = json.loads(last.read_text(encoding="utf-8")) if last.is_file() else {}
    training["averaged"] = [str(folder) for folder in folders]
    card = (folders[-1] / CARD_FILE).read_text(encoding="utf-8") if (folders[-1] / CARD_FILE).is_file() else None
    return save_checkpoint(output, model, source, target, card=card, training=training, half=half)


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
    """Load (model in eval mode, source tokenizer, target tokenizer); every weight must match.

    Nothing is built until the files agree: config.json within its caps, the parameter count within
    MAX_PARAMETERS, and the safetensors header (names, shapes, dtypes) equal to what the config describes.
    So a config.json asking for a huge model is refused in milliseconds, not after allocating gigabytes.
    """
    folder = check_folder(folder)
    try:
        config = Config.load(folder / CONFIG_FILE)
    except ConfigError as err:
        raise CheckpointError(f"{folder / CONFIG_FILE}: {err}") from None
    expected = expected_shapes(config)
    n_parameters = sum(math.prod(shape) for shape in expected.values())
    if n_parameters > MAX_PARAMETERS:
        raise CheckpointError(f"{folder / CONFIG_FILE}: this model would have {n_parameters:,} parameters; "
                              f"s2s loads at most {MAX_PARAMETERS:,}")
    compare_shapes(expected, read_header(folder / WEIGHTS_FILE), str(folder))
    for name in (SOURCE_TOKENIZER, TARGET_TOKENIZER):
        if (folder / name).stat().st_size > MAX_TOKENIZER_BYTES:
            raise CheckpointError(f"{folder / name} is larger than {MAX_TOKENIZER_BYTES // 2**20} MB; "
                                  "a SentencePiece model is a few MB at most")
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


class _SkipInit(TorchFunctionMode):
    """Turn torch.nn.init and in-place random fills into no-ops. Used only with the meta device: there they
    have nothing to fill, yet torch's meta normal_ imports the compiler stack (~1.5 s) on first use."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init" or getattr(func, "__name__", "") in ("normal_", "uniform_"):
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def expected_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor model.safetensors must hold for this config, without allocating:
    the model is built on the meta device (the tied output projection W_s.weight is not stored)."""
    with torch.device("meta"), _SkipInit():
        model = Seq2Seq(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "W_s.weight" or not config.tie_embeddings}


def read_header(path: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape from the safetensors header alone (no tensor is read); every dtype must be a float type."""
    try:
        with open(path, "rb") as f:
            prefix = f.read(8)
        if len(prefix) < 8 or struct.unpack("<Q", prefix)[0] > MAX_HEADER_BYTES:
            raise CheckpointError(f"{path} cannot be read: its safetensors header is missing or larger than "
                                  f"{MAX_HEADER_BYTES // 2**20} MB")
        shapes = {}
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                tensor = f.get_slice(name)
                if tensor.get_dtype() not in WEIGHT_DTYPES:
                    raise CheckpointError(f"{path}: weight {name[:100]} has dtype {tensor.get_dtype()}; "
                                          f"s2s loads {', '.join(WEIGHT_DTYPES)} weights")
                shapes[name] = tuple(tensor.get_shape())
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} cannot be read: {err}") from None
    return shapes


def compare_shapes(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], where: str) -> None:
    """Strict match: name every missing, unexpected and mis-shaped tensor."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = [f"{k} {found[k]} != {shape}" for k, shape in expected.items() if k in found and found[k] != shape]
    problems = []
    if missing:
        problems.append(f"missing weights: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected weights: {_listing(unexpected)}")
    if misshaped:
        problems.append(f"weights with the wrong shape: {_listing(misshaped, sep='; ')}")
    if problems:
        raise CheckpointError(f"{where}: weights do not match config.json ({' | '.join(problems)})")


def load_weights(model: Seq2Seq, weights: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Strict load: name every missing, unexpected and mis-shaped tensor."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()
                if k != "W_s.weight" or not model.config.tie_embeddings}
    compare_shapes(expected, {k: tuple(v.shape) for k, v in weights.items()}, where)
    dtype = next(model.parameters()).dtype
    model.load_state_dict({k: v.to(dtype) for k, v in weights.items()}, strict=False)


def _listing(names: list[str], limit: int = 10, sep: str = ", ") -> str:
    """At most `limit` names (they may come from a file), each cut to 100 characters."""
    shown = sep.join(name[:100] for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
