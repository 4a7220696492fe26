#!/usr/bin/env bash
# Sec. 6 (1) with other target data: the target's dataset collected by the target's own scripted
# policy (Meta-World's reach told the target's goal, with the same action noise 0.3) instead of
# the source policy, so that R_t sees the target's high rewards (results/reward_goals/README.md:
# the source policy's data never come nearer than 0.066 to the target's goal). Ours (G and H
# jointly) and Zhang et al.; the source dataset is the one of run.sh (shared through runs/cache).
# Resumable like run.sh.
#   OMP_NUM_THREADS=1 bash results/reward_goals/run_target_data.sh "0.1,0.85,0.175" 0 1 2
set -euo pipefail
cd "$(dirname "$0")/../.."
source=0,0.85,0.175 targets=$1; shift
for seed in "$@"; do
  for target in $targets; do
    for variant in "seed$seed-mcat --translator mcat" "seed$seed-dcc --translator dcc"; do
      set -- $variant
      name=$1; shift
      out=results/reward_goals/reach-$source-to-$target-scripted-target-data-$name
      [ -f "$out/summary.json" ] && continue
      .venv/bin/mcat transfer metaworld-reach --source "$source" --target "$target" --seed "$seed" \
        --state-translator --target-data-policy --target-policy scripted "$@" --threads 1 \
        --out "$out" --cache runs/cache || { code=$?; [ "$code" = 75 ] || exit "$code"; echo "$out: busy elsewhere, skipped"; }  # 75: another process writes it
    done
  done
done
