#!/usr/bin/env bash
# Quick start: set up (first time) and run the main job. With arguments, runs `mcat ARGS...`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -gt 0 ]; then
  exec .venv/bin/mcat "$@"
fi
# The main job on its default: the task families, and a delayed-reward rollout on one of them.
.venv/bin/mcat families
.venv/bin/mcat rollout halfcheetah-armature --task 0.5 --reward-delay 500 --episodes 2
