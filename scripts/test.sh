#!/usr/bin/env bash
# Set up (first time) and run the test suite. Extra arguments go to pytest; `--slow` runs the
# long checks (marked `slow`) instead of the fast suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=()
for a in "$@"; do
  if [ "$a" = "--slow" ]; then args+=(-m slow); else args+=("$a"); fi
done
exec .venv/bin/python -m pytest -q "${args[@]+"${args[@]}"}"
