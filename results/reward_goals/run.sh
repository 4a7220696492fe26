#!/usr/bin/env bash
# Sec. 6 (1): transfer between tasks whose rewards differ: Meta-World reach, the source's goal at
# the centre of reach-v3's goal space, targets at other goals (hidden from the policy; reward
# 0.05 / (0.05 + distance)). The source policy is Meta-World's scripted reach told the source goal.
# Ours (G and H jointly, --state-translator) against Zhang et al. (state and action maps), the
# target's data collected by the source policy (as in Table 1). Each summary also holds the
# source policy on the target. Datasets, F and R are cached in runs/cache and shared. Resumable:
# finished results are skipped, a translator training continues from its last save.
#   OMP_NUM_THREADS=1 bash results/reward_goals/run.sh 0 1 2
set -euo pipefail
cd "$(dirname "$0")/../.."
source=0,0.85,0.175
for seed in "$@"; do
  for target in 0.1,0.85,0.175 0,0.9,0.3 -0.1,0.8,0.1; do
    for variant in "seed$seed-mcat --translator mcat" "seed$seed-dcc --translator dcc"; do
      set -- $variant
      name=$1; shift
      out=results/reward_goals/reach-$source-to-$target-$name
      [ -f "$out/summary.json" ] && continue
      .venv/bin/mcat transfer metaworld-reach --source "$source" --target "$target" --seed "$seed" \
        --state-translator "$@" --threads 1 --out "$out" --cache runs/cache ||
        { code=$?; [ "$code" = 75 ] || exit "$code"; echo "$out: busy elsewhere, skipped"; }  # 75: another process writes it
    done
  done
done
