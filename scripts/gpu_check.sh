#!/usr/bin/env bash
# The fast path's GPU check, one command from the repository root of a CUDA machine:
#   bash scripts/gpu_check.sh [OUT_DIR]          (default results/gpu)
# 1. the step checks of tests/test_fast.py on the GPU (fast step = default step on the same
#    batches, vmapped and per seed; CUDA-graph replays = eager steps);
# 2. benchmarks/throughput.py on HalfCheetah: SB3 TD3, today's path (ctd3, MCAT without and with
#    policy transfer) and full MCAT on the fast path with 1, 3 and 10 seeds, in one process, its
#    environments stepped in the process and in subprocesses (--vector-envs async), each fast
#    run followed by a profile of 50 rounds;
# 3. `mcat train --seeds 0 1` on the GPU, uninterrupted and killed then re-run, compared.
# Needs gymnasium[mujoco] and (for the SB3 line) stable-baselines3 importable, and PYTHONPATH=src
# or an installed mcat. On a machine without network access, bring them as wheels (for its
# Python) in .whl/ (`bash scripts/gpu_wheels.sh`) and install them first:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:src
set -uo pipefail
out=${1:-results/gpu}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0])" \
    | tee -a "$out/gpu.txt"
MCAT_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider tests/test_fast.py \
    -k "equal and not seeds" 2>&1 | tee "$out/gpu_tests.txt"
python3 benchmarks/throughput.py --steps "${STEPS:-3000}" --threads 2 --device cuda --only mcat \
    --fast-seeds 1 3 10 --fast-vector-envs sync async --fast-profile 50 2>&1 \
    | tee "$out/throughput_fast.txt"
# 3. the command line on the GPU: two seeds of MCAT on HalfCheetah (evaluation, checkpoints),
#    and the same run killed at env step 3,000 and re-run, compared file by file
run=(python3 -m mcat.cli train halfcheetah-armature --algo mcat --seeds 0 1 --steps 5000
     --learning-starts 1000 --eval-every 2000 --checkpoint-every 2000 --max-episode-steps 200
     --reward-delay 50 --device cuda --quiet)
tmp=$(mktemp -d)
{
    SECONDS=0
    "${run[@]}" --out "$tmp/a" | tail -4
    echo "uninterrupted run: $SECONDS s"
    MCAT_TEST_CRASH=step:3000 "${run[@]}" --out "$tmp/b" > /dev/null 2>&1
    echo "killed at 3,000: exit $?; re-run:"
    "${run[@]}" --out "$tmp/b" | tail -1
    for s in seed0 seed1; do
        for f in metrics.csv episodes.csv transfer.csv; do
            cmp -s "$tmp/a/$s/$f" "$tmp/b/$s/$f" && echo "$s/$f identical" || echo "$s/$f differs"
        done
    done
    cat "$tmp/a/seed0/metrics.csv"
} 2>&1 | tee "$out/cli_check.txt"
