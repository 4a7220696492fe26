#!/usr/bin/env bash
# Stage the small log files of every run directory under the given folders (runs/ folders are
# ignored as a whole, so `git add -f`; replays and TensorBoard events stay out):
#   bash scripts/stage_runs.sh results/table2/runs [more folders]
#   bash scripts/stage_runs.sh --checkpoints results/table2/runs
# With --checkpoints, each unfinished run (no summary.json) also carries its newest complete
# checkpoint (the .pt and its sidecar, size and SHA-256 checked), so that a run longer than one
# machine's life goes on, identically, from a clone; its older committed checkpoints leave the
# index, and a finished run's leave it too. Checkpoints are 15-60 MB each: use it only for runs
# that cannot finish where they are.
# The results/*/commit_files.sh scripts call it; it only reads, so it is safe while runs write.
set -euo pipefail
checkpoints=0
if [ "${1:-}" = --checkpoints ]; then checkpoints=1; shift; fi

newest_complete() {  # newest_complete RUN_DIR: print the newest checkpoint whose sidecar matches
  local sidecar pt want_bytes want_sha
  for sidecar in $(ls -r "$1"checkpoints/step-*.json 2>/dev/null); do
    pt=${sidecar%.json}.pt
    [ -f "$pt" ] || continue
    want_bytes=$(grep -o '"bytes": *[0-9]*' "$sidecar" | grep -o '[0-9]*$')
    want_sha=$(grep -o '"sha256": *"[0-9a-f]*"' "$sidecar" | grep -o '[0-9a-f]\{64\}')
    [ "$(stat -c %s "$pt")" = "$want_bytes" ] || continue
    [ "$(sha256sum "$pt" | cut -d' ' -f1)" = "$want_sha" ] || continue
    echo "$pt"
    return
  done
}

for root in "$@"; do
  if [ ! -d "$root" ]; then echo "stage_runs.sh: no folder $root" >&2; exit 2; fi
  for run in "$root"/*/; do
    for f in config.json metrics.csv episodes.csv transfer.csv transfer_summary.csv summary.json; do
      if [ -f "$run$f" ]; then git add -f "$run$f"; fi
    done
    [ "$checkpoints" = 1 ] || continue
    git rm -r -q --cached --ignore-unmatch "${run}checkpoints" > /dev/null
    [ -f "${run}summary.json" ] && continue
    pt=$(newest_complete "$run")
    if [ -n "$pt" ]; then
      git add -f "$pt" "${pt%.pt}.json"
      echo "stage_runs.sh: $pt carried ($(du -h "$pt" | cut -f1))"
    fi
  done
done
