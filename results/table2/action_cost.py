"""Where a Table 2 return comes from on HalfCheetah: the control cost against the forward reward.

HalfCheetah pays forward velocity minus ctrl_cost_weight * |a|^2 per step, so a policy that
pushes every joint to its limit pays 0.1 * 6 = 0.6 a step (600 over an episode) whatever it
achieves; a return below the random policy's (about -250) can be saturated actions, running
backwards, or both. For each run directory this replays the scored test-task episodes of its
newest checkpoint (the policy, seeds and adaptation that `mcat eval` uses, so the totals equal
its returns: "logged return" is the run's own evaluation at that step, when the checkpoint is at
one) and splits each task's return into the two parts:

    .venv/bin/python results/table2/action_cost.py results/table2/runs/*/ \
        > results/table2/action_cost.md

A stopped run is read at the step of its newest checkpoint (the column "step"); a run without
checkpoints (finished on an earlier machine, only its logs kept) is skipped with a message.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from mcat.collect import run_episodes
from mcat.errors import MCATError
from mcat.evaluation import eval_seed, scoring_policy
from mcat.tasks import get_family
from mcat.train import load_run_agent, load_run_replay, run_tasks


def split(run_dir: Path) -> list[str]:
    cfg, agent, state = load_run_agent(run_dir)
    family = get_family(cfg.family)
    _, tasks = run_tasks(cfg)
    probe = family.make_env(tasks[0], style=cfg.style)
    weight = float(probe.unwrapped._ctrl_cost_weight)  # HalfCheetah-v5: 0.1
    probe.close()
    replay = (
        load_run_replay(cfg, state) if getattr(agent, "adaptation_uses_replay", False) else None
    )
    policy, history, delay = scoring_policy(agent, cfg, tasks, replay)
    seeds = [[eval_seed(cfg.seed, v, e) for e in range(cfg.eval_episodes)] for v in tasks]
    totals, owner, episodes = run_episodes(
        family,
        tasks,
        seeds,
        policy,
        history,
        reward_delay=delay,
        style=cfg.style,
        max_episode_steps=cfg.max_episode_steps,
        record=True,
    )
    assert episodes is not None
    step = int(state.get("env_steps", -1))
    with open(run_dir / "metrics.csv") as f:  # the run's own evaluation at this step, if any
        logged = {
            r["task"]: float(r["return"])
            for r in csv.DictReader(f)
            if r["split"] == "test" and int(r["step"]) == step
        }
    rows = []
    for i, v in enumerate(tasks):
        mine = [e for e, o in zip(episodes, owner, strict=True) if o == i]
        acts = np.concatenate([e.act for e in mine])
        ctrl = -weight * float((acts.astype(np.float64) ** 2).sum()) / len(mine)
        ret = float(totals[owner == i].mean())
        saturated = float((np.abs(acts) > 0.95).mean())
        before = logged.get(str(v), float("nan"))
        rows.append(
            f"| {run_dir.name} | {step:,} | {v} | {ret:.1f} | {before:.1f} | {ctrl:.1f} "
            f"| {ret - ctrl:.1f} | {np.abs(acts).mean():.2f} | {100 * saturated:.0f}% |"
        )
    return rows


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: action_cost.py RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    print(
        "| run | step | test task | return | logged return | control cost | forward reward "
        "| mean abs action | components at abs > 0.95 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in argv:
        try:
            rows = split(Path(run))
        except MCATError as exc:  # a run whose checkpoints were not kept (an earlier machine)
            print(f"action_cost.py: skipped {run}: {exc}", file=sys.stderr)
            continue
        print("\n".join(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
