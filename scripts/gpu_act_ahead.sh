#!/usr/bin/env bash
# The fast path's open GPU measurements (act_ahead, --compile, --vector-envs worker, the seeds'
# collectors as one group), from the repository root of a CUDA machine (results/gpu/README.md).
# Parts, in the order they run (PARTS, default "timings tests host cli before36", picks some; a
# call cut short at the 10-minute limit keeps what it printed, and a second call runs the parts
# it did not reach, e.g. PARTS="tests host cli"):
#   timings  benchmarks/throughput.py: SB3 and today's MCAT, then full MCAT on the fast path, the
#            runs the targets need first (each line printed as its run ends, with the
#            run's wall time, compiling included): 1 seed with act_ahead and --compile; 10 seeds
#            so, environments in one worker subprocess per seed; 1 seed with act_ahead only and
#            plain; 10 seeds compiled with act_ahead in the process; 10 seeds with act_ahead only
#            (worker); 1 seed compiled only;
#   tests    the GPU step checks of tests/test_fast.py: graphs of one seed and of two equal eager
#            steps, plain and compiled (every step and acting captured); steps, plain and
#            compiled, equal the default path's on the same batches; vmapped linear layers;
#   host     benchmarks/fast_host.py: the host's work per round with 10 seeds (and, --stub-envs,
#            without the environments' own work), environments in the process, one subprocess
#            each (async) and one worker subprocess per seed (worker);
#   cli      `mcat train --seeds 0 1 --act-ahead` on the GPU, twice uninterrupted (the second with
#            `--vector-envs worker`) and once killed at env step 3,000 and re-run: the logs must
#            be identical (as the CPU tests check);
#   before36 1 and 10 seeds in the process, plain and with the learner as it was before session
#            36 (more kernels: benchmarks/fast_kernels.py).
#   bash scripts/gpu_act_ahead.sh [OUT_DIR]        (default results/gpu/act_ahead)
# Set-up as for scripts/gpu_check.sh: `bash scripts/gpu_wheels.sh` here once (.whl/), then on the
# GPU machine, carrying .whl/, one call (timeout_s 600):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 \
#     && bash scripts/gpu_act_ahead.sh $OUT
# and, if time is left, a second with the parts the first did not reach. (--compile needs
# triton, which CUDA builds of torch bring; the machines' torch has it.)
# The same check, smaller, on this CPU machine (that the next GPU call will run):
#   DEVICE=cpu CLI_STEPS=1300 CRASH_AT=1250 HOST_SEEDS=2 RUNS="1:sync:ahead 2:worker:ahead" \
#     STEPS=600 PATH=$PWD/.venv/bin:$PATH PYTHONPATH=src bash scripts/gpu_act_ahead.sh /tmp/act_ahead
set -uo pipefail
out=${1:-results/gpu/act_ahead}
device=${DEVICE:-cuda} crash_at=${CRASH_AT:-3000}
mkdir -p "$out"
parts=" ${PARTS:-timings tests host cli before36} "
echo "parts:$parts(seconds since the start: $SECONDS)"
if [ "$device" = cuda ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
fi
fast=(python3 benchmarks/throughput.py --steps "${STEPS:-3000}" --threads 2 --device "$device"
      --only mcat)
if [[ $parts == *" timings "* ]]; then
  # shellcheck disable=SC2086  # RUNS is a list of run specs
  "${fast[@]}" --fast-runs ${RUNS:-1:sync:ahead+compile 10:worker:ahead+compile 1:sync:ahead \
      1:sync 10:sync:ahead+compile 10:worker:ahead 1:sync:compile} 2>&1 | tee "$out/throughput.txt"
  echo "timings done at $SECONDS s"
fi
if [ "$device" = cuda ] && [[ $parts == *" tests "* ]]; then
  MCAT_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider tests/test_fast.py \
      -m "slow or not slow" -k "(equal and not seeds) or linear" 2>&1 | tail -8 \
      | tee "$out/gpu_tests.txt"
  echo "tests done at $SECONDS s"
fi
if [[ $parts == *" host "* ]]; then
  python3 benchmarks/fast_host.py --seeds "${HOST_SEEDS:-10}" --vector-envs sync async worker \
      --device "$device" --stub-envs 2>&1 \
      | tee "$out/fast_host.txt"
fi
if [[ $parts == *" cli "* ]]; then
  run=(python3 -m mcat.cli train halfcheetah-armature --algo mcat --seeds 0 1 --act-ahead
       --steps "${CLI_STEPS:-5000}" --learning-starts 1000 --eval-every 2000 --checkpoint-every 2000
       --max-episode-steps 200 --reward-delay 50 --device "$device" --quiet)
  tmp=$(mktemp -d)
  {
      start=$SECONDS
      "${run[@]}" --out "$tmp/a" | tail -2
      echo "uninterrupted run: $((SECONDS - start)) s"
      "${run[@]}" --vector-envs worker --out "$tmp/c" > /dev/null
      MCAT_TEST_CRASH=step:$crash_at "${run[@]}" --out "$tmp/b" > /dev/null 2>&1
      echo "killed at $crash_at: exit $?; re-run:"
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
  echo "cli done at $SECONDS s"
fi
if [[ $parts == *" before36 "* ]]; then
  # shellcheck disable=SC2086  # FAST_SEEDS is a list of seed counts
  "${fast[@]}" --fast-seeds ${FAST_SEEDS:-1 10} --fast-vector-envs sync --fast-before-36 2>&1 \
      | tee "$out/throughput_before36.txt"
fi
