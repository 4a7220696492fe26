#!/usr/bin/env bash
# The packages the GPU machines lack, as wheels for their Python 3.12 (they reach no network):
# the `run` tool carries .whl/ there (carry [".whl"]), where scripts/gpu_check.sh's preamble
# installs them. Versions: those the GPU measurements in results/gpu/README.md used.
#   bash scripts/gpu_wheels.sh           -> .whl/*.whl
set -euo pipefail
cd "$(dirname "$0")/.."
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux_2_5_x86_64 manylinux1_x86_64 any; do
  platforms+=(--platform "$p")
done
.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 "${platforms[@]}" \
  -d .whl gymnasium==1.4.0 farama-notifications==0.0.4 stable-baselines3==2.9.2 mujoco==4.0.0 \
  mujoco-core==4.0.0 mujoco-studio==4.0.0 glfw==2.11.0 pyopengl==3.1.10 websockets==15.0.1
ls .whl
