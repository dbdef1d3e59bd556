"""Corpora larger than memory: training batches read straight from a TSV or two line-aligned files.

The file is read a window of `buffer_pairs` pairs at a time. Each window is cleaned (the in-memory rules,
data.drop_reason), encoded, bucketed by length into batches of about `batch_tokens` target tokens (the
in-memory bucketing, data.batch_indices) and its batches are yielded in a seeded random order. Memory holds
one window and its batches, whatever the size of the file; a corpus in its natural order (sorted, or by
source) should be shuffled once on disk (`shuf`, `terashuf`) so that a window is a fair sample.

Deterministic: the batches of window k of epoch e depend only on (seed, e, k) and the file. Resumable: the
position after a batch, {"epoch", "window", "offsets", "batch"}, names the byte offsets where its window
starts in the file(s) and how many of its batches are done; reading resumes there without reading what came
before (a gzipped file is decompressed up to that point, a plain one is seeked).

SentencePiece is trained on a uniform sample of the corpus (`sample_pairs`, one pass, reservoir sampling).
"""
from __future__ import annotations

import gzip
import hashlib
import itertools
import random
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence

from .data import DataError, DropReport, Example, Pair, batch_indices, drop_reason, normalize

Encoder = Callable[[Sequence[Pair]], list[Example]]


