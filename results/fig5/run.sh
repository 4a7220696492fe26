#!/usr/bin/env bash
# Fig. 5: one context-conditioned translator H for every ordered pair of tasks, improvement (%) of
# the transferred policy H(s, pi(s, z_src), z_src, z_tgt) over the source policy pi(s, z_src) on
# each target. Both objectives: nll (Eq. 3) and l1 (the authors' Table-1 code). The source policy
# (ctd3 on dense reward, all tasks together), the datasets and F are cached in runs/cache and
# shared by the two objectives. A finished matrix is skipped.
#   bash results/fig5/run.sh halfcheetah-armature 0.1 0.2 0.3 0.4 0.5
#   bash results/fig5/run.sh ant-cripple 0 1 2 3
set -euo pipefail
family=$1; shift
for objective in nll l1; do
  out=results/fig5/$family-$objective
  [ -f "$out/summary.json" ] && continue
  .venv/bin/mcat transfer-matrix "$family" --tasks "$@" --objective "$objective" --threads "${THREADS:-1}" \
    --out "$out" --cache runs/cache --overwrite
done
