"""Streaming reader vs in-memory reader on a generated corpus: peak memory and throughput (issue 15).

    .venv/bin/python bench/stream.py                       # 5,000,000 pairs streamed; in memory: the same
    .venv/bin/python bench/stream.py --pairs 5000000 --memory-pairs 1000000 --compare-pairs 1000000

Steps, each reader in a process of its own (so its peak RSS, VmHWM, is its own):
1. generate bench/work/stream/synthetic-<N>.tsv: N pseudo-sentence pairs (seeded; Zipf-distributed words of a
   30,000-word vocabulary, 3–30 words, the target a word-by-word "translation" with some reordering);
2. train the two SentencePiece models (8,000 pieces) on a 200,000-pair sample drawn by stream.sample_pairs;
3. for each reader, one epoch from the file to training batches (cleaning, SentencePiece encoding, token
   bucketing, padded tensors) with the recipe's batch of 3,000 target tokens:
   - memory: data.read_tatoeba + data.clean_pairs + train.encode_pairs + data.token_batches, the path of an
     in-memory recipe (the whole corpus, then its batches);
   - stream: stream.StreamingBatches (windows of 200,000 pairs) + data.make_batch.
Throughput is pairs (and target tokens) per second of the epoch; memory is the process's peak RSS, with the
RSS before reading (Python, torch, SentencePiece) beside it.

The in-memory reader on 5 M pairs needs several GB (Python strings and int lists); `--memory-pairs` measures
it on the first M pairs instead, and the table says so. `--compare-pairs` also streams the first M pairs so
that the two throughputs are measured on the same lines.
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import WORK, git_commit, machine_info, peak_rss_mb, save_result, write_json  # noqa: E402

FOLDER = WORK / "stream"
VOCAB, BATCH_TOKENS, BUFFER, SAMPLE = 30_000, 3_000, 200_000, 200_000


def generate(path: Path, n: int, seed: int = 1) -> None:
    """n seeded pseudo-sentence pairs, src<TAB>tgt, written in blocks (constant memory)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words = np.array(["".join(rng.choice(syllables, size=int(k))) for k in rng.integers(1, 4, size=VOCAB)])
    other = np.array([w[::-1] + "n" for w in words])  # the "translation" of each word
    weights = 1.0 / np.arange(1, VOCAB + 1) ** 1.1
    weights /= weights.sum()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for start in range(0, n, 100_000):
            size = min(100_000, n - start)
            lengths = rng.integers(3, 31, size=size)
            ids = rng.choice(VOCAB, size=int(lengths.sum()), p=weights)
            bounds = np.concatenate([[0], np.cumsum(lengths)])
            src, tgt = words[ids], other[ids]
            lines = []
            for k in range(size):
                a, b = bounds[k], bounds[k + 1]
                t = tgt[a:b][::-1] if k % 3 == 0 else tgt[a:b]  # some reordering
                lines.append(" ".join(src[a:b]).capitalize() + ".\t" + " ".join(t).capitalize() + " .\n")
            out.write("".join(lines))
    tmp.replace(path)


def head(path: Path, n: int, target: Path) -> None:
    with open(path, "rb") as src, open(target.with_suffix(".tmp"), "wb") as out:
        out.writelines(itertools.islice(src, n))
    target.with_suffix(".tmp").replace(target)


def train_tokenizers(corpus: Path, folder: Path) -> dict:
    from s2s import stream
    from s2s.tokenizer import Tokenizer

    started = time.perf_counter()
    sample = stream.sample_pairs(stream.PairFile.open(corpus), SAMPLE, seed=1, max_words=60)
    sampled = time.perf_counter()
    Tokenizer.train([s for s, _ in sample], 8000).save(folder / "source.model")
    Tokenizer.train([t for _, t in sample], 8000).save(folder / "target.model")
    return dict(sample_pairs=len(sample), sample_seconds=round(sampled - started, 1),
                train_seconds=round(time.perf_counter() - sampled, 1), peak_rss_mb=peak_rss_mb())


def measure(reader: str, corpus: Path, folder: Path) -> dict:
    """One epoch of `reader` over `corpus`, in this process."""
    from s2s import data as data_mod
    from s2s.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer
    from s2s.train import encode_pairs

    source, target = Tokenizer.load(folder / "source.model"), Tokenizer.load(folder / "target.model")
    baseline = peak_rss_mb()
    pairs = batches = tokens = 0
    started = time.perf_counter()
    if reader == "memory":
        raw = data_mod.read_tatoeba(corpus, "en")
        cleaned, _ = data_mod.clean_pairs(raw, 60)
        del raw
        examples = encode_pairs(cleaned, source, target, 256)
        del cleaned
        loaded = time.perf_counter() - started
        for batch in data_mod.token_batches(examples, BATCH_TOKENS, seed=1):
            pairs, batches, tokens = pairs + batch.src.size(0), batches + 1, tokens + batch.n_tokens
    else:
        from s2s import stream

        loaded = 0.0
        source_batches = stream.StreamingBatches(
            stream.PairFile.open(corpus), lambda p: encode_pairs(p, source, target, 256), BATCH_TOKENS, seed=1,
            buffer_pairs=BUFFER, max_words=60)
        for examples, _ in source_batches.batches(0):
            batch = data_mod.make_batch(examples, PAD_ID, BOS_ID, EOS_ID)
            pairs, batches, tokens = pairs + batch.src.size(0), batches + 1, tokens + batch.n_tokens
    seconds = time.perf_counter() - started
    return dict(reader=reader, corpus=corpus.name, pairs=pairs, batches=batches, target_tokens=tokens,
                seconds=round(seconds, 1), load_seconds=round(loaded, 1), pairs_per_s=round(pairs / seconds),
                target_tokens_per_s=round(tokens / seconds), rss_before_mb=baseline, peak_rss_mb=peak_rss_mb())


