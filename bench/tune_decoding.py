"""Choose a model's beam length penalty α, coverage penalty β and reranking weight λ on its validation split.

Beam search over a grid of (α, β) on the first N validation sources of the model's own recipe (the split it
was trained with; never the test sets), scored with sacreBLEU against all references. `--write` stores
the best pair in the checkpoint's config.json (and how it was chosen in its card), where the CLI, `s2s evaluate`
and the app take it as the model's default.

`--reverse-weight` grid: the weight λ of the reverse model (config.reverse_model, a sibling folder) when it
reranks the beam (s2s.rerank), chosen at the model's own α and β (`--reverse-only`) or at the best of the grid.

    .venv/bin/python bench/tune_decoding.py --model checkpoints/en-de [--sentences 600] [--write]
    .venv/bin/python bench/tune_decoding.py --model checkpoints/en-de --beam 10 --reverse-only \
        --reverse-weight 0 0.5 0.7 1 1.5 --sentences 5000 --write
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from s2s import data as data_mod  # noqa: E402
from s2s.api import DecodeOptions, Translator  # noqa: E402
from s2s.card import refresh_card  # noqa: E402
from s2s.config import Config  # noqa: E402
from s2s.evaluate import corpus_bleu  # noqa: E402
from s2s.files import atomic_write  # noqa: E402
from s2s.recipe import Recipe, load_splits  # noqa: E402


def validation_set(folder: Path, sentences: int) -> tuple[list[str], list[list[str]]]:
    training = json.loads((folder / "training.json").read_text(encoding="utf-8"))
    recipe = Recipe(**training["recipe"])
    splits, _ = load_splits(recipe)
    sources, refs = data_mod.group_references(splits["val"])
    return sources[:sentences], refs[:sentences]


MAX_LENGTH_PENALTY = 3.0  # where the upward search stops (DecodeOptions allows up to 5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--sentences", type=int, default=600)
    parser.add_argument("--length-penalty", type=float, nargs="+", default=[0.6, 1.0, 1.4, 1.8, 2.2])
    parser.add_argument("--coverage-penalty", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.4])
    parser.add_argument("--reverse-weight", type=float, nargs="+", default=[],
                        help="reranking weights λ to try (0 = no reranking); needs config.reverse_model beside it")
    parser.add_argument("--reverse-only", action="store_true",
                        help="keep the model's own α and β and choose λ alone")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="store the best (α, β[, λ]) in config.json")
    args = parser.parse_args()
    translator = Translator.load(args.model, device="cpu")
    if args.reverse_weight and translator.reverse is None:
        print(f"{args.model}: no reverse model to rerank with (config.reverse_model beside it)", file=sys.stderr)
        return 1
    sources, refs = validation_set(args.model, args.sentences)
    c = translator.config

    def score_at(alpha: float, beta: float, weight: float = 0.0) -> dict:
        return score(translator, sources, refs, args.beam, alpha, beta, weight)

    if args.reverse_only:
        results = [score_at(c.length_penalty, c.coverage_penalty, w) for w in sorted(set(args.reverse_weight))]
    else:
        results = grid_search(score_at, args.length_penalty, args.coverage_penalty)
        best = max(results, key=lambda r: r["bleu"])
        results += [score_at(best["length_penalty"], best["coverage_penalty"], w) for w in args.reverse_weight if w]
    best = max(results, key=lambda r: r["bleu"])
    print(f"best on {len(sources)} val sentences: length penalty {best['length_penalty']}, "
          f"coverage penalty {best['coverage_penalty']}, reverse weight {best['reverse_weight']} "
          f"(BLEU {best['bleu']:.2f})")
    if args.write:
        config = Config.load(args.model / "config.json")
        config.length_penalty, config.coverage_penalty = best["length_penalty"], best["coverage_penalty"]
        config.reverse_weight = best["reverse_weight"]
        atomic_write(args.model / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
        chosen, grid = describe_choice(args, results, len(sources)), results
        if args.reverse_only:  # α and β stay as chosen before: keep saying how, and add λ
            training = json.loads((args.model / "training.json").read_text(encoding="utf-8"))
            before = str(training.get("decoding") or "").rstrip(".")
            chosen = f"{before}; reranking weight λ {chosen}" if before else chosen
            grid = list(training.get("decoding_grid") or []) + results
        refresh_card(args.model, training_update=dict(decoding=chosen, decoding_grid=grid))
    return 0


def describe_choice(args, results: list[dict], sentences: int) -> str:
    """How the decoding defaults were chosen, for the model card."""
    weights = ", ".join(f"{w:g}" for w in sorted({r["reverse_weight"] for r in results}))
    head = f"chosen by beam-{args.beam} BLEU on the first {sentences} sources of the validation split"
    if args.reverse_only:
        return (f"{head.removeprefix('chosen ')} (λ over {weights} at the model's own α and β; "
                "`bench/tune_decoding.py --reverse-only`)")
    alphas = sorted({r["length_penalty"] for r in results})
    return (f"{head} (α over " + ", ".join(f"{a:g}" for a in alphas) + " at β = 0, then β over "
            + ", ".join(f"{b:g}" for b in args.coverage_penalty) + " at the best α"
            + (f", then λ over {weights}" if args.reverse_weight else "") + "; `bench/tune_decoding.py`)")


def grid_search(score_at, length_penalties: list[float], coverage_penalties: list[float]) -> list[dict]:
    """Every (α, β) scored, in the order tried: α at β = 0, then β at the best α (5 + 3 runs, not 5 × 4).

    A best α on the grid's upper edge may not be the optimum, so the search goes on upward in the grid's last
    step while the top α keeps winning (fr-en chose 2.2, the old edge, after its seventh round)."""
    alphas = sorted(length_penalties)
    results = [score_at(alpha, 0.0) for alpha in alphas]
    best_alpha = max(results, key=lambda r: r["bleu"])["length_penalty"]
    step = alphas[-1] - alphas[-2] if len(alphas) > 1 else 0.4
    while best_alpha == alphas[-1] and step > 0 and alphas[-1] + step <= MAX_LENGTH_PENALTY + 1e-9:
        alphas.append(round(alphas[-1] + step, 2))
        results.append(score_at(alphas[-1], 0.0))
        best_alpha = max(results, key=lambda r: r["bleu"])["length_penalty"]
    results += [score_at(best_alpha, beta) for beta in coverage_penalties if beta]
    return results


def score(translator: Translator, sources, refs, beam: int, alpha: float, beta: float, weight: float = 0.0) -> dict:
    started = time.perf_counter()
    options = DecodeOptions(method="beam", beam_size=beam, length_penalty=alpha, coverage_penalty=beta,
                            reverse_weight=weight)
    hyps = translator.translate_batch(sources, options, batch_size=64)
    bleu = corpus_bleu(hyps, refs).score
    print(f"  α {alpha:<4} β {beta:<4} λ {weight:<4} val BLEU {bleu:6.2f}  ({time.perf_counter() - started:.0f} s)",
          flush=True)
    return dict(length_penalty=alpha, coverage_penalty=beta, reverse_weight=weight, bleu=round(bleu, 2))


if __name__ == "__main__":
    raise SystemExit(main())
