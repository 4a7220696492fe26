"""Acting in the tasks: data collection for training and evaluation of the deterministic policy.

Environments are stepped in lockstep, one per active task, and the policy acts for all of them
in one batched call. At acting time the context z_t comes from the current episode's last K
(state difference, action) pairs, kept per environment in :class:`ContextHistory`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, overload

import gymnasium as gym
import numpy as np
import torch

from mcat.errors import MCATError
from mcat.replay import MultiTaskReplay
from mcat.tasks import TaskFamily
from mcat.tasks.wrappers import env_state, set_env_state

RECENT = 10  # episode returns kept per task for progress lines

# policy(obs [n, o], z [n, z_dim]) -> actions [n, a]; context(delta, act, mask) -> z
ContextFn = Callable[[np.ndarray, np.ndarray, np.ndarray], torch.Tensor]
ActFn = Callable[[np.ndarray, torch.Tensor], np.ndarray]


def space_dims(env: gym.Env) -> tuple[int, int, float]:
    """(observation size, action size, action bound) of an env with flat observations and a Box
    action space, the kind the agents act in."""
    obs_shape, act_space = env.observation_space.shape, env.action_space
    if not obs_shape or not isinstance(act_space, gym.spaces.Box) or not act_space.shape:
        raise MCATError(
            "the agents need flat observations and a Box action space, "
            f"got {env.observation_space} and {act_space}"
        )
    return obs_shape[0], act_space.shape[0], float(act_space.high[0])


@dataclass
class ContextWindow:
    """The last K steps of some environments' current episodes, oldest first, zero (and mask 0)
    before the episode start: the same layout as the replay's context windows."""

    delta: np.ndarray  # [n, K, obs] s' - s
    act: np.ndarray  # [n, K, act]
    mask: np.ndarray  # [n, K]
    obs: np.ndarray  # [n, K, obs] s
    rew: np.ndarray  # [n, K] the reward as paid (delayed when it is)


class ContextHistory:
    """The last K steps (s, a, r, s'-s) of each environment's current episode (see
    :class:`ContextWindow`)."""

    def __init__(self, n: int, history: int, obs_dim: int, act_dim: int):
        self.delta = np.zeros((n, history, obs_dim), dtype=np.float32)
        self.act = np.zeros((n, history, act_dim), dtype=np.float32)
        self.mask = np.zeros((n, history), dtype=np.float32)
        self.obs = np.zeros((n, history, obs_dim), dtype=np.float32)
        self.rew = np.zeros((n, history), dtype=np.float32)

    def reset(self, idx: int | np.integer | np.ndarray | slice) -> None:
        for array in self.arrays().values():
            array[idx] = 0.0

    def push(self, obs: np.ndarray, act: np.ndarray, rew: np.ndarray, next_obs: np.ndarray) -> None:
        if not self.mask.shape[1]:  # K = 0: an agent that reads no in-episode context
            return
        for array, new in (
            (self.delta, next_obs - obs),
            (self.act, act),
            (self.mask, 1.0),
            (self.obs, obs),
            (self.rew, rew),
        ):
            array[:, :-1] = array[:, 1:]
            array[:, -1] = new

    def window(self, idx: np.ndarray | slice = slice(None)) -> ContextWindow:
        return ContextWindow(
            self.delta[idx], self.act[idx], self.mask[idx], self.obs[idx], self.rew[idx]
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "delta": self.delta,
            "act": self.act,
            "mask": self.mask,
            "obs": self.obs,
            "rew": self.rew,
        }


@dataclass
class ActInput:
    """What an agent sees when it acts for the running environments (one row per slot)."""

    obs: np.ndarray  # [n, obs]
    ctx_delta: np.ndarray  # [n, K, obs] the current episodes' last K s'-s, oldest first
    ctx_act: np.ndarray  # [n, K, act] and actions
    ctx_mask: np.ndarray  # [n, K] 1 where the step belongs to the current episode
    slot_task: np.ndarray  # [n] task index of each slot
    episode_steps: np.ndarray  # [n] steps taken so far in each slot's episode
    env_steps: int  # env steps collected so far, all tasks together
    replay: MultiTaskReplay | None = None  # the data collected so far (read-only for agents)
    ctx_obs: np.ndarray | None = None  # [n, K, obs] the same steps' states
    ctx_rew: np.ndarray | None = None  # [n, K] and rewards (as paid)


