#!/usr/bin/env bash
# Stage the small result files of the competence runs (runs/ is ignored as a whole; checkpoints
# and TensorBoard events stay out): bash results/baselines/commit_files.sh && git commit ...
set -euo pipefail
cd "$(dirname "$0")"
for run in runs/*/; do
  for f in config.json metrics.csv episodes.csv summary.json; do
    [ -f "$run$f" ] && git add -f "$run$f"
  done
done
git add -f curves.png 2>/dev/null || true
