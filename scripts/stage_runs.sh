#!/usr/bin/env bash
# Stage the small log files of every run directory under the given folders (runs/ folders are
# ignored as a whole, so `git add -f`; checkpoints, replays and TensorBoard events stay out):
#   bash scripts/stage_runs.sh results/table2/runs [more folders]
# The results/*/commit_files.sh scripts call it; it only reads, so it is safe while runs write.
set -euo pipefail
for root in "$@"; do
  if [ ! -d "$root" ]; then echo "stage_runs.sh: no folder $root" >&2; exit 2; fi
  for run in "$root"/*/; do
    for f in config.json metrics.csv episodes.csv transfer.csv transfer_summary.csv summary.json; do
      if [ -f "$run$f" ]; then git add -f "$run$f"; fi
    done
  done
done
