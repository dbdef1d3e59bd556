"""Attribution beside attention (issue 14): what it costs, and how often the two agree.

    .venv/bin/python bench/explain.py --cost        # seconds per attribution of a 20-piece sentence (en-de)
    .venv/bin/python bench/explain.py --agreement   # agreement of α with attribution over the everyday set
    .venv/bin/python bench/explain.py --pca         # fit and cache each bundled model's state projection

--cost: the first sentence of bench/data/everyday.en that encodes to 20 source pieces (</s> included) and
its greedy translation, through `s2s.explain.attribute` (one forward pass on the K + 1 points of the
integrated-gradients path, every row's gradients, gradient × input from the same pass); one warm-up, then
the median of --repeats calls, with 1 and with 2 torch threads. Run it on an idle machine (runs/pause.sh).

--agreement: for every bundled model (or --models), every sentence of the everyday set in its source
language (90 hand-written sentences, never used for training or tuning) and its greedy translation:
top-1 agreement (α and the attribution put their largest weight on the same source piece / word) and the
Jensen–Shannon distance of the two rows, pooled over all target rows of the set; per piece and per word
(merged by the heatmap's rule), for integrated gradients and gradient × input; and IG's completeness gap.

Results: bench/results/<date>-<time>-<commit>-explain-{cost,agreement}.{json,md}.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, machine_info, save_result  # noqa: E402
from s2s import explain, trajectories  # noqa: E402
from s2s.api import Translator  # noqa: E402
from s2s.evaluate import EVERYDAY_DIR, read_everyday  # noqa: E402

BUNDLED = ("en-de", "de-en", "en-fr", "fr-en", "en-de-multi30k", "en-de-general", "en-de-dot", "en-de-additive")
COST_PIECES = 20


def cost(args) -> None:
    translator = Translator.load(args.checkpoints / args.cost_model, device="cpu")
    cfg = translator.config
    pairs = read_everyday(cfg.src_lang, cfg.tgt_lang)
    sentence, reference = next((s, t) for s, t in pairs if len(translator.encode_source(s)[0]) == COST_PIECES)
    source, _ = translator.encode_source(sentence)
    targets = {"greedy translation": explain.greedy_ids(translator.model, source),
               "reference (scored)": translator.target_tokenizer.encode(reference) + [cfg.eos_id]}
    runs = []
    for what, target in targets.items():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            explain.attribute(translator.model, source, target, args.steps)  # warm-up
            seconds = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                explain.attribute(translator.model, source, target, args.steps)
                seconds.append(time.perf_counter() - started)
            runs.append(dict(target=what, target_pieces=len(target), threads=threads,
                             median_s=statistics.median(seconds), min_s=min(seconds), seconds=seconds))
    result = dict(model=args.cost_model, sentence=sentence, reference=reference, source_pieces=len(source),
                  steps=args.steps, hidden_size=cfg.hidden_size, memory_size=cfg.memory_size,
                  vocabulary=cfg.tgt_vocab_size, runs=runs, machine=machine_info(),
                  load_average=Path("/proc/loadavg").read_text().split()[:3])
    rows = "\n".join(f"| {r['target']} | {r['target_pieces']} | {r['threads']} | {r['median_s']:.3f} | "
                     f"{r['min_s']:.3f} |" for r in runs)
    save_result("explain-cost", result, f"""# Attribution cost (bench/explain.py --cost)

Model `{args.cost_model}` (hidden {cfg.hidden_size}, memory {cfg.memory_size}, vocabulary {cfg.tgt_vocab_size});
source: "{sentence}" ({len(source)} pieces, </s> included); integrated gradients with {args.steps} steps, plus
gradient × input, α and the piece scores from the same pass; {args.repeats} calls after a warm-up.
Load average at the end: {' '.join(result['load_average'])}.

