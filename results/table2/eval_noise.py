"""How much of a Table 2 return is the evaluation's own noise: each run's newest checkpoint scored
on its test tasks with more episodes than the runs use (3), beside the random policy.

A run's logged test return is the mean of 3 episodes on each of 4 test tasks. This replays the
same checkpoint's scored episodes with N episodes per task (the evaluation's seeds: the first 3
are the logged episodes' seeds; adaptation as `mcat eval` does it) and prints per run: the
logged return at that step, the N-episode mean over the test tasks, the standard deviation of
single episodes around their task's mean, and from it the standard error of a 3-episode
evaluation (sd / sqrt(3 x 4)), the noise a logged return carries even with the policy fixed:

    .venv/bin/python results/table2/eval_noise.py 20 results/table2/runs/*/ \
        > results/table2/eval_noise.md

A run without checkpoints (finished on an earlier machine, only its logs kept) is skipped, or,
with ``--update results/table2/eval_noise.md`` (which rewrites that file), keeps its row from the
file's previous version (kept_rows.py).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
from kept_rows import collect, run_script, split_update

from mcat.evaluation import random_actions, scored_episodes, scoring_policy
from mcat.runs import load_run_config
from mcat.train import load_run_agent, load_run_replay, run_tasks

LOGGED_EPISODES = 3


def episode_returns(cfg, tasks, policy, history, delay, episodes: int) -> np.ndarray:
    """[task, episode] returns of ``episodes`` scored episodes per task."""
    totals, owner, _ = scored_episodes(cfg, tasks, policy, history, delay, episodes)
    return np.stack([totals[owner == i] for i in range(len(tasks))])


def row(name: str, step: str, logged: float, returns: np.ndarray) -> str:
    """One table row: means over the test tasks, the spread of single episodes within a task."""
    n_tasks, n = returns.shape
    sd = float(
        np.sqrt(((returns - returns.mean(1, keepdims=True)) ** 2).sum() / (n_tasks * (n - 1)))
    )
    first = returns[:, :LOGGED_EPISODES].mean()
    se_logged = sd / math.sqrt(n_tasks * LOGGED_EPISODES)
    logged_text = "—" if math.isnan(logged) else f"{logged:.1f}"
    return (
        f"| {name} | {step} | {logged_text} | {first:.1f} | {returns.mean():.1f} "
        f"| {sd / math.sqrt(n_tasks * n):.1f} | {sd:.1f} | {se_logged:.1f} |"
    )


def logged_return(run_dir: Path, step: int) -> float:
    """The run's own test return at ``step`` (mean over its test tasks), nan if none."""
    with open(run_dir / "metrics.csv") as f:
        rows = [
            float(r["return"])
            for r in csv.DictReader(f)
            if r["split"] == "test" and int(r["step"]) == step
        ]
    return float(np.mean(rows)) if rows else float("nan")


def run_row(run_dir: Path, episodes: int) -> str:
    cfg, agent, state = load_run_agent(run_dir)
    _, tasks = run_tasks(cfg)
    replay = (
        load_run_replay(cfg, state) if getattr(agent, "adaptation_uses_replay", False) else None
    )
    returns = episode_returns(cfg, tasks, *scoring_policy(agent, cfg, tasks, replay), episodes)
    step = int(state.get("env_steps", -1))
    return row(run_dir.name, f"{step:,}", logged_return(run_dir, step), returns)


def random_row(run_dir: Path, episodes: int) -> str:
    """The uniformly random policy, on the test tasks only (so its first 3 episodes are not
    the ones `mcat train` reports, which draws for the training tasks first)."""
    cfg = load_run_config(run_dir)
    _, tasks = run_tasks(cfg)
    draw = random_actions(cfg, tasks)
    returns = episode_returns(cfg, tasks, lambda obs, _o, _c: draw(obs), 1, 1, episodes)
    return row(f"uniform random (seed {cfg.seed})", "", float("nan"), returns)


def main(argv: list[str]) -> int:
    try:
        update, args = split_update(argv)
    except ValueError as exc:
        print(f"eval_noise.py: {exc}", file=sys.stderr)
        return 2
    if len(args) < 2 or not args[0].isdigit() or int(args[0]) <= LOGGED_EPISODES:
        print(
            "usage: eval_noise.py [--update FILE] EPISODES RUN_DIR [RUN_DIR ...] "
            f"(EPISODES > {LOGGED_EPISODES})",
            file=sys.stderr,
        )
        return 2
    episodes = int(args[0])
    head = [
        "| run | step | logged test return (3 episodes) | first 3 episodes here "
        f"| {episodes} episodes | its standard error | sd of one episode "
        "| standard error of a 3-episode evaluation |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        random_row(Path(args[1]), episodes),
    ]
    collect("eval_noise.py", update, args[1:], lambda run: [run_row(run, episodes)], head)
    return 0


if __name__ == "__main__":
    run_script("eval_noise.py", main, __doc__)
