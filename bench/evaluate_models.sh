#!/usr/bin/env bash
# Tune decoding on validation, then score every bundled model on every test set and refresh its card.
# Usage: bash bench/evaluate_models.sh [MODEL ...]   (default: the four general models and en-de-multi30k)
# Env: TUNE_SENTENCES (validation sources for tuning, default 300), TUNE_GRID (extra tune_decoding.py flags),
# SKIP_TUNE=1 (score with the decoding already in config.json). The four everyday models are also scored with
# the beam reranked by their sibling (beam 10, λ chosen on the whole validation split; s2s/rerank.py).
# Writes the figures into each checkpoint's metrics.json / README.md and bench/results/models/*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=bench/results/models
mkdir -p "$OUT"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(en-de de-en en-fr fr-en en-de-multi30k)
reverse_of() { case $1 in en-de|en-de-multi30k) echo de-en;; de-en) echo en-de;; en-fr) echo fr-en;; fr-en) echo en-fr;; esac; }
for name in "${models[@]}"; do
  model=checkpoints/$name
  if [[ "$name" =~ ^en-de-(general|dot|additive)$ ]]; then
    # the three attention-score models (issue 14): same data, size and steps; decoding left at the defaults
    $PY -m s2s.cli evaluate --model "$model" --test everyday test_2016_flickr --beam 1 5 --update-card \
      --json "$OUT/$name.json"
    $PY -m s2s.cli evaluate --model "$model" --test tatoeba-test --beam 5 --update-card --json "$OUT/$name-tatoeba.json"
    continue
  elif [ "$name" = en-de-multi30k ]; then
    $PY -m s2s.cli evaluate --model "$model" --test test_2016_flickr everyday --beam 1 5 --update-card \
      --json "$OUT/$name.json"
  else
    if [ -z "${SKIP_TUNE:-}" ]; then
      $PY bench/tune_decoding.py --model "$model" --sentences "${TUNE_SENTENCES:-300}" ${TUNE_GRID:-} --write
      $PY bench/tune_decoding.py --model "$model" --beam 10 --reverse-only --reverse-weight 0 0.5 0.7 1 1.5 \
        --sentences 5000 --write
    fi
    # plain beam search (--reverse-weight 0), then the app's default: beam 10 reranked by the sibling
    $PY -m s2s.cli evaluate --model "$model" --test everyday test_2016_flickr --beam 1 5 --reverse-weight 0 \
      --update-card --json "$OUT/$name.json"
    $PY -m s2s.cli evaluate --model "$model" --test everyday test_2016_flickr tatoeba-test --beam 10 --update-card \
      --json "$OUT/$name-reranked.json"
    # the everyday set as the app translates it: each sentence of a line on its own
    $PY -m s2s.cli evaluate --model "$model" --test everyday --beam 1 5 --reverse-weight 0 --by-sentence \
      --update-card --json "$OUT/$name-by-sentence.json"
    $PY -m s2s.cli evaluate --model "$model" --test everyday --beam 10 --by-sentence --update-card \
      --json "$OUT/$name-reranked-by-sentence.json"
    # 2,000 Tatoeba test sources: beam 5 only (greedy doubles the time and adds little)
    $PY -m s2s.cli evaluate --model "$model" --test tatoeba-test --beam 5 --reverse-weight 0 --update-card \
      --json "$OUT/$name-tatoeba.json"
  fi
  reverse=checkpoints/$(reverse_of "$name")
  if [ -d "$reverse" ]; then
    beta=$($PY -c "import json, sys; print(json.load(open(sys.argv[1]))['coverage_penalty'] or 0.2)" "$model/config.json")
    lambda=$($PY -c "import json, sys; print(json.load(open(sys.argv[1])).get('reverse_weight') or '')" "$model/config.json")
    $PY bench/omissions.py --model "$model" --reverse "$reverse" --coverage-penalty 0 "$beta" \
      ${lambda:+--reverse-weight "$lambda" --rerank-beam 10} --json "$OUT/omissions-$name.json"
  fi
done
