#!/usr/bin/env bash
# The long experiments still going (results/table2, cross_body, table1's Meta-World rows,
# reward_goals) as three lanes in the background: one torch thread each, niced, logs in
# runs/lanes/LANE.log. Every command in a lane skips finished results and continues stopped ones
# from their checkpoints, so after a stop (a session's end, a reboot) the same command goes on.
# A lane already running (its lock held) is not started twice.
#   bash results/queue.sh          start the lanes
#   bash results/queue.sh table2 metaworld   start only these (two lanes keep two cores busy)
#   tail -f runs/lanes/*.log       follow them
#   pkill -TERM -f "mcat (train|transfer)"   stop them, each training run with a checkpoint of the
#                                    step it reached (the lane then ends; start it again to go on)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs/lanes
export OMP_NUM_THREADS=1
wanted=" $* "
for name in "$@"; do
  case $name in
    table2 | cross_body | metaworld) ;;
    *) echo "queue.sh: unknown lane '$name' (lanes: table2 cross_body metaworld)" >&2; exit 2 ;;
  esac
done

lane() {  # lane NAME COMMANDS: run COMMANDS in the background under NAME's lock
  local name=$1 commands=$2 pid code=0
  if [ "$wanted" != "  " ] && [[ "$wanted" != *" $name "* ]]; then
    return
  fi
  nohup nice -n 10 flock -n -E 75 "runs/lanes/$name.lock" bash -c "set -e; $commands" \
    >> "runs/lanes/$name.log" 2>&1 &
  pid=$!
  sleep 1
  if kill -0 "$pid" 2>/dev/null; then
    echo "lane $name started: runs/lanes/$name.log"
    return
  fi
  wait "$pid" || code=$?
  if [ "$code" = 75 ]; then
    echo "lane $name is already running (runs/lanes/$name.log)"
  else
    echo "lane $name ended at once (exit $code): runs/lanes/$name.log"
  fi
}

# What is left after the lanes' own work, most needed first, as one list that every lane walks
# when its own work is done: a finished result is skipped, and so is one another lane is writing
# (its command exits 75, the run directory's lock), so two lanes share the list without
# colliding. The Meta-World seeds 1-2 of Table 1 (own layouts; the aligned cube, where Zhang et
# al. transferred on seed 0), reach's first target with target data that reach its goal (does G
# keep the hand's geometry when R_t has seen the target's high rewards?), the baselines' Table 2
# (seed by seed: a whole row first), MCAT's delay-500 runs again for the checkpoints Table 2's
# replays need, then reach's other targets' data and seeds 1-2.
backlog='
  for t in coffee-push-v3 push-back-v3; do
    bash results/table1/run.sh metaworld-push push-v3 $t 1 2
  done
  bash results/table1/run.sh metaworld-push-aligned push-v3 push-back-v3 1 2
  bash results/reward_goals/run_target_data.sh 0.1,0.85,0.175 0
  for seed in 0 1 2; do
    bash results/table2/run.sh halfcheetah-armature "distral pearl hipbmdp mql" "$seed"
  done
  bash results/table2/mcat_rerun.sh "0 1 2"
  bash results/reward_goals/run_target_data.sh "0.1,0.85,0.175 0,0.9,0.3 -0.1,0.8,0.1" 0
  bash results/reward_goals/run.sh 1 2'
# paper Table 2 at 300k steps: the four baselines, seeds 0-2
lane table2 "
  for seed in 0 1 2; do
    bash results/table2/run.sh halfcheetah-armature 'distral pearl hipbmdp mql' \"\$seed\"
  done
  $backlog"
# paper Sec. 6 (2): 2 <-> 3 legs, ours, its ablation and Zhang et al., seeds 0-2
lane cross_body "bash results/cross_body/run.sh 0 1 2
  $backlog"
# Meta-World: Table 1 in the tasks' own layouts and the aligned ones (seed 0), Sec. 6 (1) (reach
# to other goals, seed 0)
lane metaworld "
  for family in metaworld-push metaworld-push-aligned; do
    for t in push-back-v3 coffee-push-v3; do
      bash results/table1/run.sh \$family push-v3 \$t 0
    done
  done
  bash results/reward_goals/run.sh 0
  $backlog"
