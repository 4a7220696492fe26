#!/usr/bin/env bash
# Set up (first time), check the code's habits, then run the test suite on both cores.
#   bash scripts/test.sh             the checks and the fast suite (what CI runs)
#   bash scripts/test.sh --slow      the checks and the long checks (marked `slow`)
#   bash scripts/test.sh ARGS...     extra arguments go to pytest (e.g. -k resume, -x)
# The checks (seconds): ruff format --check, ruff check, mypy on src/mcat; any finding stops the
# run before the tests. MCAT_SKIP_CHECKS=1 skips them (for a quick local test run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=()
for a in "$@"; do
  if [ "$a" = "--slow" ]; then args+=(-m slow); else args+=("$a"); fi
done
if [ "${MCAT_SKIP_CHECKS:-0}" != 1 ]; then
  echo "checks: ruff format, ruff check, mypy" >&2
  .venv/bin/ruff format --check --quiet . || {
    echo "formatting differs: run .venv/bin/ruff format ." >&2; exit 1; }
  .venv/bin/ruff check --quiet . || {
    echo "lint findings above: fix them (.venv/bin/ruff check --fix . fixes some)" >&2; exit 1; }
  .venv/bin/mypy || { echo "type errors above" >&2; exit 1; }
fi
# two workers on the 2 cores (one torch thread each, see tests/conftest.py); a test file's tests
# stay on one worker, so its module fixtures are built once; the heaviest files go first (conftest.py)
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder "${args[@]+"${args[@]}"}"
