#!/usr/bin/env bash
# Quick start: set up (first time) and run the main job. With arguments, runs `mcat ARGS...`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -gt 0 ]; then
  exec .venv/bin/mcat "$@"
fi
# The main job: the two halves of MCAT on the small NumPy family point-gain (s' = s + 0.1 gain a,
# reward = -distance to the goal), a few minutes on 2 cores (README, Quick start):
# 1. meta-training a context-conditioned TD3 policy on the 5 training tasks, then the trained
#    policy beside a random one on the 4 test tasks it never trained on;
# 2. the action translator: a policy trained on gain 0.75, moved to gain 1.5 (twice as fast) by
#    H(s, a), against the same policy used there unchanged.
# MuJoCo families and sparse (delayed) rewards take hours: see `mcat presets` and the README.
# One torch thread: these small networks gain little from two, and the run is then the one whose
# numbers the README gives (another thread count changes the low bits of sums, and the run).
echo "== 1/2 meta-training on point-gain (ctd3, 5,000 env steps) ==" >&2
.venv/bin/mcat train point-gain --algo ctd3 --steps 5000 --learning-starts 1000 \
  --eval-every 1000 --eval-episodes 3 --threads 1 --out runs/quickstart --overwrite \
  --plot runs/quickstart/curves.png
echo "== 2/2 action translator: a gain-0.75 policy moved to gain 1.5 ==" >&2
exec .venv/bin/mcat transfer point-gain --source 0.75 --target 1.5 --source-steps 3000 \
  --dataset-size 2000 --model-steps 500 --translator-steps 800 \
  --threads 1 --out runs/quickstart-transfer --cache runs/quickstart-cache --overwrite
