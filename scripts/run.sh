#!/usr/bin/env bash
# Quick start: set up (first time) and run the main job. With arguments, runs `mcat ARGS...`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -gt 0 ]; then
  exec .venv/bin/mcat "$@"
fi
# The main job on its default: a short meta-training run of context-conditioned TD3 on the
# HalfCheetah armature family (5 training tasks, 4 test tasks, reward delayed by 200 steps),
# ending with the table of train/test returns and a plot of the learning curves.
exec .venv/bin/mcat train halfcheetah-armature --algo ctd3 --steps 20000 --reward-delay 200 \
  --learning-starts 5000 --eval-every 5000 --out runs/quickstart --overwrite --plot runs/quickstart/curves.png
