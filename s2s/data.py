"""Corpus readers, cleaning with a report of what was dropped, the Tatoeba split, and token-based batches."""
from __future__ import annotations

import csv
import gzip
import io
import random
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import torch

from .tokenizer import BOS_ID, EOS_ID, PAD_ID

Pair = tuple[str, str]
MAX_FILE_BYTES = 50 * 1024 * 1024


class DataError(ValueError):
    """A data file that cannot be read as sentence pairs; the message says where and why."""


@dataclass
class DropReport:
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict = field(default_factory=dict)  # reason -> first line number seen

    def drop(self, reason: str, line: int | None = None) -> None:
        self.dropped[reason] += 1
        if line is not None:
            self.examples.setdefault(reason, line)

    def summary(self) -> str:
        if not self.dropped:
            return f"{self.kept} pairs kept, none dropped."
        parts = [f"{n} {reason}" + (f" (first at line {self.examples[reason]})" if reason in self.examples else "")
                 for reason, n in self.dropped.most_common()]
        return f"{self.kept} pairs kept; dropped {sum(self.dropped.values())}: " + "; ".join(parts) + "."


def normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def clean_pairs(pairs: Sequence[Pair], max_words: int = 100, line_numbers: Sequence[int] | None = None
                ) -> tuple[list[Pair], DropReport]:
    """NFC-normalise and drop empty or absurdly long pairs, counting why."""
    report, kept = DropReport(), []
    for k, (src, tgt) in enumerate(pairs):
        src, tgt = normalize(src), normalize(tgt)
        reason = drop_reason(src, tgt, max_words)
        if reason:
            report.drop(reason, line_numbers[k] if line_numbers else k + 1)
        else:
            kept.append((src, tgt))
    report.kept = len(kept)
    return kept, report


def drop_reason(src: str, tgt: str, max_words: int = 100) -> str:
    """Why a normalised pair is not trained on ("" when it is kept)."""
    if not src or not tgt:
        return "empty side"
    if len(src.split()) > max_words or len(tgt.split()) > max_words:
        return f"longer than {max_words} words"
    if len(src) > 20 * max_words or len(tgt) > 20 * max_words:
        return f"longer than {20 * max_words} characters"
    return ""


# ---------------------------------------------------------------------- corpora
def _read_lines_gz(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def read_multi30k(data_dir: str | Path, split: str, src_lang: str = "en", tgt_lang: str = "de") -> list[Pair]:
    """Line-aligned gzipped files {split}.{lang}.gz, e.g. test_2016_flickr.en.gz."""
    data_dir = Path(data_dir)
    paths = [data_dir / f"{split}.{lang}.gz" for lang in (src_lang, tgt_lang)]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path} not found (Multi30k splits: train, val, test_2016_flickr, "
                            "test_2017_flickr, test_2017_mscoco)")
    src, tgt = _read_lines_gz(paths[0]), _read_lines_gz(paths[1])
    if len(src) != len(tgt):
        raise DataError(f"{paths[0].name} has {len(src)} lines but {paths[1].name} has {len(tgt)}")
    return list(zip(src, tgt))


