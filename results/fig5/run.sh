#!/usr/bin/env bash
# Fig. 5: one context-conditioned translator H for every ordered pair of tasks, improvement (%) of
# the transferred policy H(s, pi(s, z_src), z_src, z_tgt) over the source policy pi(s, z_src) on
# each target. Objectives nll (Eq. 3) and l1 (the authors' Table-1 code) by default (OBJECTIVES
# picks). The source policy (ctd3 on dense reward, all tasks together; SOURCE_STEPS env steps,
# default 300,000, which then names the result folder), the datasets and F are cached in runs/cache
# and shared by the objectives. A finished matrix is skipped.
#   bash results/fig5/run.sh halfcheetah-armature 0.1 0.2 0.3 0.4 0.5
#   bash results/fig5/run.sh ant-cripple 0 1 2 3
#   SOURCE_STEPS=60000 OBJECTIVES=l1 bash results/fig5/run.sh halfcheetah-armature 0.1 0.2 0.3 0.4 0.5
set -euo pipefail
family=$1; shift
steps=${SOURCE_STEPS:-300000}
name=$family; [ "$steps" != 300000 ] && name=$family-source$((steps / 1000))k
for objective in ${OBJECTIVES:-nll l1}; do
  out=results/fig5/$name-$objective
  [ -f "$out/summary.json" ] && continue
  .venv/bin/mcat transfer-matrix "$family" --tasks "$@" --source-steps "$steps" --objective "$objective" \
    --threads "${THREADS:-1}" --out "$out" --cache runs/cache --overwrite
done
