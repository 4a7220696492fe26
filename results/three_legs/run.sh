#!/usr/bin/env bash
# Is the 3-leg HalfCheetah learnable like the 2-leg one? Plain TD3, dense reward, one task each
# (armature 0.1, the standard value), the same budget and seed; resumable (re-run to continue).
#   OMP_NUM_THREADS=1 bash results/three_legs/run.sh [STEPS]     # default 30000
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-30000}
for family in halfcheetah-armature halfcheetah-3leg; do
  out=results/three_legs/runs/$family-td3-seed0
  [ -f "$out/summary.json" ] && continue  # finished (a clone has its logs, not its checkpoints)
  .venv/bin/mcat train "$family" --algo td3 --train-tasks 0.1 --test-tasks 0.3 --steps "$steps" \
    --learning-starts 5000 --eval-every 5000 --eval-episodes 3 --threads 1 --seed 0 \
    --out "$out"
done
