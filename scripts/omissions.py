"""How well the app's coverage hint finds omissions (issue 10, item 5).

    .venv/bin/python scripts/omissions.py checkpoints/en-fr [--data scripts/omissions/en-fr.tsv] [--sweep]

Each line of the data file holds an English sentence, a full translation of it, the English word(s) that a
second translation leaves out, and that second translation (written by hand: the omissions are known).
Both translations are forced through the model (it computes its attention while writing exactly that text),
then the app's coverage flags (s2s.plots.coverage, per word) are compared with the words really left out:

- found: omitted words that are flagged as possible omissions;
- false flags: every other flagged word, in the translation with the omission and in the full one.

The old rule (before issue 10: any piece but </s> with Σₜ αₜᵢ < 0.3) is scored the same way, for comparison.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s2s import plots  # noqa: E402
from s2s.api import Translator  # noqa: E402
from s2s.trace import Trace  # noqa: E402

OLD_THRESHOLD = 0.3


@dataclass
class Case:
    source: str
    full: str
    omitted: set[str]  # lower-cased English words left out of `short`
    short: str


def read_cases(path: Path) -> list[Case]:
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            source, full, omitted, short = line.split("\t")
            cases.append(Case(source, full, set(omitted.lower().split()), short))
    return cases


def forced(translator: Translator, source: str, target: str) -> Trace:
    """The trace of the model writing exactly `target` (then </s>) for `source`."""
    ids = translator.target_tokenizer.encode(target) + [translator.config.eos_id]
    return translator.translate(source, prefix=ids)


def bare(word: str) -> str:
    return word.lower().strip(".,;:!?\"'")


def new_rule(trace: Trace) -> set[str]:
    return {bare(item.word) for item in plots.coverage(trace, merge_words=True) if item.flag == "omission"}


def old_rule(trace: Trace) -> set[str]:
    """Words with a piece (not a special one) below 0.3, as the app flagged them before."""
    flagged = set()
    for group in plots.word_groups(trace.source_pieces):
        pieces = [trace.source_pieces[i] for i in group]
        if pieces[0] in plots.SPECIAL_PIECES.values():
            continue
        if any(sum(row[i] for row in trace.attention) < OLD_THRESHOLD for i in group):
            flagged.add(bare(plots._word_text(pieces)))  # noqa: SLF001 - the same surface form the app shows
    return flagged


def score(pairs: list[tuple[Case, Trace, Trace]], rule) -> tuple[int, int, int, int]:
    """(omitted words found, omitted words, false flags with the omission, false flags on full translations)."""
    found = total = false_short = false_full = 0
    for case, short, full in pairs:
        flagged = rule(short)
        total += len(case.omitted)
        found += len(case.omitted & flagged)
        false_short += len(flagged - case.omitted)
        false_full += len(rule(full))
    return found, total, false_short, false_full


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="checkpoint folder of an English→X model")
    parser.add_argument("--data", help="TSV of cases (default: scripts/omissions/<src>-<tgt>.tsv)")
    parser.add_argument("--sweep", action="store_true", help="also score other omission thresholds")
    args = parser.parse_args()
    translator = Translator.load(args.model, device="cpu")
    c = translator.config
    data = Path(args.data) if args.data else ROOT / "scripts" / "omissions" / f"{c.src_lang}-{c.tgt_lang}.tsv"
    cases = read_cases(data)
    pairs = [(case, forced(translator, case.source, case.short), forced(translator, case.source, case.full))
             for case in cases]
    print(f"{Path(args.model).name} on {data.name}: {len(cases)} sentences, each with a known omission")
    rules = [(f"content words, Σ < {plots.OMISSION_BELOW} (the app)", new_rule),
             (f"any piece, Σ < {OLD_THRESHOLD} (before)", old_rule)]
    if args.sweep:
        chosen = plots.OMISSION_BELOW

        def at(threshold: float):
            def rule(trace: Trace) -> set[str]:
                plots.OMISSION_BELOW = threshold
                try:
                    return new_rule(trace)
                finally:
                    plots.OMISSION_BELOW = chosen
            return rule
        rules += [(f"content words, Σ < {t}", at(t)) for t in (0.3, 0.4, 0.6, 0.7, 0.8)]
    print("| rule | omitted words found | false flags (with the omission / full translation) |")
    print("|---|---|---|")
    for name, rule in rules:
        found, total, false_short, false_full = score(pairs, rule)
        print(f"| {name} | {found} / {total} | {false_short} / {false_full} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
