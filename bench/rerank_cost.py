"""What reranking by the reverse model costs per sentence, as the app translates (batch 1, with its trace).

Plain beam 5, plain beam 10 and beam 10 reranked by the sibling model (the app's default), on the first N
everyday sentences; median and 90th percentile of `Translator.translate` in milliseconds.

    .venv/bin/python bench/rerank_cost.py [--model checkpoints/en-de] [--sentences 40] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from s2s.api import DecodeOptions, Translator  # noqa: E402
from s2s.evaluate import read_everyday  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="checkpoints/en-de")
    parser.add_argument("--sentences", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator = Translator.load(args.model, device="cpu")
    if translator.reverse is None:
        print(f"{args.model} has no reverse model beside it: nothing to rerank with", file=sys.stderr)
        return 1
    config = translator.config
    sentences = [s for s, _ in read_everyday(config.src_lang, config.tgt_lang)][:args.sentences]
    settings = [("beam 5", DecodeOptions(method="beam", beam_size=5, reverse_weight=0)),
                ("beam 10", DecodeOptions(method="beam", beam_size=10, reverse_weight=0)),
                (f"beam 10, reranked by {translator.reverse.name} (λ = {config.reverse_weight:g})",
                 DecodeOptions(method="beam", beam_size=10))]
    for label, options in settings:
        for sentence in sentences[:3]:  # warm-up
            translator.translate(sentence, options)
        times = []
        for sentence in sentences:
            started = time.perf_counter()
            translator.translate(sentence, options)
            times.append((time.perf_counter() - started) * 1000)
        p90 = sorted(times)[int(0.9 * (len(times) - 1))]
        print(f"{label}: median {statistics.median(times):.1f} ms, p90 {p90:.1f} ms ({len(times)} sentences)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
