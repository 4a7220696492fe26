#!/usr/bin/env bash
# Table 1 (fixed-dataset transfer): the three translator rows (MCAT with the NLL of Eq. 3, MCAT with
# the L1 distance of the authors' code, the Zhang et al. baseline) for the given seeds. Each seed's
# source policy, datasets and target F are cached in runs/cache and shared by the three rows.
#   bash results/table1/run.sh halfcheetah-armature 0.1 0.5 0 1 2
#   SOURCE_STEPS=300000 bash results/table1/run.sh halfcheetah-armature 0.1 0.5 0
#   bash results/table1/run.sh ant-cripple -1 3 0 1 2
#   bash results/table1/run.sh metaworld-push push-v3 coffee-push-v3 0 1 2   # scripted source
#   bash results/table1/run.sh metaworld-push-aligned push-v3 coffee-push-v3 0 1 2  # same layout
set -euo pipefail
family=$1 source=$2 target=$3; shift 3
steps=${SOURCE_STEPS:-60000}
if [[ "$family" == metaworld-push* ]]; then
  tag=scripted source_flags=()  # Meta-World's hand-designed source policy
else
  tag=source$((steps / 1000))k source_flags=(--source-steps "$steps")
fi
for seed in "$@"; do
  for variant in "nll --objective nll" "l1 --objective l1" "dcc --translator dcc"; do
    set -- $variant
    name=$1; shift
    out=results/table1/$family-$source-to-$target-$tag-seed$seed-$name
    [ -f "$out/summary.json" ] && continue
    # exit 75: another process is writing this result (or its source policy): left to it
    .venv/bin/mcat transfer "$family" --source "$source" --target "$target" --seed "$seed" \
      "${source_flags[@]}" --threads "${THREADS:-1}" "$@" --out "$out" --cache runs/cache ||
      { code=$?; [ "$code" = 75 ] || exit "$code"; echo "$out: busy elsewhere, skipped"; }
  done
done