@dataclass
class EpisodeRecord:
    task: int  # index into the training tasks
    ret: float
    length: int
    slot: int = 0  # the environment slot it ran in (a new episode starts there right away)


@dataclass
class Collector:
    """Collects transitions from the training tasks of a family into a replay store.

    ``envs_per_round`` environments run at once (default: one per training task, all tasks in
    lockstep). With fewer, an environment whose episode ends moves to the next task, in order
    (``schedule="round-robin"``) or drawn at random among the idle ones (``"sample"``).
    """

    family: TaskFamily
    tasks: Sequence[float]
    history: int
    reward_delay: int = 1
    seed: int = 0
    style: str = "paper"
    envs_per_round: int | None = None
    schedule: str = "round-robin"
    max_episode_steps: int | None = None
    recent_returns: dict[int, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        T = len(self.tasks)
        self.envs = [
            self.family.make_env(
                v,
                reward_delay=self.reward_delay,
                seed=self.seed * 1000 + i,
                style=self.style,
                max_episode_steps=self.max_episode_steps,
            )
            for i, v in enumerate(self.tasks)
        ]
        self.n = T if self.envs_per_round is None else int(self.envs_per_round)
        self.rng = np.random.default_rng(self.seed)
        self.slot_task = np.arange(self.n)  # task index of each running environment
        self._next = self.n % T
        self.obs_dim, self.act_dim, self.max_action = space_dims(self.envs[0])
        self.ctx = ContextHistory(self.n, self.history, self.obs_dim, self.act_dim)
        self.obs = np.stack([self.envs[t].reset()[0] for t in self.slot_task]).astype(np.float32)
        self.ep_return = np.zeros(self.n)
        self.ep_length = np.zeros(self.n, dtype=np.int64)
        self.env_steps = 0
        self._replay: MultiTaskReplay | None = None

    def step(
        self, replay: MultiTaskReplay, policy: Callable[[np.ndarray, Collector], np.ndarray]
    ) -> list[EpisodeRecord]:
        """One step in every running environment with ``policy(obs, collector)``; transitions
        go to the replay store of their task. Returns the episodes that ended."""
        self._replay = replay  # what act_input shows the agent
        actions = np.asarray(policy(self.obs, self), dtype=np.float32)
        if not np.isfinite(actions).all():  # MuJoCo would silently reset a simulation driven by NaN
            task = self.tasks[self.slot_task[np.flatnonzero(~np.isfinite(actions).all(1))[0]]]
            raise MCATError(
                f"non-finite action from the policy on task {task:g} "
                f"at env step {self.env_steps + self.n:,}"
            )
        results = [self.envs[t].step(a) for t, a in zip(self.slot_task, actions, strict=True)]
        next_obs = np.stack([r[0] for r in results]).astype(np.float32)
        rewards = np.array([r[1] for r in results], dtype=np.float32)
        if not (np.isfinite(next_obs).all() and np.isfinite(rewards).all()):
            self._non_finite(next_obs, rewards)
        terminated = np.array([r[2] for r in results])
        truncated = np.array([r[3] for r in results])
        replay.add(
            self.obs, actions, rewards, next_obs, terminated, truncated, tasks=self.slot_task
        )
        self.ctx.push(self.obs, actions, rewards, next_obs)
        self.ep_return += rewards
        self.ep_length += 1
        self.env_steps += self.n
        self.obs = next_obs
        finished = []
        for i in np.flatnonzero(terminated | truncated):
            task = int(self.slot_task[i])
            finished.append(
                EpisodeRecord(task, float(self.ep_return[i]), int(self.ep_length[i]), int(i))
            )
            recent = self.recent_returns.setdefault(task, [])
            recent.append(float(self.ep_return[i]))
            del recent[:-RECENT]
            self.slot_task[i] = self._pick_next_task(task)
            self.obs[i] = self.envs[self.slot_task[i]].reset()[0]
            self.ctx.reset(i)
            self.ep_return[i] = 0.0
            self.ep_length[i] = 0
        return finished

    def act_input(self, obs: np.ndarray) -> ActInput:
        """The acting input for the current step (``obs``: the slots' observations)."""
        return ActInput(
            obs,
            self.ctx.delta,
            self.ctx.act,
            self.ctx.mask,
            self.slot_task,
            self.ep_length,
            self.env_steps,
            self._replay,
            self.ctx.obs,
            self.ctx.rew,
        )

    def _non_finite(self, next_obs: np.ndarray, rewards: np.ndarray) -> None:
        i = int(np.flatnonzero(~(np.isfinite(next_obs).all(1) & np.isfinite(rewards)))[0])
        what = "observation" if not np.isfinite(next_obs[i]).all() else "reward"
        raise MCATError(
            f"non-finite {what} from task {self.tasks[self.slot_task[i]]:g} at env step "
            f"{self.env_steps + self.n:,} (the environment diverged)"
        )

    def state_dict(self) -> dict:
        """Everything needed to continue collecting mid-episode: each environment's state (see
        :func:`mcat.tasks.wrappers.env_state`), the current observations and contexts, episode
        counters, the task schedule and its generator."""
        return {
            "envs": [env_state(env) for env in self.envs],
            "obs": self.obs.copy(),
            "ctx": {k: v.copy() for k, v in self.ctx.arrays().items()},
            "ep_return": self.ep_return.copy(),
            "ep_length": self.ep_length.copy(),
            "slot_task": self.slot_task.copy(),
            "next": self._next,
            "rng": self.rng.bit_generator.state,
            "env_steps": self.env_steps,
            "recent_returns": {int(t): list(r) for t, r in self.recent_returns.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        if len(state["envs"]) != len(self.envs) or state["obs"].shape != self.obs.shape:
            raise MCATError(
                f"saved collector has {len(state['envs'])} envs and observations "
                f"{tuple(state['obs'].shape)}, "
                f"this one {len(self.envs)} and {self.obs.shape}"
            )
        for env, saved in zip(self.envs, state["envs"], strict=True):
            try:
                set_env_state(env, saved)
            except (ValueError, AttributeError) as exc:
                raise MCATError(
                    "cannot restore an environment of task "
                    f"{self.tasks[self.envs.index(env)]:g}: {exc}"
                ) from None
        self.obs[...] = state["obs"]
        for name, array in self.ctx.arrays().items():
            # checkpoints before the obs/rew windows lack them (only MQL reads them)
            array[...] = state["ctx"].get(name, 0.0)
        self.ep_return[...] = state["ep_return"]
        self.ep_length[...] = state["ep_length"]
        self.slot_task[...] = state["slot_task"]
        self._next = int(state["next"])
        self.rng.bit_generator.state = state["rng"]
        self.env_steps = int(state["env_steps"])
        self.recent_returns = {int(t): list(r) for t, r in state["recent_returns"].items()}

    def _pick_next_task(self, finished_task: int) -> int:
        T = len(self.tasks)
        if self.n == T:
            return finished_task
        busy = set(self.slot_task.tolist()) - {finished_task}
        idle = [t for t in range(T) if t not in busy]
        if self.schedule == "sample":
            return int(self.rng.choice(idle))
        while self._next not in idle:
            self._next = (self._next + 1) % T
        task, self._next = self._next, (self._next + 1) % T
        return task


def eval_seed(seed: int, task: float, episode: int) -> int:
    """Seed of evaluation episode ``episode`` of ``task`` (stable across processes)."""
    return zlib.crc32(f"eval:{seed}:{float(task)!r}:{episode}".encode())


@torch.no_grad()
@overload
def evaluate(
    family: TaskFamily,
    tasks: Sequence[float],
    context_fn: ContextFn,
    act_fn: ActFn,
    history: int,
    episodes: int = ...,
    seed: int = ...,
    style: str = ...,
    max_episode_steps: int | None = ...,
    per_episode: Literal[False] = ...,
) -> dict[float, float]: ...


@overload
def evaluate(
    family: TaskFamily,
    tasks: Sequence[float],
    context_fn: ContextFn,
    act_fn: ActFn,
    history: int,
    episodes: int = ...,
    seed: int = ...,
    style: str = ...,
    max_episode_steps: int | None = ...,
    *,
    per_episode: Literal[True],
) -> dict[float, list[float]]: ...


def evaluate(
    family: TaskFamily,
    tasks: Sequence[float],
    context_fn: ContextFn,
    act_fn: ActFn,
    history: int,
    episodes: int = 1,
    seed: int = 0,
    style: str = "paper",
    max_episode_steps: int | None = None,
    per_episode: bool = False,
) -> dict[float, float] | dict[float, list[float]]:
    """Mean undiscounted return (or, with ``per_episode``, the list of episode returns) of the
    deterministic policy on each task, all episodes of all tasks run in lockstep. The reward
    delay does not change an episode's total, so evaluation
    uses the dense reward. Environment seeds derive from ``seed``, the task value and the episode
    index (not from the task's position), so a task gets the same episodes in any call."""

    def policy(obs: np.ndarray, _owner: np.ndarray, ctx: ContextWindow) -> np.ndarray:
        return act_fn(obs, context_fn(ctx.delta, ctx.act, ctx.mask))

    seeds = [[eval_seed(seed, v, e) for e in range(episodes)] for v in tasks]
    totals, owner, _ = run_episodes(
        family, tasks, seeds, policy, history, style=style, max_episode_steps=max_episode_steps
    )
    if per_episode:
        return {float(v): totals[owner == i].tolist() for i, v in enumerate(tasks)}
    return {float(v): float(totals[owner == i].mean()) for i, v in enumerate(tasks)}


# policy(obs [n, o], owner [n] (index into the tasks), the episodes' context window) -> actions
RowPolicy = Callable[[np.ndarray, np.ndarray, ContextWindow], np.ndarray]


@dataclass
class Episode:
    """The transitions of one finished episode (float32 arrays, one row per step)."""

    obs: np.ndarray  # [L, obs]
    act: np.ndarray  # [L, act]
    rew: np.ndarray  # [L] the reward as the environment paid it (delayed when it is)
    next_obs: np.ndarray  # [L, obs]
    terminated: np.ndarray  # [L] bool

    @property
    def ret(self) -> float:
        return float(self.rew.sum(dtype=np.float64))


@torch.no_grad()
def run_episodes(
    family: TaskFamily,
    tasks: Sequence[float],
    seeds: Sequence[Sequence[int]],
    policy: RowPolicy,
    history: int,
    style: str = "paper",
    max_episode_steps: int | None = None,
    reward_delay: int = 1,
    record: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[Episode] | None]:
    """One episode per seed in ``seeds[i]`` on task ``tasks[i]``, all in lockstep, acting with
    ``policy`` (which sees each row's task index, so it may act differently per task). Returns
    each episode's undiscounted return, its task index and, with ``record``, its transitions."""
    envs, owner = [], []
    for i, v in enumerate(tasks):
        for s in seeds[i]:
            envs.append(
                family.make_env(
                    v,
                    seed=s,
                    style=style,
                    max_episode_steps=max_episode_steps,
                    reward_delay=reward_delay,
                )
            )
            owner.append(i)
    owner_arr = np.array(owner, dtype=np.int64)
    obs = np.stack([env.reset()[0] for env in envs]).astype(np.float32)
    n = len(envs)
    act_dim = space_dims(envs[0])[1]
    ctx = ContextHistory(n, history, obs.shape[1], act_dim)
    totals = np.zeros(n)
    running = np.ones(n, dtype=bool)
    steps: list[list[tuple]] = [[] for _ in range(n)]
    while running.any():
        idx = np.flatnonzero(running)
        actions = np.zeros((n, act_dim), dtype=np.float32)
        actions[idx] = policy(obs[idx], owner_arr[idx], ctx.window(idx))
        next_obs = obs.copy()
        rewards = np.zeros(n, dtype=np.float32)
        for k in idx:
            o, r, terminated, truncated, _ = envs[k].step(actions[k])
            next_obs[k] = o
            rewards[k] = r
            totals[k] += r
            if record:
                steps[k].append((obs[k], actions[k], r, o, terminated))
            if terminated or truncated:
                running[k] = False
        ctx.push(obs, actions, rewards, next_obs)
        obs = next_obs
    for env in envs:
        env.close()
    if not record:
        return totals, owner_arr, None
    episodes = [
        Episode(
            np.stack([t[0] for t in rows]).astype(np.float32),
            np.stack([t[1] for t in rows]).astype(np.float32),
            np.array([t[2] for t in rows], dtype=np.float32),
            np.stack([t[3] for t in rows]).astype(np.float32),
            np.array([t[4] for t in rows], dtype=bool),
        )
        for rows in steps
    ]
    return totals, owner_arr, episodes
