#!/usr/bin/env bash
# Set-up shared by scripts/run.sh and scripts/test.sh: a virtual environment in .venv with mcat
# installed in editable mode. Idempotent and fast when nothing changed (pip runs again only when
# pyproject.toml changed). torch is installed first as torch==2.13.0 (override with
# MCAT_TORCH="torch==X"): on machines with a local CPU wheel of it pip takes that file, and the
# looser "torch>=2.3" of pyproject.toml is then already satisfied, so no CUDA build is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MCAT_VENV:-.venv}
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "mcat needs Python >= 3.11 ($PY is older)" >&2; exit 1; }
stamp="$VENV/.mcat-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/mcat" ]; then
  exit 0
fi
pip_install() {
  # pip warns about every missing entry of a local extra index; keep the output readable.
  "$VENV/bin/python" -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
start=$SECONDS
echo "setting up $VENV (first run only, 1-3 minutes):" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
echo "  [1/3] ${MCAT_TORCH:-torch==2.13.0} (a CPU build where this machine has one)" >&2
pip_install "${MCAT_TORCH:-torch==2.13.0}"
echo "  [2/3] mcat and its dependencies: gymnasium[mujoco], mujoco, numpy, matplotlib," \
  "tensorboard, ray, pyyaml, imageio-ffmpeg; pytest, ruff, mypy and stable-baselines3 for the tests" >&2
pip_install -e ".[dev]"
# metaworld 3.1.1 pins mujoco==3.3.0; we keep the MuJoCo every result here was made with and
# install it without that pin (mcat.tasks.metaworld_families makes it work there; README, Meta-World)
echo "  [3/3] metaworld==3.1.1 (without its mujoco pin)" >&2
pip_install --no-deps "metaworld==3.1.1" 2>&1 | { grep -v -e "dependency resolver" -e "requires mujoco==3.3.0" || true; }
echo "  done in $((SECONDS - start)) s" >&2
echo "$want" > "$stamp"
