#!/usr/bin/env bash
# Same seed, same config, twice: are metrics.csv and episodes.csv byte-identical? On the given
# device (cpu or cuda), a short MCAT run on two HalfCheetah armatures (SIL, online H and policy
# transfer all active). With DETERMINISTIC=1 the runs set CUBLAS_WORKSPACE_CONFIG and
# torch.use_deterministic_algorithms (see README, Determinism).
#   bash benchmarks/determinism.sh cuda OUTDIR
set -euo pipefail
device=${1:-cpu} out=${2:-/tmp/mcat-determinism}
mcat=${MCAT:-.venv/bin/mcat}
args=(train halfcheetah-armature --algo mcat --steps 6000 --train-tasks 0.1 0.5 --test-tasks 0.3 --max-episode-steps 250
      --learning-starts 1000 --eval-every 1000 --reward-delay 50 --pt-window 1 --pt-stale-after 4 --device "$device"
      --threads 2 --quiet --overwrite)
extra=()
if [ "${DETERMINISTIC:-0}" = 1 ]; then extra=(--set deterministic=true); export CUBLAS_WORKSPACE_CONFIG=:4096:8; fi
for name in a b; do
  $mcat "${args[@]}" "${extra[@]+"${extra[@]}"}" --out "$out/$device-$name" > /dev/null
done
for f in metrics.csv episodes.csv transfer.csv; do
  if cmp -s "$out/$device-a/$f" "$out/$device-b/$f"; then echo "$device: $f identical"; else
    echo "$device: $f differs"; paste -d'|' "$out/$device-a/$f" "$out/$device-b/$f" | awk -F'|' '$1 != $2' | head -3; fi
done
