"""The training recipe: everything needed to reproduce a model from raw data, read from configs/<name>.toml,
and the train / val splits it names.

A recipe names its data either by corpus (`dataset = "multi30k"`, `tatoeba_dataset = "tatoeba-eng-deu"`: found
by s2s.datasets.locate in --data, $S2S_DATA, the user cache, ../shared/data) or by path (`data_path`,
`tatoeba_path`: read as written when the path exists; a missing path into a data root, such as
`../shared/data/multi30k`, is looked for by its corpus name in the same order)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from . import data as data_mod
from . import datasets
from .config import Config
from .tokenizer import Tokenizer


@dataclass
class Recipe:
    """Everything needed to reproduce a model from raw data. Read from configs/<name>.toml."""

    name: str = "model"
    corpus: str = "multi30k"  # multi30k | tatoeba | pairs | mixed (tatoeba + multi30k) | stream (s2s.stream)
    data_path: str = "../shared/data/multi30k"  # a folder (multi30k, mixed) or a file (tatoeba, pairs, stream)
    tatoeba_path: str = ""  # mixed: the Tatoeba TSV
    multi30k_weight: int = 1  # mixed: how many times Multi30k train is repeated per epoch
    joined_fraction: float = 0.0  # mixed: joined Tatoeba pairs (2-3 lines as one) added per Tatoeba pair
    dataset: str = ""  # a corpus name (s2s data list) instead of data_path
    tatoeba_dataset: str = ""  # mixed: a corpus name instead of tatoeba_path
    val_path: str = ""  # stream: validation pairs (TSV, or a prefix of PREFIX.<lang> files); "" = the first n_val pairs
    buffer_pairs: int = 200_000  # stream: pairs read, shuffled and bucketed at a time (bounds memory)
    tokenizer_sample: int = 1_000_000  # stream: pairs sampled (uniformly, in one pass) to train SentencePiece
    src_lang: str = "en"
    tgt_lang: str = "de"
    split_seed: int = 1234  # tatoeba/pairs: split by source sentence
    n_val: int = 1000
    n_test: int = 2000
    max_words: int = 80
    src_vocab_size: int = 8000
    tgt_vocab_size: int = 8000
    model: dict = field(default_factory=dict)  # Config fields
    batch_tokens: int = 2000
    lr: float = 1e-3
    clip: float = 1.0
    label_smoothing: float = 0.1
    max_epochs: int = 30
    max_minutes: float = 0.0  # 0 = no time limit
    max_steps: int = 0  # 0 = no step limit
    eval_every: int = 0  # steps; 0 = once per epoch
    val_size: int = 0  # 0 = whole validation set for BLEU
    patience: int = 6  # evaluations without a better BLEU before stopping
    lr_decay: float = 0.5
    lr_patience: int = 1  # evaluations without improvement before decaying
    min_lr: float = 1e-5
    seed: int = 1
    threads: int = 0  # 0 = all cores
    half: bool = True  # store fp16 weights in the checkpoint
    keep_saves: bool = False  # also keep each evaluation's weights in OUTPUT.saves/step-N (for `s2s average`)
    output: str = "checkpoints/model"
    description: str = ""

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        with open(path, "rb") as f:
            raw = tomllib.load(f)
        flat: dict = {}
        for key, value in raw.items():
            if key == "model" or not isinstance(value, dict):
                flat[key] = value
            else:
                flat.update(value)  # [data], [train] sections are for reading only
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ValueError(f"{path}: unknown recipe keys {', '.join(unknown)}")
        return cls(**flat)


def with_data(recipe: Recipe, data_root: str | None = None) -> Recipe:
    """The recipe with data_path and tatoeba_path pointing at this machine's copy of its corpora."""
    return replace(recipe, data_path=find_data(recipe.dataset, recipe.data_path, data_root),
                   tatoeba_path=find_data(recipe.tatoeba_dataset, recipe.tatoeba_path, data_root))


def find_data(name: str, path: str, data_root: str | None = None) -> str:
    """A corpus name -> its path here; a path -> itself if it exists (and no --data was given), else the
    corpus it names looked for like a name; anything else unchanged (the reader says what is missing)."""
    if name:
        return str(datasets.locate(name, data_root))
    if not path or (Path(path).exists() and data_root is None):
        return path
    known = datasets.named_by_path(path)
    return str(datasets.locate(known, data_root)) if known else path


def load_splits(recipe: Recipe) -> tuple[dict[str, list[tuple[str, str]]], dict]:
    """train / val / test pairs for a recipe, cleaned; plus a report of what was dropped."""
    if recipe.corpus == "multi30k":
        splits = {name: data_mod.read_multi30k(recipe.data_path, name, recipe.src_lang, recipe.tgt_lang)
                  for name in ("train", "val")}
    elif recipe.corpus == "mixed":
        splits = data_mod.mixed_corpus(recipe.tatoeba_path, recipe.data_path, recipe.src_lang, recipe.tgt_lang,
                                       recipe.n_val, recipe.n_test, recipe.split_seed, recipe.multi30k_weight,
                                       recipe.joined_fraction)
        splits.pop("test")
    elif recipe.corpus in ("tatoeba", "pairs"):
        if recipe.corpus == "tatoeba":
            pairs = data_mod.read_tatoeba(recipe.data_path, recipe.src_lang)
        else:
            pairs, _ = data_mod.read_user_pairs(recipe.data_path, max_words=recipe.max_words)
        splits = data_mod.split_by_source(pairs, recipe.n_val, recipe.n_test, recipe.split_seed)
        splits.pop("test")  # held out: only `s2s evaluate` reads it
    else:
        raise ValueError(f"unknown corpus {recipe.corpus!r} (multi30k, tatoeba, pairs, mixed; stream is read "
                         "by s2s.stream, not here)")
    report = {}
    for name in splits:
        splits[name], dropped = data_mod.clean_pairs(splits[name], recipe.max_words)
        report[name] = dropped.summary()
    return splits, report


def build_config(recipe: Recipe, source: Tokenizer, target: Tokenizer) -> Config:
    return Config(**{**recipe.model, "src_vocab_size": source.vocab_size, "tgt_vocab_size": target.vocab_size,
                     "src_lang": recipe.src_lang, "tgt_lang": recipe.tgt_lang})
