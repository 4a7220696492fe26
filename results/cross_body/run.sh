#!/usr/bin/env bash
# Sec. 6 (2): transfer between the 2-leg and the 3-leg HalfCheetah (other state and action spaces),
# ours (G and H trained jointly; and without its distribution term) and Zhang et al. 2020c (state
# and action maps), both directions,
# armature 0.1 (the standard value) on both bodies. Each seed's source policy, target data policy,
# datasets, F_t and R_t are cached in runs/cache and shared by the three variants. Resumable:
# re-run the same command (finished results are skipped, TD3 runs continue from checkpoints).
#   OMP_NUM_THREADS=1 bash results/cross_body/run.sh 0 1 2
set -euo pipefail
cd "$(dirname "$0")/../.."
for seed in "$@"; do
  for pair in "halfcheetah-armature halfcheetah-3leg" "halfcheetah-3leg halfcheetah-armature"; do
    set -- $pair
    for variant in "seed$seed-mcat" "seed$seed-dcc --translator dcc" "nodist-seed$seed-mcat --distribution-weight 0"; do
      set -- "$1" "$2" $variant
      out=results/cross_body/$1-to-$2-$3
      [ -f "$out/summary.json" ] || .venv/bin/mcat transfer "$1" --source 0.1 --target-family "$2" \
        --target 0.1 --seed "$seed" "${@:4}" --threads 1 --out "$out" --cache runs/cache ||
        { code=$?; [ "$code" = 75 ] || exit "$code"; echo "$out: busy elsewhere, skipped"; }  # 75: another process writes it
      set -- "$1" "$2"
    done
  done
done
