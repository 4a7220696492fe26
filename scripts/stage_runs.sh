#!/usr/bin/env bash
# Stage the small log files of every run directory under the given folders (runs/ folders are
# ignored as a whole, so `git add -f`; replays and TensorBoard events stay out):
#   bash scripts/stage_runs.sh results/table2/runs [more folders]
#   bash scripts/stage_runs.sh --checkpoints results/table2/runs
# With --checkpoints, each unfinished run (no summary.json) also carries its newest complete
# checkpoint (the .pt and its sidecar; complete as a resume judges it: mcat.runs), so that a run
# longer than one machine's life goes on, identically, from a clone; its older committed
# checkpoints leave the index, and a finished run's leave it too. Checkpoints are 15-60 MB each:
# use it only for runs that cannot finish where they are. The Python is the project's .venv
# ($MCAT_PYTHON overrides).
# The results/*/commit_files.sh scripts call it; it only reads, so it is safe while runs write.
set -euo pipefail
checkpoints=0
if [ "${1:-}" = --checkpoints ]; then checkpoints=1; shift; fi

for root in "$@"; do
  if [ ! -d "$root" ]; then echo "stage_runs.sh: no folder $root" >&2; exit 2; fi
  for run in "$root"/*/; do
    for f in config.json metrics.csv episodes.csv transfer.csv transfer_summary.csv summary.json; do
      if [ -f "$run$f" ]; then git add -f "$run$f"; fi
    done
    if [ "$checkpoints" = 1 ]; then
      git rm -r -q --cached --ignore-unmatch "${run}checkpoints" > /dev/null
    fi
  done
done
[ "$checkpoints" = 1 ] || exit 0
python=${MCAT_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/${MCAT_VENV:-.venv}/bin/python}
"$python" - "$@" <<'PY' | while read -r pt; do
import sys
from pathlib import Path

from mcat.runs import SUMMARY, newest_complete_checkpoint

for root in sys.argv[1:]:
    for run in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        if not (run / SUMMARY).is_file() and (pt := newest_complete_checkpoint(run)):
            print(pt)
PY
  git add -f "$pt" "${pt%.pt}.json"
  echo "stage_runs.sh: $pt carried ($(du -h "$pt" | cut -f1))"
done
