#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
skipped=""
if [ ! -x /usr/bin/chromium ]; then
  skipped="/usr/bin/chromium is missing: the browser tests (tests/test_browser.py) and the PNG export test are SKIPPED"
elif ! .venv/bin/python -c "import playwright" 2>/dev/null; then
  skipped="Playwright is not installed: the browser tests (tests/test_browser.py) are SKIPPED"
fi
shout() { [ -z "$skipped" ] || printf '\n!!!!!!!!!!!!!!!!!!!!\n!!! WARNING: %s.\n!!! Install Debian'"'"'s chromium (apt-get install chromium) to run them.\n!!!!!!!!!!!!!!!!!!!!\n\n' "$skipped" >&2; }
shout
status=0
.venv/bin/python -m pytest tests "$@" || status=$?
shout
exit $status
