"""Where a Table 2 return comes from on HalfCheetah: the control cost against the forward reward.

HalfCheetah pays forward velocity minus ctrl_cost_weight * |a|^2 per step, so a policy that
pushes every joint to its limit pays 0.1 * 6 = 0.6 a step (600 over an episode) whatever it
achieves; a return below the random policy's (about -250) can be saturated actions, running
backwards, or both. For each run directory this replays the scored test-task episodes of its
newest checkpoint (the policy, seeds and adaptation that `mcat eval` uses, so the totals equal
its returns: "logged return" is the run's own evaluation at that step, when the checkpoint is at
one), splits each task's return into the two parts, and does the same for a uniformly random
policy on the same episodes (the first run's seed):

    .venv/bin/python results/table2/action_cost.py results/table2/runs/*/ \
        > results/table2/action_cost.md

A stopped run is read at the step of its newest checkpoint (the column "step"); a run without
checkpoints (finished on an earlier machine, only its logs kept) is skipped with a message, or,
with ``--update results/table2/action_cost.md`` (which rewrites that file), keeps its rows from
the file's previous version (kept_rows.py).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from kept_rows import collect, run_script, split_update

from mcat.evaluation import random_actions, scored_episodes, scoring_policy
from mcat.runs import load_run_config
from mcat.tasks import get_family, task_key
from mcat.train import load_run_agent, load_run_replay, run_tasks


def parts(cfg, tasks, policy, history, delay) -> list[tuple[float, float, float, float]]:
    """Per task of ``tasks``: return, control cost, mean |a| and the share of saturated action
    components over the scored episodes of ``cfg`` (seeds as :func:`evaluate_agent`'s)."""
    family = get_family(cfg.family)
    probe = family.make_env(tasks[0], style=cfg.style)
    weight = float(probe.unwrapped._ctrl_cost_weight)  # HalfCheetah-v5: 0.1
    probe.close()
    totals, owner, episodes = scored_episodes(cfg, tasks, policy, history, delay, record=True)
    assert episodes is not None
    out = []
    for i in range(len(tasks)):
        mine = [e for e, o in zip(episodes, owner, strict=True) if o == i]
        acts = np.concatenate([e.act for e in mine]).astype(np.float64)
        ctrl = -weight * float((acts**2).sum()) / len(mine)
        ret = float(totals[owner == i].mean())
        out.append((ret, ctrl, float(np.abs(acts).mean()), float((np.abs(acts) > 0.95).mean())))
    return out


def rows(name: str, step: str, tasks, measured, logged: dict[str, float]) -> list[str]:
    lines = []
    for v, (ret, ctrl, mean_abs, saturated) in zip(tasks, measured, strict=True):
        before = logged.get(task_key(v), float("nan"))
        lines.append(
            f"| {name} | {step} | {v} | {ret:.1f} | {before:.1f} | {ctrl:.1f} | {ret - ctrl:.1f} "
            f"| {mean_abs:.2f} | {100 * saturated:.0f}% |"
        )
    ret, ctrl, mean_abs, saturated = np.mean(measured, axis=0)
    lines.append(
        f"| **{name}** | {step} | mean | **{ret:.1f}** | | **{ctrl:.1f}** | **{ret - ctrl:.1f}** "
        f"| {mean_abs:.2f} | {100 * saturated:.0f}% |"
    )
    return lines


def run_rows(run_dir: Path) -> list[str]:
    cfg, agent, state = load_run_agent(run_dir)
    _, tasks = run_tasks(cfg)
    replay = (
        load_run_replay(cfg, state) if getattr(agent, "adaptation_uses_replay", False) else None
    )
    measured = parts(cfg, tasks, *scoring_policy(agent, cfg, tasks, replay))
    step = int(state.get("env_steps", -1))
    with open(run_dir / "metrics.csv") as f:  # the run's own evaluation at this step, if any
        logged = {
            r["task"]: float(r["return"])
            for r in csv.DictReader(f)
            if r["split"] == "test" and int(r["step"]) == step
        }
    return rows(run_dir.name, f"{step:,}", tasks, measured, logged)


def random_rows(run_dir: Path) -> list[str]:
    """The uniformly random policy on the same episodes (the actions drawn as
    :func:`mcat.evaluation.random_policy_returns` draws them)."""
    cfg = load_run_config(run_dir)
    train, tasks = run_tasks(cfg)
    draw = random_actions(cfg, train + tasks)

    def policy(obs: np.ndarray, _owner: np.ndarray, _ctx: object) -> np.ndarray:
        return draw(obs)

    # drawn for the training tasks too, in that order, as `mcat train` reports its random bar
    measured = parts(cfg, train + tasks, policy, 1, 1)[len(train) :]
    return rows(f"uniform random (seed {cfg.seed})", "", tasks, measured, {})


def main(argv: list[str]) -> int:
    try:
        update, runs = split_update(argv)
    except ValueError as exc:
        print(f"action_cost.py: {exc}", file=sys.stderr)
        return 2
    if not runs:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: action_cost.py [--update FILE] RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    head = [
        "| run | step | test task | return | logged return | control cost | forward reward "
        "| mean abs action | components at abs > 0.95 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *random_rows(Path(runs[0])),
    ]
    collect("action_cost.py", update, runs, run_rows, head)
    return 0


if __name__ == "__main__":
    run_script("action_cost.py", main, __doc__)
