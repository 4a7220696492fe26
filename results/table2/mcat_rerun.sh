#!/usr/bin/env bash
# MCAT's Table 2 runs again, for their checkpoints. The comparison's MCAT rows are results/table34's
# delay-500 runs (2026-11-24), whose checkpoints were not kept, so action_cost.py and
# eval_noise.py cannot replay them. This trains each given seed again from that run's own
# config.json into results/table2/mcat_runs/ (git keeps the logs, not the checkpoints), then says
# whether its logs equal the 2026-11-24 ones: the code has changed since (the evaluation's batches
# per task, session 26; MuJoCo's patch version), so they could differ; seeds 0-2 all matched
# byte for byte (sessions 31-32). Resumable like run.sh: kill it any time and start it again.
#   bash results/table2/mcat_rerun.sh "0 1 2"
set -euo pipefail
seeds=$1
mcat=${MCAT:-.venv/bin/mcat}
for seed in $seeds; do
  name=halfcheetah-armature-delay500-mcat-seed$seed
  old=results/table34/runs/$name out=results/table2/mcat_runs/$name
  if [ ! -f "$out/summary.json" ]; then
    if ls "$out"/checkpoints/step-*.json > /dev/null 2>&1; then
      $mcat train --resume "$out" ||
        { code=$?; [ "$code" = 75 ] || exit "$code"; echo "$out: busy elsewhere, skipped"; continue; }
    else
      $mcat train --config "$old/config.json" --out "$out" --overwrite ||
        { code=$?; [ "$code" = 75 ] || exit "$code"; echo "$out: busy elsewhere, skipped"; continue; }
    fi
  fi
  for f in episodes.csv metrics.csv; do
    if cmp -s "$old/$f" "$out/$f"; then
      echo "$out/$f: identical to $old/$f"
    else
      echo "$out/$f: differs from $old/$f"
    fi
  done
done
