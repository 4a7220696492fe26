"""The evaluation protocol every algorithm is scored by (training runs, `mcat eval`, reports).

On each evaluated task (training and test tasks alike):

1. **adaptation episodes** (the algorithm's ``adaptation_episodes``; 0 for ctd3, td3 and MCAT,
   which infer z inside the episode from its last K steps): the algorithm acts as it chooses to
   explore, sees each finished episode's transitions, with the run's reward delay, and may adapt
   (PEARL: accumulates the context and infers its posterior over z; MQL: fits its propensity
   score and updates a copy of its networks). One sequence of adaptation episodes per task.
2. **scored episodes** (``eval_episodes`` of the run config): the adapted policy acts without
   exploration noise; the score is the mean undiscounted return (a delay moves reward, it does
   not change an episode's total). An algorithm with an adapter is paid the reward with the
   run's delay, as in training, since its context may read rewards (MQL's does); the others
   are evaluated with the dense reward (the same total up to float rounding).

Seeds: scored episode e of task v starts from :func:`mcat.collect.eval_seed` (run seed, v, e),
adaptation episode e from :func:`adaptation_seed`; neither depends on the algorithm or on the
number of adaptation episodes, so every method is scored on the same episodes. An algorithm's
own evaluation randomness (PEARL's z samples, MQL's batches) comes from a generator of each task
(:func:`adaptation_rng`: run seed and task), so evaluating the same networks twice gives the
same returns, and a task's return does not depend on the tasks evaluated beside it.

An algorithm opts in by giving its agent ``adapter(tasks, replay, rng) -> Adapter``; agents
without it are evaluated with their ``context``/``act`` as before (no adaptation). The protocol
calls it once per task (``tasks`` of length one, that task's generator) and runs the tasks'
episodes in lockstep (:class:`PerTask`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from mcat.collect import (
    ContextWindow,
    Episode,
    RowPolicy,
    eval_seed,
    evaluate,
    row_policy,
    run_episodes,
    seed_text,
    space_dims,
)
from mcat.tasks import TaskValue, get_family
from mcat.validation import check_int

MAX_ADAPTATION_EPISODES = 100


class Adapter(Protocol):
    """An algorithm's test-time adaptation on a list of tasks (rows are indexed by task)."""

    explore: RowPolicy
    """Actions in the adaptation episodes (``owner`` gives each row's task index)."""
    act: RowPolicy
    """Actions of the adapted policy in the scored episodes."""

    def observe(self, episodes: Sequence[Episode]) -> None:
        """One finished adaptation episode per task, in task order."""
        ...


def adaptation_seed(seed: int, task: TaskValue, episode: int) -> int:
    """Seed of adaptation episode ``episode`` on ``task`` (stable across processes)."""
    return zlib.crc32(f"adapt:{seed}:{seed_text(task)}:{episode}".encode())


def adaptation_rng(seed: int, task: TaskValue) -> np.random.Generator:
    """The generator of an algorithm's own evaluation randomness on ``task`` (PEARL's z samples,
    MQL's batches), from the run seed and the task alone."""
    return np.random.default_rng([seed, 0xADA, zlib.crc32(seed_text(task).encode())])


class PerTask:
    """One single-task adapter per task as one :class:`Adapter`: each sees only its own rows,
    as its task 0, and its own episodes."""

    def __init__(self, adapters: Sequence[Adapter]):
        self.adapters = list(adapters)

    def _rows(
        self, method: str, obs: np.ndarray, owner: np.ndarray, ctx: ContextWindow
    ) -> np.ndarray:
        out: np.ndarray | None = None
        for i, adapter in enumerate(self.adapters):
            rows = np.flatnonzero(owner == i)
            if len(rows):
                acts = getattr(adapter, method)(
                    obs[rows], np.zeros(len(rows), np.int64), ctx.rows(rows)
                )
                if out is None:
                    out = np.zeros((len(obs), acts.shape[1]), dtype=np.float32)
                out[rows] = acts
        assert out is not None
        return out

    def explore(self, obs: np.ndarray, owner: np.ndarray, ctx: ContextWindow) -> np.ndarray:
        return self._rows("explore", obs, owner, ctx)

    def act(self, obs: np.ndarray, owner: np.ndarray, ctx: ContextWindow) -> np.ndarray:
        return self._rows("act", obs, owner, ctx)

    def observe(self, episodes: Sequence[Episode]) -> None:
        for adapter, episode in zip(self.adapters, episodes, strict=True):
            adapter.observe([episode])


def adaptation_episodes(agent: Any) -> int:
    """The number of adaptation episodes ``agent`` asks for (0 without an adapter)."""
    if not callable(getattr(agent, "adapter", None)):
        return 0
    return int(getattr(agent.cfg, "adaptation_episodes", 0))


