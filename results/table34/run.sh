#!/usr/bin/env bash
# Budgeted Tables 3/4: MCAT against MCAT without policy transfer (--no-pt) on one HalfCheetah
# family, for the given delays and seeds, STEPS env steps per run (default 300,000; the paper:
# 1M). Runs go to results/table34/runs/FAMILY-delayD-{mcat,nopt}-seedS. Resumable: a finished
# run is skipped, an interrupted one continues from its newest checkpoint (kill it any time and
# start this again).
#   bash results/table34/run.sh halfcheetah-armature "500" "0 1 2"
#   bash results/table34/run.sh halfcheetah-mass "500 350 200" "0 1 2"
# VARIANTS="mcat" or "nopt" runs one variant only (default both), e.g. to give each of two
# parallel jobs its own run directories.
set -euo pipefail
family=$1 delays=$2 seeds=$3
steps=${STEPS:-300000}
variants=${VARIANTS:-mcat nopt}
mcat=${MCAT:-.venv/bin/mcat}
for delay in $delays; do
  for seed in $seeds; do
    for variant in $variants; do
      out=results/table34/runs/$family-delay$delay-$variant-seed$seed
      [ -f "$out/summary.json" ] && continue
      if ls "$out"/checkpoints/step-*.json > /dev/null 2>&1; then
        $mcat train --resume "$out"
      else
        flags=(); [ "$variant" = nopt ] && flags=(--no-pt)
        $mcat train --preset "table4-$family-delay$delay" --steps "$steps" --seed "$seed" "${flags[@]+"${flags[@]}"}" \
          --eval-every 20000 --eval-episodes 3 --checkpoint-every 25000 --threads 1 --out "$out" --overwrite
      fi
    done
  done
done
