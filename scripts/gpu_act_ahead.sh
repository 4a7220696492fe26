#!/usr/bin/env bash
# act_ahead on a GPU, one command from the repository root of a CUDA machine (results/gpu/README.md):
#   bash scripts/gpu_act_ahead.sh [OUT_DIR]        (default results/gpu/act_ahead)
# 1. `mcat train --seeds 0 1 --act-ahead` on the GPU, twice uninterrupted (the second with
#    `--vector-envs worker`) and once killed at env step 3,000 and re-run: the logs must be
#    identical (as the CPU tests check);
# 2. benchmarks/fast_host.py: the host's work per round with 10 seeds, environments in the
#    process, one subprocess each (async) and one worker subprocess per seed (worker);
# 3. benchmarks/throughput.py: full MCAT on the fast path, 1 and 10 seeds, environments in the
#    process and in worker subprocesses, each with and without act_ahead, in one process.
# Set-up as for scripts/gpu_check.sh: `bash scripts/gpu_wheels.sh` here once (.whl/), then on the
# GPU machine, carrying .whl/, one call:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 \
#     && bash scripts/gpu_act_ahead.sh $OUT
set -uo pipefail
out=${1:-results/gpu/act_ahead}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
run=(python3 -m mcat.cli train halfcheetah-armature --algo mcat --seeds 0 1 --act-ahead
     --steps 5000 --learning-starts 1000 --eval-every 2000 --checkpoint-every 2000
     --max-episode-steps 200 --reward-delay 50 --device cuda --quiet)
tmp=$(mktemp -d)
{
    SECONDS=0
    "${run[@]}" --out "$tmp/a" | tail -2
    echo "uninterrupted run: $SECONDS s"
    "${run[@]}" --vector-envs worker --out "$tmp/c" > /dev/null
    MCAT_TEST_CRASH=step:3000 "${run[@]}" --out "$tmp/b" > /dev/null 2>&1
    echo "killed at 3,000: exit $?; re-run:"
    "${run[@]}" --out "$tmp/b" | tail -1
    for other in b c; do
        for s in seed0 seed1; do
            for f in metrics.csv episodes.csv transfer.csv; do
                cmp -s "$tmp/a/$s/$f" "$tmp/$other/$s/$f" && echo "$other: $s/$f identical" \
                    || echo "$other: $s/$f DIFFERS"
            done
        done
    done
} 2>&1 | tee "$out/cli_check.txt"
python3 benchmarks/fast_host.py --seeds 10 --vector-envs sync async worker --device cuda 2>&1 \
    | tee "$out/fast_host.txt"
python3 benchmarks/throughput.py --steps "${STEPS:-3000}" --threads 2 --device cuda --only mcat \
    --fast-seeds 1 10 --fast-vector-envs sync worker --fast-act-ahead 2>&1 \
    | tee "$out/throughput.txt"