def check_adaptation_episodes(value: Any) -> int:
    """The bad-input check of an algorithm's ``adaptation_episodes`` setting."""
    return check_int("agent.adaptation_episodes", value, 0, MAX_ADAPTATION_EPISODES)


def evaluate_agent(
    agent: Any, cfg: Any, tasks: list[TaskValue], replay: Any = None
) -> dict[TaskValue, float]:
    """The evaluation every run and `mcat eval` use (see the module docstring): same seeds, so
    the same returns. ``replay`` is the run's training data, for algorithms whose adaptation
    uses it (MQL); ``cfg`` is the run's :class:`~mcat.config.RunConfig`."""
    totals, owner, _ = scored_episodes(cfg, tasks, *scoring_policy(agent, cfg, tasks, replay))
    return {v: float(totals[owner == i].mean()) for i, v in enumerate(tasks)}


def scored_episodes(
    cfg: Any,
    tasks: list[TaskValue],
    policy: RowPolicy,
    history: int,
    reward_delay: int,
    episodes: int | None = None,
    record: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[Episode] | None]:
    """The scored episodes of ``tasks`` played by ``policy`` (:func:`run_episodes`' outputs):
    the run's seeds, ``cfg.eval_episodes`` per task unless ``episodes`` asks for more (the first
    ones are then the usual ones)."""
    n = cfg.eval_episodes if episodes is None else episodes
    seeds = [[eval_seed(cfg.seed, v, e) for e in range(n)] for v in tasks]
    return run_episodes(
        get_family(cfg.family),
        tasks,
        seeds,
        policy,
        history,
        reward_delay=reward_delay,
        style=cfg.style,
        max_episode_steps=cfg.max_episode_steps,
        record=record,
    )


def scoring_policy(
    agent: Any, cfg: Any, tasks: list[TaskValue], replay: Any = None
) -> tuple[RowPolicy, int, int]:
    """The policy that plays the scored episodes of ``tasks`` (rows are indexed by position in
    ``tasks``), after the adaptation episodes of an algorithm that has them; with the context
    length it reads and the reward delay it is paid with (see the module docstring)."""
    history = int(getattr(cfg.agent, "history", 0))
    if not callable(getattr(agent, "adapter", None)):
        return row_policy(agent.context, agent.act), history, 1
    family = get_family(cfg.family)
    # one adapter per task, each with its own generator, so that a task's score does not depend
    # on which tasks are evaluated beside it (`mcat eval --tasks V` repeats the run's row of V);
    # their episodes still run in lockstep
    adapter = PerTask([agent.adapter([v], replay, adaptation_rng(cfg.seed, v)) for v in tasks])
    common = dict(style=cfg.style, max_episode_steps=cfg.max_episode_steps)
    for e in range(adaptation_episodes(agent)):
        seeds = [[adaptation_seed(cfg.seed, v, e)] for v in tasks]
        _, _, episodes = run_episodes(
            family,
            tasks,
            seeds,
            adapter.explore,
            history,
            reward_delay=cfg.reward_delay,
            record=True,
            **common,
        )
        assert episodes is not None
        adapter.observe(episodes)
    # the adapted policy gets the reward as in training (its context may read rewards); the
    # total, which is scored, is the dense one
    return adapter.act, history, cfg.reward_delay


def _evaluate(cfg: Any, tasks: list[TaskValue], context_fn, act_fn, history: int):
    """:func:`evaluate` on the episodes of ``cfg`` (its seed, episodes, style and length)."""
    return evaluate(
        get_family(cfg.family),
        tasks,
        context_fn,
        act_fn,
        history,
        episodes=cfg.eval_episodes,
        seed=cfg.seed,
        style=cfg.style,
        max_episode_steps=cfg.max_episode_steps,
    )


def random_actions(cfg: Any, tasks: list[TaskValue]) -> Callable[[np.ndarray], np.ndarray]:
    """The uniformly random policy of :func:`random_policy_returns`: actions for a batch of
    observations, drawn from one generator seeded with the run's seed."""
    probe = get_family(cfg.family).make_env(tasks[0], style=cfg.style)
    _, act_dim, high = space_dims(probe)
    probe.close()
    rng = np.random.default_rng(cfg.seed)

    def draw(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(-high, high, size=(len(obs), act_dim)).astype(np.float32)

    return draw


def random_policy_returns(cfg: Any, tasks: list[TaskValue]) -> dict[TaskValue, float]:
    """The uniformly random policy on the scored episodes of ``cfg`` (the same seeds as
    :func:`evaluate_agent`): the bar a trained policy has to clear."""
    draw = random_actions(cfg, tasks)

    def act(obs: np.ndarray, _z: object) -> np.ndarray:
        return draw(obs)

    def no_context(delta: np.ndarray, act: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        return torch.zeros(len(delta), 0)

    return _evaluate(cfg, tasks, no_context, act, 1)
