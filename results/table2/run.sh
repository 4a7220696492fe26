#!/usr/bin/env bash
# Table 2 (budgeted): the baselines on one family with the reward delayed by 500 steps, at the
# budget of results/table34 (300,000 env steps; the paper: 2M), whose MCAT and MCAT w/o PT runs
# at delay 500 are the comparison. Runs go to results/table2/runs/FAMILY-ALGO-seedS. Resumable: a
# finished run is skipped, an interrupted one continues from its newest checkpoint (re-running
# the command does it). A run another process is writing (exit 75) is skipped, so two lanes
# can walk the same list.
#   bash results/table2/run.sh halfcheetah-armature "pearl" "0 1 2"
#   bash results/table2/run.sh halfcheetah-armature "mql" "0"
set -euo pipefail
family=$1 algos=$2 seeds=$3
steps=${STEPS:-300000}
mcat=${MCAT:-.venv/bin/mcat} python=${PYTHON:-.venv/bin/python}
for seed in $seeds; do
  for algo in $algos; do
    out=results/table2/runs/$family-$algo-seed$seed
    [ -f "$out/summary.json" ] && continue
    # Finished on an earlier machine whose summary.json and checkpoints were not kept (only the
    # logs are committed): its metrics.csv already holds the evaluation at the last step.
    if [ -d "$out" ] && $python -c 'import sys; from mcat.runs import finished_without_checkpoints
sys.exit(0 if finished_without_checkpoints(sys.argv[1]) else 1)' "$out"; then
      echo "$out: finished already (its logs; no checkpoint kept), skipped"; continue
    fi
    $mcat train --preset "table2-$family" --algo "$algo" --steps "$steps" --seed "$seed" \
      --eval-every 20000 --eval-episodes 3 --checkpoint-every 25000 --threads 1 --out "$out" ||
      { code=$?; [ "$code" = 75 ] || exit "$code"; echo "$out: busy elsewhere, skipped"; }  # 75: another process runs it
  done
done