class PairFile:
    """Sentence pairs from `source<TAB>target[<TAB>...]` lines, or from two line-aligned files; gzipped or not.

    `open(spec, src, tgt)`: a file is a TSV; otherwise `spec` is a prefix of SPEC.<src>[.gz] and SPEC.<tgt>[.gz].
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        for path in self.paths:
            if not path.is_file():
                raise DataError(f"{path} not found")

    @classmethod
    def open(cls, spec: str | Path, src_lang: str = "en", tgt_lang: str = "de") -> "PairFile":
        spec = Path(spec)
        if spec.is_file():
            return cls([spec])
        pair = []
        for lang in (src_lang, tgt_lang):
            candidates = [spec.with_name(f"{spec.name}.{lang}{gz}") for gz in ("", ".gz")]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise DataError(f"{spec} is neither a TSV file nor the prefix of {candidates[0].name}[.gz] and "
                                f"{spec.name}.{tgt_lang if lang == src_lang else src_lang}[.gz]")
            pair.append(found)
        return cls(pair)

    def start(self) -> list[int]:
        return [0] * len(self.paths)

    def handles(self, offsets: Sequence[int]) -> list[BinaryIO]:
        """The files opened for reading at byte offsets (of the uncompressed text)."""
        files = []
        for path, offset in zip(self.paths, offsets):
            f = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
            if offset:
                f.seek(offset)
            files.append(f)
        return files

    def read(self, files: Sequence[BinaryIO], n: int, offsets: Sequence[int]) -> tuple[list[Pair], list[int]]:
        """Up to n raw pairs from the open files (fewer at the end), and the offsets after them."""
        if len(files) == 1:
            lines = list(itertools.islice(files[0], n))
            pairs = []
            for line in lines:
                cols = _text(line).split("\t")
                pairs.append((cols[0], cols[1]) if len(cols) >= 2 else ("", ""))  # not a pair: dropped as empty
            return pairs, [offsets[0] + sum(map(len, lines))]
        src = list(itertools.islice(files[0], n))
        tgt = list(itertools.islice(files[1], len(src) or 1))  # at the end of the source, one more: is it over too?
        if len(src) != len(tgt):
            raise DataError(f"{self.paths[0].name} and {self.paths[1].name} do not have the same number of lines")
        pairs = [(_text(s), _text(t)) for s, t in zip(src, tgt)]
        return pairs, [offsets[0] + sum(map(len, src)), offsets[1] + sum(map(len, tgt))]

    def pairs(self, limit: int | None = None) -> list[Pair]:
        """The first `limit` raw pairs (all of them when None): for small files such as a validation set."""
        files = self.handles(self.start())
        try:
            return self.read(files, limit if limit is not None else 1 << 62, self.start())[0]
        finally:
            for f in files:
                f.close()


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r\n")


def clean(pairs: Sequence[Pair], max_words: int, report: DropReport | None = None) -> list[Pair]:
    """data.clean_pairs without the per-line bookkeeping: normalised pairs that are kept."""
    kept = []
    for src, tgt in pairs:
        src, tgt = normalize(src), normalize(tgt)
        reason = drop_reason(src, tgt, max_words)
        if not reason:
            kept.append((src, tgt))
        elif report is not None:
            report.drop(reason)
    if report is not None:
        report.kept += len(kept)
    return kept


def sample_pairs(corpus: PairFile, n: int, seed: int, max_words: int, start: Sequence[int] | None = None
                 ) -> list[Pair]:
    """A uniform sample of n pairs from one pass over the corpus (reservoir sampling), cleaned."""
    rng = random.Random(seed)
    reservoir: list[Pair] = []
    offsets = list(start or corpus.start())
    files = corpus.handles(offsets)
    seen = 0
    try:
        while True:
            pairs, offsets = corpus.read(files, 65536, offsets)
            if not pairs:
                break
            for pair in pairs:
                if seen < n:
                    reservoir.append(pair)
                else:
                    j = rng.randrange(seen + 1)
                    if j < n:
                        reservoir[j] = pair
                seen += 1
    finally:
        for f in files:
            f.close()
    return clean(reservoir, max_words)


def window_seed(seed: int, epoch: int, window: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}:{window}".encode()).digest()[:8], "big")


class StreamingBatches:
    """The trainer's batch source for a corpus read from disk (see the module docstring)."""

    def __init__(self, corpus: PairFile, encode: Encoder, batch_tokens: int, seed: int, buffer_pairs: int = 200_000,
                 max_words: int = 100, start: Sequence[int] | None = None) -> None:
        self.corpus, self.encode, self.batch_tokens, self.seed = corpus, encode, batch_tokens, seed
        self.buffer_pairs, self.max_words = buffer_pairs, max_words
        self.start = list(start or corpus.start())
        self.report = DropReport()  # what cleaning dropped so far

    def batches(self, epoch: int, done: int = 0, position: dict | None = None
                ) -> Iterator[tuple[list[Example], dict]]:
        """Epoch `epoch` from batch `done` on; `position` (the one saved after batch `done`) makes it a seek."""
        if position and position.get("epoch") == epoch:
            window, offsets, skip = position["window"], list(position["offsets"]), position["batch"]
        else:  # from the start of the epoch, counting `done` batches off (exact, but it reads and encodes them)
            window, offsets, skip = 0, list(self.start), done
        files = self.corpus.handles(offsets)
        try:
            while True:
                pairs, after = self.corpus.read(files, self.buffer_pairs, offsets)
                if not pairs:
                    return
                examples = self.encode(clean(pairs, self.max_words, self.report))
                del pairs  # from here on the window is its encoded examples only
                groups = batch_indices(examples, self.batch_tokens, window_seed(self.seed, epoch, window))
                for j, indices in enumerate(groups):
                    if skip:
                        skip -= 1
                        continue
                    finished = j + 1 == len(groups)
                    yield [examples[i] for i in indices], dict(
                        epoch=epoch, window=window + finished, offsets=after if finished else offsets,
                        batch=0 if finished else j + 1)
                del examples, groups  # before the next window is read: one window in memory, not two
                window, offsets = window + 1, after
        finally:
            for f in files:
                f.close()


def held_out_head(corpus: PairFile, n: int) -> tuple[list[Pair], list[int]]:
    """The first n pairs (a validation set when none is given) and the offsets where training starts."""
    start = corpus.start()
    files = corpus.handles(start)
    try:
        return corpus.read(files, n, start)
    finally:
        for f in files:
            f.close()
