#!/usr/bin/env bash
# The toy ctd3 learning check of tests/test_train.py (test_ctd3_learns_the_toy_family) over three
# seeds, at the test's budget (5,000 steps) and at the 3,000 it used before, with one torch thread
# as the suite runs; prints each run's final train/test means beside a random policy's.
#   bash benchmarks/ctd3_toy_seeds.sh     # about 8 minutes of one core
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
for steps in 3000 5000; do
  for seed in 0 1 2; do
    line=$(OMP_NUM_THREADS=1 .venv/bin/mcat train point-gain --steps "$steps" --learning-starts 1000 \
      --eval-every 1000 --threads 1 --seed "$seed" --out "$out/s$seed-$steps" --quiet | grep "mean:")
    echo "steps $steps seed $seed: $line"
  done
done
rm -rf "$out"
