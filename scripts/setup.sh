#!/usr/bin/env bash
# Create .venv and install s2s with its dependencies. Safe to run again: it only installs what is missing.
# Usage: bash scripts/setup.sh [--test]   (--test adds pytest, Playwright and Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first, pinned: 2.13.0 is a CPU build here; a looser spec would pull a 5.5 GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install --disable-pip-version-check -q "torch==2.13.0"
if [ "${1:-}" = "--test" ]; then
  .venv/bin/pip install --disable-pip-version-check -q -e ".[test]"
  if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium; browser tests will be skipped"
  fi
else
  .venv/bin/pip install --disable-pip-version-check -q -e .
fi