def read_tatoeba(path: str | Path, src_lang: str = "en") -> list[Pair]:
    """english<TAB>other[<TAB>attribution] lines, gzipped or not; English is the source unless src_lang says not."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    pairs = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 2:
                pairs.append((cols[0], cols[1]) if src_lang == "en" else (cols[1], cols[0]))
    return pairs


def split_by_source(pairs: Sequence[Pair], n_val: int = 1000, n_test: int = 2000, seed: int = 1234
                    ) -> dict[str, list[Pair]]:
    """Split so that every translation of one source sentence lands in one split (test stays unseen).

    Sources are sorted, shuffled with `seed`, and the first n_test go to test, the next n_val to val.
    """
    sources = sorted({normalize(src) for src, _ in pairs})
    random.Random(seed).shuffle(sources)
    test_set, val_set = set(sources[:n_test]), set(sources[n_test:n_test + n_val])
    out = {"train": [], "val": [], "test": []}
    for src, tgt in pairs:
        key = normalize(src)
        out["test" if key in test_set else "val" if key in val_set else "train"].append((src, tgt))
    return out


def drop_duplicates(pairs: Sequence[Pair]) -> list[Pair]:
    """Pairs in first-seen order, each (source, target) once after normalisation."""
    seen, kept = set(), []
    for src, tgt in pairs:
        key = (normalize(src), normalize(tgt))
        if key not in seen:
            seen.add(key)
            kept.append((src, tgt))
    return kept


def join_pairs(pairs: Sequence[Pair], count: int, seed: int, max_parts: int = 3) -> list[Pair]:
    """`count` new pairs, each 2 to max_parts random pairs joined with a space on both sides.

    Tatoeba lines are one short sentence each, so a model trained on them alone stops after the first
    sentence of what a visitor types and has never seen 30 words in a row; joined lines teach both.
    """
    rng = random.Random(seed)
    joined = []
    for _ in range(count if len(pairs) >= 2 else 0):
        parts = rng.sample(range(len(pairs)), min(len(pairs), rng.randint(2, max_parts)))
        joined.append((" ".join(pairs[i][0] for i in parts), " ".join(pairs[i][1] for i in parts)))
    return joined


def mixed_corpus(tatoeba_path: str | Path, multi30k_dir: str | Path, src_lang: str, tgt_lang: str,
                 n_val: int = 1000, n_test: int = 2000, split_seed: int = 1234, multi30k_weight: int = 1,
                 joined_fraction: float = 0.0) -> dict[str, list[Pair]]:
    """Tatoeba (everyday lines) + Multi30k (captions) for one direction.

    Tatoeba is split by *source* sentence (English for en→xx, the other language for xx→en), so no test
    source is seen in training. Multi30k keeps its own train/val. Training pairs are de-duplicated, pairs
    whose source is any Tatoeba or Multi30k test/val source are removed, and Multi30k train is repeated
    `multi30k_weight` times (the captions are a sixth of the pairs but most of the long sentences).
    `val` mixes both corpora in a seeded order, so a prefix of it samples both. `joined_fraction` adds that
    many joined Tatoeba pairs (join_pairs) per Tatoeba pair to train, and likewise to val from val's own.
    """
    if not 0 <= joined_fraction <= 4:
        raise ValueError(f"joined_fraction must be between 0 and 4, not {joined_fraction:g}")
    tatoeba = split_by_source(read_tatoeba(tatoeba_path, src_lang), n_val, n_test, split_seed)
    multi30k = {split: read_multi30k(multi30k_dir, split, src_lang, tgt_lang)
                for split in ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco")}
    held_out = {normalize(src) for name in ("val", "test") for src, _ in tatoeba[name]}
    held_out |= {normalize(src) for name, pairs in multi30k.items() if name != "train" for src, _ in pairs}
    def unseen(pairs: Sequence[Pair]) -> list[Pair]:
        return [(s, t) for s, t in drop_duplicates(pairs) if normalize(s) not in held_out]
    everyday = unseen(tatoeba["train"])
    train = (everyday + unseen(multi30k["train"]) * max(1, multi30k_weight)
             + join_pairs(everyday, round(joined_fraction * len(everyday)), split_seed))
    val = (tatoeba["val"] + multi30k["val"]
           + join_pairs(tatoeba["val"], round(joined_fraction * len(tatoeba["val"])), split_seed + 1))
    random.Random(split_seed).shuffle(val)
    return {"train": train, "val": val, "test": tatoeba["test"]}


def group_references(pairs: Sequence[Pair]) -> tuple[list[str], list[list[str]]]:
    """Unique sources (first-seen order) and, per source, all its references (for multi-reference BLEU)."""
    refs: dict[str, list[str]] = {}
    for src, tgt in pairs:
        refs.setdefault(src, []).append(tgt)
    return list(refs), list(refs.values())


# ---------------------------------------------------------------------- user files
def decode_text(data: bytes, name: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The bytes of an uploaded or read file as text; DataError for too big, binary or non-UTF-8 files."""
    if len(data) > max_bytes:
        raise DataError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {max_bytes // 1_000_000} MB")
    if b"\x00" in data[:8192]:
        raise DataError(f"{name} looks like a binary file, not text (it contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise DataError(f"{name} is not UTF-8 text (bad byte at line {line}); save it as UTF-8") from None


class PairRow(NamedTuple):
    """One sentence pair as read from a file or a text box."""

    source: str
    target: str
    line: int  # line (or CSV row) number, for messages and drop reports
    held_out: bool = False  # a third column marked it as a test pair


HELD_OUT_MARKS = {"test", "heldout", "held-out", "held out", "dev", "eval"}
TRAIN_MARKS = {"", "train", "training"}


def parse_pairs(text: str, name: str = "input", marks: bool = False) -> list[PairRow]:
    """TSV (source<TAB>target) or CSV (two columns, an optional header row 'source,target').

    Tab-separated when the name ends in .tsv or a tab appears in the first 50 lines. marks=True allows a third
    column: 'test' holds the pair out, 'train' or empty keeps it for training. Blank lines are skipped.
    """
    lines = text.splitlines()
    tabbed = name.endswith(".tsv") or any("\t" in line for line in [l for l in lines if l.strip()][:50])
    sep, what = ("tab", "source<TAB>target") if tabbed else ("comma", "source,target")
    allowed = (2, 3) if marks else (2,)
    if tabbed:
        numbered = [(n, line.split("\t")) for n, line in enumerate(lines, 1) if line.strip()]
    else:
        try:
            numbered = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text)), 1)
                        if row and any(cell.strip() for cell in row)]
        except csv.Error as err:
            raise DataError(f"{name} cannot be read as CSV: {err}") from None
    unit = "line" if tabbed else "row"
    rows = []
    for number, cols in numbered:
        if len(cols) not in allowed:
            raise DataError(f"{name}, {unit} {number}: expected 2 {sep}-separated columns ({what}"
                            f"{', optionally a third: test' if marks else ''}), "
                            f"found {len(cols)} column{'s' * (len(cols) != 1)}")
        if not tabbed and not rows and [c.strip().lower() for c in cols[:2]] in (["source", "target"], ["src", "tgt"]):
            continue  # header
        held_out = len(cols) == 3 and _is_held_out(cols[2], f"{name}, {unit} {number}")
        rows.append(PairRow(cols[0], cols[1], number, held_out))
    return rows