def child(*args: str) -> dict:
    """Run this script's `measure` in a fresh process and return its JSON."""
    out = FOLDER / f"result-{args[0]}-{Path(args[1]).stem}.json"
    subprocess.run([sys.executable, __file__, "_measure", *args, str(out)], check=True)
    return json.loads(out.read_text())


def render(result: dict) -> str:
    rows = ["| reader | pairs | seconds | pairs/s | target tokens/s | RSS before (MB) | peak RSS (MB) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["runs"]:
        rows.append(f"| {r['reader']} ({r['corpus']}) | {r['pairs']:,} | {r['seconds']:,.0f} | {r['pairs_per_s']:,} | "
                    f"{r['target_tokens_per_s']:,} | {r['rss_before_mb']:,.0f} | {r['peak_rss_mb']:,.0f} |")
    lines = [f"# Streaming reader vs in-memory reader ({result['date']}, {result['commit']})", "",
             f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; load average at start "
             f"{result['load_average']}. Batches of {BATCH_TOKENS:,} target tokens; stream windows of {BUFFER:,} "
             f"pairs; SentencePiece 8,000 pieces per side trained on a {SAMPLE:,}-pair sample "
             f"({result['tokenizers']['sample_seconds']} s sampling, {result['tokenizers']['train_seconds']} s "
             "training).", "", *rows, ""]
    lines += [f"- {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5_000_000, help="size of the generated corpus (streamed)")
    parser.add_argument("--memory-pairs", type=int, default=0, help="in-memory reader on the first M pairs "
                        "(default: all of them)")
    parser.add_argument("--compare-pairs", type=int, default=0, help="also stream the first M pairs")
    parser.add_argument("--repeats", type=int, default=1, help="run the two readers on the same pairs this many "
                        "times, alternating (the best of each is compared: a busy machine is noisy)")
    args = parser.parse_args(argv)
    FOLDER.mkdir(parents=True, exist_ok=True)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    corpus = FOLDER / f"synthetic-{args.pairs}.tsv"
    if not corpus.exists():
        started = time.perf_counter()
        generate(corpus, args.pairs)
        print(f"generated {corpus} in {time.perf_counter() - started:.0f} s", flush=True)
    tokenizers = train_tokenizers(corpus, FOLDER)
    print(f"tokenizers: {tokenizers}", flush=True)
    runs, notes = [], []
    subsets = sorted({m for m in (args.memory_pairs, args.compare_pairs) if m and m < args.pairs})
    files = {m: FOLDER / f"synthetic-{args.pairs}-head-{m}.tsv" for m in subsets}
    for m, path in files.items():
        if not path.exists():
            head(corpus, m, path)
    memory_file = files.get(args.memory_pairs, corpus)
    for _ in range(args.repeats):
        if args.compare_pairs:
            runs.append(child("stream", str(files.get(args.compare_pairs, corpus)), str(FOLDER)))
            print(runs[-1], flush=True)
        runs.append(child("memory", str(memory_file), str(FOLDER)))
        print(runs[-1], flush=True)
    if files.get(args.compare_pairs, corpus) != corpus:
        runs.append(child("stream", str(corpus), str(FOLDER)))
        print(runs[-1], flush=True)
    if memory_file != corpus:
        notes.append(f"The in-memory reader ran on the first {args.memory_pairs:,} pairs only: on all "
                     f"{args.pairs:,} it would need several GB more than this shared machine could spare.")
    best = {reader: max((r for r in runs if r["corpus"] == memory_file.name and r["reader"] == reader),
                        key=lambda r: r["pairs_per_s"], default=None) for reader in ("memory", "stream")}
    if best["memory"] and best["stream"]:
        ratio = best["stream"]["pairs_per_s"] / best["memory"]["pairs_per_s"]
        notes.append(f"On the same {best['memory']['pairs']:,} pairs (best of {args.repeats}) the stream reads "
                     f"{ratio:.0%} of the in-memory reader's pairs/s (target: at least 90%).")
    if float(load) > 0.5:
        notes.append(f"The machine was busy (load average {load}): absolute speeds are low; the ratio is the result.")
    result = dict(date=datetime.now().strftime("%Y-%m-%d %H:%M"), commit=git_commit(), machine=machine_info(),
                  load_average=load, pairs=args.pairs, tokenizers=tokenizers, runs=runs, notes=notes)
    save_result("stream", result, render(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        reader, corpus, folder, out = sys.argv[2:6]
        write_json(out, measure(reader, Path(corpus), Path(folder)))
    else:
        sys.exit(main())
