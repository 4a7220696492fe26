#!/usr/bin/env bash
# Dense-reward competence of the baselines (issue "Baselines, part 1", item 5): each ALGO on
# halfcheetah-armature with the reward paid every step (delay 1), STEPS env steps (default
# 100,000) over the five training tasks, seed SEED (default 0), beside ctd3 at the same budget.
# Runs go to results/baselines/runs/ALGO-seedS. Resumable: a finished run is skipped, an
# interrupted one continues from its newest checkpoint (re-running the command does it).
#   bash results/baselines/run.sh "ctd3 pearl" 0
#   EVAL_EVERY=20000 bash results/baselines/run.sh mql 0   # MQL's evaluations adapt: costly
#   .venv/bin/python results/baselines/table.py
set -euo pipefail
algos=$1 seeds=${2:-0}
steps=${STEPS:-100000}
eval_every=${EVAL_EVERY:-10000}
mcat=${MCAT:-.venv/bin/mcat}
for seed in $seeds; do
  for algo in $algos; do
    out=results/baselines/runs/$algo-seed$seed
    [ -f "$out/summary.json" ] && continue
    $mcat train halfcheetah-armature --algo "$algo" --steps "$steps" --reward-delay 1 --seed "$seed" \
      --eval-every "$eval_every" --eval-episodes 3 --checkpoint-every 20000 --threads 1 --out "$out"
  done
done
