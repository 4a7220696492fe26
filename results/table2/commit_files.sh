#!/usr/bin/env bash
# Regenerate the report (table and test-task curves) and stage the small result files of the
# Table 2 runs, finished or stopped part-way (runs/ is ignored as a whole), with the newest
# checkpoint of each unfinished run (a run outlives a machine: stage_runs.sh --checkpoints):
#   bash results/table2/commit_files.sh && git commit -m "results/table2: ..."
# Safe while runs are writing: it only reads their logs (never `git stash` then: README).
set -euo pipefail
cd "$(dirname "$0")/../.."
mcat=${MCAT:-.venv/bin/mcat}
$mcat report results/table34/runs/halfcheetah-armature-delay500-* results/table2/runs \
  --paper 2 --step 300000 -o results/table2/report.md > /dev/null
bash scripts/stage_runs.sh --checkpoints results/table2/runs
# MCAT trained again for its checkpoints (mcat_rerun.sh), once it has started
if [ -d results/table2/mcat_runs ]; then
  bash scripts/stage_runs.sh --checkpoints results/table2/mcat_runs
fi
git add results/table2/report.md results/table2/report-*.png
git status --short results/table2
