#!/usr/bin/env bash
# MCAT at the paper's budget: results/table2's MCAT runs (halfcheetah-armature, delay 500, 300k
# env steps, mcat_runs/) trained on to 2M env steps into results/table2/long_runs/. Where the
# 300k run's final checkpoint is on this machine, the run is copied and continued from it
# (`mcat train --resume DIR --steps 2000000`: the run a 2M budget makes from the start, byte for
# byte, README "Training on to a larger budget"); where neither the long run's nor the 300k run's
# checkpoints are on this machine (a clone: git keeps no checkpoints), a long run not yet begun
# starts from step 0 with the 2M budget, and one whose logs are committed is refused in one line
# (its logs are kept; the error says how to train it again into another folder). Variant nopt: MCAT without policy transfer
# (results/table34's delay-500 nopt runs, whose checkpoints were not kept: from step 0), for the
# paper's Table 3 at 1M (STEPS=1000000) or Table 2's budget. Resumable: kill it any time and run
# it again; a run another process is writing (exit 75) is skipped, so two lanes can share a list.
#   OMP_NUM_THREADS=1 bash results/table2/long_run.sh "0 1 2"          # MCAT
#   OMP_NUM_THREADS=1 bash results/table2/long_run.sh "0 1 2" nopt     # MCAT w/o PT
set -euo pipefail
seeds=$1 variants=${2:-mcat}
steps=${STEPS:-2000000}
mcat=${MCAT:-.venv/bin/mcat}
busy() { [ "$1" = 75 ] || exit "$1"; echo "$2: busy elsewhere, skipped"; }
for variant in $variants; do
  for seed in $seeds; do
    name=halfcheetah-armature-delay500-$variant-seed$seed
    case $variant in
      mcat) short=results/table2/mcat_runs/$name ;;
      nopt) short=results/table34/runs/$name ;;
      *) echo "unknown variant $variant (mcat or nopt)" >&2; exit 2 ;;
    esac
    out=results/table2/long_runs/$name last=$short/checkpoints/step-000300000
    if [ ! -f "$out/config.json" ] && [ -f "$last.json" ]; then
      rm -rf "$out.tmp" && mkdir -p "$out.tmp/checkpoints"
      for f in config.json metrics.csv episodes.csv transfer.csv transfer_summary.csv; do
        if [ -f "$short/$f" ]; then cp "$short/$f" "$out.tmp/"; fi
      done
      cp "$last.json" "$last.pt" "$out.tmp/checkpoints/"
      mv "$out.tmp" "$out"  # whole or not at all
    fi
    if [ -f "$out/config.json" ]; then
      $mcat train --resume "$out" --steps "$steps" || busy $? "$out"
    else
      $mcat train --config "$short/config.json" --steps "$steps" --out "$out" || busy $? "$out"
    fi
  done
done