| target | target pieces | torch threads | median s | fastest s |
|---|---|---|---|---|
{rows}
""")


def agreement(args) -> None:
    torch.set_num_threads(args.threads)
    names = [n for n in (args.models or BUNDLED) if (args.checkpoints / n / "config.json").is_file()]
    results = {}
    for name in names:
        translator = Translator.load(args.checkpoints / name, device="cpu")
        src, tgt = translator.source_tokenizer, translator.target_tokenizer
        lines = (EVERYDAY_DIR / f"everyday.{translator.config.src_lang}").read_text(encoding="utf-8").splitlines()
        pooled = {key: [] for key in ("ig_piece", "gi_piece", "ig_word", "gi_word")}
        gaps, seconds = [], []
        for sentence in lines[:args.limit]:
            source, _ = translator.encode_source(sentence)
            target = explain.greedy_ids(translator.model, source)
            started = time.perf_counter()
            a = explain.attribute(translator.model, source, target, args.steps)
            seconds.append(time.perf_counter() - started)
            gaps.append(float(a.completeness_error.max()))
            for method, matrix in (("ig", a.integrated), ("gi", a.gradient_input)):
                for unit, merge in (("piece", False), ("word", True)):
                    pooled[f"{method}_{unit}"].append(explain.compare(a.alpha, matrix, src.pieces(source),
                                                                      tgt.pieces(target), merge))
        summary = {key: dict(rows=sum(len(x.top1) for x in values),
                             top1=float(np.mean([t for x in values for t in x.top1])),
                             js=float(np.mean([j for x in values for j in x.js_distance])))
                   for key, values in pooled.items()}
        results[name] = dict(sentences=len(seconds), attention=translator.config.attention, **summary,
                             max_completeness_gap=max(gaps), mean_completeness_gap=float(np.mean(gaps)),
                             mean_seconds=float(np.mean(seconds)))
        print(name, results[name], flush=True)
    rows = "\n".join(f"| {n} | {r['attention']} | {r['sentences']} | {r['ig_word']['rows']} | "
                     f"{r['ig_word']['top1']:.0%} | {r['ig_word']['js']:.2f} | {r['gi_word']['top1']:.0%} | "
                     f"{r['gi_word']['js']:.2f} | {r['ig_piece']['top1']:.0%} | {r['ig_piece']['js']:.2f} | "
                     f"{r['max_completeness_gap']:.3f} |" for n, r in results.items())
    save_result("explain-agreement", dict(steps=args.steps, models=results, machine=machine_info()),
                f"""# Attention against attribution on the everyday set (bench/explain.py --agreement)

Each model's greedy translation of the 90 everyday sentences; rows pooled over the set. Top-1: the share of
target words (pieces) whose largest α and largest attribution fall on the same source word (piece). JS:
mean Jensen–Shannon distance between the α row and the attribution row (0 same, 1 disjoint). IG: integrated
gradients, {args.steps} steps from a pad-embedding baseline; G×I: gradient × input. Gap: the largest IG
completeness gap of any row, in nats.

| model | score | sentences | target words | IG top-1 (words) | IG JS (words) | G×I top-1 (words) | G×I JS (words) | IG top-1 (pieces) | IG JS (pieces) | gap |
|---|---|---|---|---|---|---|---|---|---|---|
{rows}
""")


def fit_pca(args) -> None:
    """Fit and cache (pca.safetensors) the state projection of each bundled model."""
    from s2s.service.explaining import _pair_encoder
    torch.set_num_threads(args.threads)
    for name in args.models or BUNDLED:
        folder = args.checkpoints / name
        if not (folder / "config.json").is_file():
            continue
        translator = Translator.load(folder, device="cpu")
        started = time.perf_counter()
        bases = trajectories.bases_for(translator.model, _pair_encoder(translator), folder)
        print(name, bases.sample, f"{time.perf_counter() - started:.1f} s",
              bases.encoder.explained.round(3).tolist(), bases.decoder.explained.round(3).tolist(), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--agreement", action="store_true")
    parser.add_argument("--pca", action="store_true")
    parser.add_argument("--models", nargs="*", help=f"checkpoint folder names (default: {' '.join(BUNDLED)})")
    parser.add_argument("--checkpoints", type=Path, default=REPO / "checkpoints",
                        help="folder of checkpoint folders (default: checkpoints/)")
    parser.add_argument("--cost-model", default="en-de")
    parser.add_argument("--steps", type=int, default=explain.DEFAULT_STEPS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="sentences per model (default: all 90)")
    args = parser.parse_args(argv)
    if not (args.cost or args.agreement or args.pca):
        args.cost = True
    if args.cost:
        cost(args)
    if args.pca:
        fit_pca(args)
    if args.agreement:
        agreement(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