def _is_held_out(mark: str, where: str) -> bool:
    mark = mark.strip().lower()
    if mark not in HELD_OUT_MARKS | TRAIN_MARKS:
        raise DataError(f"{where}: the third column must be 'test' (held out) or 'train' (or empty), not {mark!r}")
    return mark in HELD_OUT_MARKS


def align_lines(source_text: str, target_text: str, source_name: str, target_name: str) -> list[PairRow]:
    """Two line-aligned texts (line n of one translates line n of the other) as pairs; blank lines skipped."""
    src, tgt = source_text.splitlines(), target_text.splitlines()
    if len(src) != len(tgt):
        raise DataError(f"{source_name} has {len(src)} lines but {target_name} has {len(tgt)}; the two files "
                        "must be line-aligned (line n of one translates line n of the other)")
    return [PairRow(s, t, n) for n, (s, t) in enumerate(zip(src, tgt), 1) if s.strip() or t.strip()]


def read_user_pairs(path: str | Path, second_path: str | Path | None = None, max_words: int = 100
                    ) -> tuple[list[Pair], DropReport]:
    """A TSV or CSV file of pairs, or two line-aligned text files (source, target)."""
    texts = []
    for file in [path] if second_path is None else [path, second_path]:
        file = Path(file)
        if not file.is_file():
            raise DataError(f"{file} not found")
        texts.append((decode_text(file.read_bytes(), file.name), file.name))
    rows = parse_pairs(*texts[0]) if len(texts) == 1 else align_lines(texts[0][0], texts[1][0], texts[0][1],
                                                                       texts[1][1])
    if not rows:
        raise DataError(f"{Path(path).name} holds no sentence pairs")
    return clean_pairs([(r.source, r.target) for r in rows], max_words, [r.line for r in rows])


