"""Print the README's results table from the bundled checkpoints' metrics.json (written by `s2s evaluate
--update-card`) and the omission counts in bench/results/models/ (written by bench/omissions.py).

    .venv/bin/python bench/results_table.py
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["en-de", "de-en", "en-fr", "fr-en", "en-de-multi30k", "en-de-general", "en-de-dot", "en-de-additive"]
# (test set, decoding suffix): "everyday, by sentence" is the everyday set translated as the app does it
TESTS = [("everyday", ""), ("everyday", ", by sentence"), ("tatoeba-test", ""), ("test_2016_flickr", "")]


def main() -> None:
    print("| model | test set | greedy BLEU / chrF | beam 5 BLEU / chrF | reranked beam BLEU / chrF | beam settings |")
    print("|---|---|---|---|---|---|")
    for name in ORDER:
        folder = ROOT / "checkpoints" / name
        if not (folder / "metrics.json").is_file():
            continue
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        settings = f"α = {config.get('length_penalty', 1.0):g}, β = {config.get('coverage_penalty', 0):g}"
        for test, suffix in TESTS:
            greedy, beam = metrics.get(f"{test}/greedy{suffix}"), metrics.get(f"{test}/beam 5{suffix}")
            reranked = next((m for m in metrics.values() if m.get("test_set") == test and m.get("reverse_weight")
                             and m["decoding"].endswith("reranked by " + str(m.get("reverse_model")) + suffix)), None)
            if not (greedy or beam or reranked):
                continue
            cell = (lambda m: f"{m['bleu']:.1f} / {m['chrf']:.1f}" if m else "–")
            how = (f"; reranked: {reranked['decoding'].split(',')[0]}, λ = {reranked['reverse_weight']:g}"
                   if reranked else "")
            print(f"| {name} | {test}{suffix} ({(greedy or beam or reranked)['sentences']:,}) | {cell(greedy)} "
                  f"| {cell(beam)} | {cell(reranked)} | {settings}{how} |")
    print()
    for name in ORDER:
        path = ROOT / "bench" / "results" / "models" / f"omissions-{name}.json"
        if path.is_file():
            counts = json.loads(path.read_text(encoding="utf-8"))
            label = {"coverage_penalty": "β", "reverse_weight": "reranked, λ"}
            parts = [f"{label[key.split('=')[0]]} {key.split('=')[1]}"
                     f"{' (beam ' + str(v['beam']) + ')' if 'beam' in v else ''}: {v['omitted']} of {v['checked']}"
                     for key, v in counts.items()]
            print(f"- {name}: omitted source content words on the everyday set — " + "; ".join(parts))


if __name__ == "__main__":
    main()
