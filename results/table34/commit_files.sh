#!/usr/bin/env bash
# Stage the small result files of the Table 3/4 runs (runs/ is ignored as a whole; checkpoints
# and TensorBoard events stay out): bash results/table34/commit_files.sh && git commit ...
set -euo pipefail
cd "$(dirname "$0")"
bash ../../scripts/stage_runs.sh runs
git add -f curves-*.png 2>/dev/null || true