# ---------------------------------------------------------------------- batches
@dataclass
class Batch:
    src: torch.Tensor  # (B, S) ids, padded
    src_lengths: torch.Tensor  # (B,)
    tgt_in: torch.Tensor  # (B, T) <s> y₁ .. y_{T-1}
    tgt_out: torch.Tensor  # (B, T) y₁ .. y_T (</s>), padded
    n_tokens: int  # real target tokens

    def to(self, device) -> "Batch":
        return Batch(self.src.to(device), self.src_lengths, self.tgt_in.to(device), self.tgt_out.to(device),
                     self.n_tokens)


def make_batch(examples: Sequence[tuple[list[int], list[int]]], pad_id: int, bos_id: int, eos_id: int) -> Batch:
    src_len = max(len(s) for s, _ in examples)
    tgt_len = max(len(t) for _, t in examples) + 1
    batch = len(examples)
    src = torch.full((batch, src_len), pad_id, dtype=torch.long)
    tgt_in = torch.full((batch, tgt_len), pad_id, dtype=torch.long)
    tgt_out = torch.full((batch, tgt_len), pad_id, dtype=torch.long)
    for b, (s, t) in enumerate(examples):
        src[b, :len(s)] = torch.tensor(s)
        tgt_in[b, :len(t) + 1] = torch.tensor([bos_id] + t)
        tgt_out[b, :len(t) + 1] = torch.tensor(t + [eos_id])
    lengths = torch.tensor([len(s) for s, _ in examples])
    return Batch(src, lengths, tgt_in, tgt_out, int(sum(len(t) + 1 for _, t in examples)))


def token_batches(examples: Sequence[tuple[list[int], list[int]]], max_tokens: int, seed: int,
                  pad_id: int = PAD_ID, bos_id: int = BOS_ID, eos_id: int = EOS_ID, shuffle: bool = True
                  ) -> Iterator[Batch]:
    """Length-bucketed batches of about max_tokens target tokens (padding included), in a seeded order.

    Sorting by length (with random tie-breaks) keeps padding small; the batches themselves are shuffled.
    """
    for indices in batch_indices(examples, max_tokens, seed, shuffle):
        yield make_batch([examples[i] for i in indices], pad_id, bos_id, eos_id)


def batch_indices(examples: Sequence[tuple[list[int], list[int]]], max_tokens: int, seed: int,
                  shuffle: bool = True) -> list[list[int]]:
    """The example indices of each token_batches batch, in order: the bucketing without the tensors."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    if shuffle:
        rng.shuffle(order)
    order.sort(key=lambda i: (len(examples[i][1]), len(examples[i][0])))
    batches, current, longest = [], [], 0
    for i in order:
        longest_if_added = max(longest, len(examples[i][1]) + 1, len(examples[i][0]))
        if current and longest_if_added * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, longest_if_added = [], max(len(examples[i][1]) + 1, len(examples[i][0]))
        current.append(i)
        longest = longest_if_added
    if current:
        batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches


Example = tuple[list[int], list[int]]  # (source ids + </s>, target ids)


class InMemoryBatches:
    """The trainer's batch source for a corpus held in memory: epoch e is token_batches with seed + e.

    A batch source yields, for one epoch from its batch `done` on, the examples of each (global) batch with
    the position after it: a dict that lets a resumed run start there ({} here: the count is enough).
    """

    def __init__(self, examples: Sequence[Example], batch_tokens: int, seed: int) -> None:
        self.examples, self.batch_tokens, self.seed = examples, batch_tokens, seed

    def batches(self, epoch: int, done: int = 0, position: dict | None = None
                ) -> Iterator[tuple[list[Example], dict]]:
        for indices in batch_indices(self.examples, self.batch_tokens, self.seed + epoch)[done:]:
            yield [self.examples[i] for i in indices], {}
