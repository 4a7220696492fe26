"""Acting in the tasks: data collection for training and evaluation of the deterministic policy.

The collector steps its environments as one gymnasium vector env (``SyncVectorEnv``,
``AsyncVectorEnv`` with one subprocess per environment, or :class:`WorkerVectorEnv` with all of
them in one subprocess), one slot per running task, and the
policy acts for all of them in one batched call. At acting time the context z_t comes from the
current episode's last K (state difference, action) pairs, kept per environment in
:class:`ContextHistory`.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from mcat.env_worker import WorkerVectorEnv, leave_stop_signals_to_parent
from mcat.errors import MCATError
from mcat.replay import MultiTaskReplay
from mcat.replay.device import DeviceReplay
from mcat.tasks import TaskFamily, TaskValue, task_key
from mcat.tasks.wrappers import env_state, set_env_state

RECENT = 10  # episode returns kept per task for progress lines
VECTOR_MODES = ("sync", "async", "worker")
SPLIT_STEP = (AsyncVectorEnv, WorkerVectorEnv)  # vector envs that step while the caller goes on

# policy(obs [n, o], z [n, z_dim]) -> actions [n, a]; context(delta, act, mask) -> z
ContextFn = Callable[[np.ndarray, np.ndarray, np.ndarray], torch.Tensor]
ActFn = Callable[[np.ndarray, torch.Tensor], np.ndarray]


def space_dims(env: gym.Env | VectorEnv) -> tuple[int, int, float]:
    """(observation size, action size, action bound) of an env (or of one env of a vector env)
    with flat observations and a Box action space, the kind the agents act in."""
    if isinstance(env, VectorEnv):
        obs_shape, act_space = env.single_observation_space.shape, env.single_action_space
    else:
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

    def rows(self, idx: np.ndarray) -> ContextWindow:
        """The windows of the environments ``idx`` (an index array), in that order."""
        return ContextWindow(
            self.delta[idx], self.act[idx], self.mask[idx], self.obs[idx], self.rew[idx]
        )


class ContextHistory:
    """The last K steps (s, a, r, s'-s) of each environment's current episode (see
    :class:`ContextWindow`)."""

    def __init__(self, n: int, history: int, obs_dim: int, act_dim: int):
        self.delta = np.zeros((n, history, obs_dim), dtype=np.float32)
        self.act = np.zeros((n, history, act_dim), dtype=np.float32)
        self.mask = np.zeros((n, history), dtype=np.float32)
        self.obs = np.zeros((n, history, obs_dim), dtype=np.float32)
        self.rew = np.zeros((n, history), dtype=np.float32)

    def part(self, rows: slice) -> ContextHistory:
        """The history of environments ``rows``, its arrays views of these."""
        part = ContextHistory.__new__(ContextHistory)
        for name, array in self.arrays().items():
            setattr(part, name, array[rows])
        return part

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


class TaskSlot(gym.Env):
    """One environment slot of the collector's vector env: it runs one task at a time.

    With one slot per task (lockstep) a slot keeps its task. With fewer slots a finished task
    makes room for the next one, which may have run in another slot (or process) before: the
    slot builds its own copy of that task's env on first use, and the collector carries each
    task's random generator from slot to slot, so every task draws its episodes from one stream,
    as one env per task would (the copies are otherwise identical: a reset clears the rest).
    """

    metadata: dict = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it a class attribute)

    def __init__(
        self,
        slot: int,
        family: TaskFamily,
        tasks: Sequence[TaskValue],
        seeds: Sequence[int],
        reward_delay: int,
        style: str,
        max_episode_steps: int | None,
    ):
        self.slot = slot
        self._spec = (family, tuple(tasks), tuple(seeds), reward_delay, style, max_episode_steps)
        self.envs: dict[int, gym.Env] = {}
        self.task = slot
        env = self._env(slot)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.metadata = dict(env.metadata)

    def _env(self, task: int) -> gym.Env:
        if task not in self.envs:
            family, tasks, seeds, delay, style, steps = self._spec
            self.envs[task] = family.make_env(
                tasks[task],
                reward_delay=delay,
                seed=seeds[task],
                style=style,
                max_episode_steps=steps,
            )
        return self.envs[task]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """``options["assign"][slot] = (task, generator state or None)`` moves the slot to
        another task first (``None``: the task has not run yet, its fresh env's generator)."""
        assign = (options or {}).get("assign", {}).get(self.slot)
        if assign is not None:
            self.task, rng = assign
            if rng is not None:
                self._env(self.task).unwrapped.np_random.bit_generator.state = rng
        return self._env(self.task).reset(seed=seed)

    def step(self, action):
        # the collector reads no info: an empty one spares the vector env merging every key of
        # every step's info into arrays (and, in subprocesses, pickling them)
        obs, reward, terminated, truncated, _ = self.envs[self.task].step(action)
        return obs, reward, terminated, truncated, {}

    def close(self) -> None:
        for env in self.envs.values():
            env.close()

    @property
    def rng_state(self) -> Mapping[str, Any]:
        """The state of the current task's random generator."""
        return self.envs[self.task].unwrapped.np_random.bit_generator.state

    @property
    def checkpoint(self) -> dict:
        """The current task and its env's full state (:func:`env_state`)."""
        return {"task": self.task, "env": env_state(self.envs[self.task])}

    @checkpoint.setter
    def checkpoint(self, state: dict) -> None:
        self.task = int(state["task"])
        set_env_state(self._env(self.task), state["env"])


def make_vector_env(
    mode: str,
    family: TaskFamily,
    tasks: Sequence[TaskValue],
    slots: int,
    seed: int,
    reward_delay: int,
    style: str,
    max_episode_steps: int | None,
) -> SyncVectorEnv | AsyncVectorEnv | WorkerVectorEnv:
    """The collector's vector env: ``slots`` :class:`TaskSlot` envs, slot i starting on task i;
    task t's env is seeded ``1000 * seed + t``. Autoreset is off: the collector resets a slot
    itself when its episode ends (it may move it to another task)."""
    if mode not in VECTOR_MODES:
        raise MCATError(f"vector envs must be one of {', '.join(VECTOR_MODES)}, got {mode!r}")
    seeds = [seed * 1000 + t for t in range(len(tasks))]
    fns = [
        functools.partial(TaskSlot, i, family, tasks, seeds, reward_delay, style, max_episode_steps)
        for i in range(slots)
    ]
    if mode == "sync":
        return SyncVectorEnv(fns, copy=False, autoreset_mode=AutoresetMode.DISABLED)
    if mode == "worker":
        return WorkerVectorEnv(fns)
    return AsyncVectorEnv(
        fns, copy=False, autoreset_mode=AutoresetMode.DISABLED, worker=_async_worker_for_parent
    )


def _async_worker_for_parent(*args: Any) -> None:
    """gymnasium's AsyncVectorEnv worker, deaf to Ctrl-C and SIGTERM
    (:func:`~mcat.env_worker.leave_stop_signals_to_parent`)."""
    from gymnasium.vector.async_vector_env import _async_worker

    leave_stop_signals_to_parent()
    _async_worker(*args)


@dataclass
class Collector:
    """Collects transitions from the training tasks of a family into a replay store.

    ``envs_per_round`` environments run at once (default: one per training task, all tasks in
    lockstep). With fewer, an environment whose episode ends moves to the next task, in order
    (``schedule="round-robin"``) or drawn at random among the idle ones (``"sample"``).
    ``vector_envs`` steps them in this process in turn (``"sync"``), each in its own
    subprocess (``"async"``) or all in one subprocess (``"worker"``); all give the same
    transitions.
    """

    family: TaskFamily
    tasks: Sequence[TaskValue]
    history: int
    reward_delay: int = 1
    seed: int = 0
    style: str = "paper"
    envs_per_round: int | None = None
    schedule: str = "round-robin"
    max_episode_steps: int | None = None
    vector_envs: str = "sync"
    recent_returns: dict[int, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        T = len(self.tasks)
        self.n = T if self.envs_per_round is None else int(self.envs_per_round)
        self.vec = make_vector_env(
            self.vector_envs,
            self.family,
            self.tasks,
            self.n,
            self.seed,
            self.reward_delay,
            self.style,
            self.max_episode_steps,
        )
        self.rng = np.random.default_rng(self.seed)
        self.slot_task = np.arange(self.n)  # task index of each running environment
        self._next = self.n % T
        # each task's generator as its last episode left it (tasks that move between slots)
        self.task_rng: dict[int, Mapping[str, Any]] = {}
        self.obs_dim, self.act_dim, self.max_action = space_dims(self.vec)
        self.ctx = ContextHistory(self.n, self.history, self.obs_dim, self.act_dim)
        self.obs = np.array(self.vec.reset()[0], dtype=np.float32)  # a copy: see step
        self.ep_return = np.zeros(self.n)
        self.ep_length = np.zeros(self.n, dtype=np.int64)
        self.env_steps = 0
        self._replay: MultiTaskReplay | None = None
        self._sent: np.ndarray | None = None  # actions sent, their results not yet received
        self.grouped = False  # its arrays are rows of a CollectorGroup's: it steps with the group

    def close(self) -> None:
        """Close the environments (and the subprocesses of ``vector_envs`` async or worker)."""
        self.vec.close()

    def step(
        self, replay: MultiTaskReplay, policy: Callable[[np.ndarray, Collector], np.ndarray]
    ) -> list[EpisodeRecord]:
        """One step in every running environment with ``policy(obs, collector)``; transitions
        go to the replay store of their task. Returns the episodes that ended."""
        self.step_send(replay, policy)
        return self.step_receive()

    def step_send(
        self, replay: MultiTaskReplay, policy: Callable[[np.ndarray, Collector], np.ndarray]
    ) -> None:
        """The first half of :meth:`step`: the policy's actions, sent to the environments. With
        ``vector_envs`` async or worker they then step in their processes while the caller goes
        on (the fast path sends every seed's actions before it waits for any: the seeds'
        environments step in parallel)."""
        self._replay = replay  # what act_input shows the agent
        actions = np.asarray(policy(self.obs, self), dtype=np.float32)
        if not np.isfinite(actions).all():  # MuJoCo would silently reset a simulation driven by NaN
            self._non_finite_action(actions)
        self._dispatch(actions)

    def _dispatch(self, actions: np.ndarray) -> None:
        """``actions`` (checked) to the environments: stepping there, or kept for
        :meth:`_results` to step in this process."""
        if isinstance(self.vec, SPLIT_STEP):
            self.vec.step_async(actions)
        self._sent = actions

    def _non_finite_action(self, actions: np.ndarray) -> None:
        task = self.tasks[self.slot_task[np.flatnonzero(~np.isfinite(actions).all(1))[0]]]
        raise MCATError(
            f"non-finite action from the policy on task {task_key(task)} "
            f"at env step {self.env_steps + self.n:,}"
        )

    def step_receive(self) -> list[EpisodeRecord]:
        """The second half of :meth:`step`: the environments' results, stored; the episodes
        that ended."""
        if self.grouped:  # (its observations would no longer be the group's rows)
            raise MCATError("this collector is one of a CollectorGroup: step the group")
        actions, (next_obs, rewards, terminated, truncated) = self._results()
        # copies: the vector env reuses one buffer for every step's observations (float32 ones
        # would otherwise be that buffer itself)
        next_obs = np.array(next_obs, dtype=np.float32)
        rewards = np.array(rewards, dtype=np.float32)
        if not (np.isfinite(next_obs).all() and np.isfinite(rewards).all()):
            self._non_finite(next_obs, rewards)
        assert self._replay is not None
        self._replay.add(
            self.obs, actions, rewards, next_obs, terminated, truncated, tasks=self.slot_task
        )
        self.ctx.push(self.obs, actions, rewards, next_obs)
        self.ep_return += rewards
        self.ep_length += 1
        self.env_steps += self.n
        self.obs = next_obs
        return self._end_episodes(terminated | truncated)

    def _results(self) -> tuple[np.ndarray, tuple[Any, Any, Any, Any]]:
        """The actions sent by :meth:`step_send` and the environments' (observations, rewards,
        terminated, truncated) for them."""
        actions = self._sent
        assert actions is not None and self._replay is not None, "step_receive before step_send"
        self._sent = None
        if isinstance(self.vec, SPLIT_STEP):
            obs, rew, terminated, truncated, _ = self.vec.step_wait()
        else:
            obs, rew, terminated, truncated, _ = self.vec.step(actions)
        return actions, (obs, rew, terminated, truncated)

    def _end_episodes(self, done: np.ndarray) -> list[EpisodeRecord]:
        """The episodes of the slots ``done`` (after their last step was stored): recorded,
        their slots reset, onto their next tasks."""
        if not done.any():
            return []
        finished = []
        moving = self.n < len(self.tasks)  # tasks change slots: their generators go with them
        if moving:
            states = self.vec.get_attr("rng_state")
        assign = {}
        for i in np.flatnonzero(done):
            task = int(self.slot_task[i])
            finished.append(
                EpisodeRecord(task, float(self.ep_return[i]), int(self.ep_length[i]), int(i))
            )
            recent = self.recent_returns.setdefault(task, [])
            recent.append(float(self.ep_return[i]))
            del recent[:-RECENT]
            if moving:
                self.task_rng[task] = states[i]
            self.slot_task[i] = self._pick_next_task(task)
            new = int(self.slot_task[i])
            assign[int(i)] = (new, self.task_rng.get(new))
            self.ctx.reset(i)
            self.ep_return[i] = 0.0
            self.ep_length[i] = 0
        options: dict[str, Any] = {"reset_mask": done.copy()}
        if moving:
            options["assign"] = assign
        self.obs[done] = np.asarray(self.vec.reset(options=options)[0], dtype=np.float32)[done]
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
            f"non-finite {what} from task {task_key(self.tasks[self.slot_task[i]])} at env step "
            f"{self.env_steps + self.n:,} (the environment diverged)"
        )

    def state_dict(self) -> dict:
        """Everything needed to continue collecting mid-episode: each environment's state (see
        :func:`mcat.tasks.wrappers.env_state`), the current observations and contexts, episode
        counters, the task schedule and its generator. With one slot per task ``envs`` lists
        the tasks' env states (the format of every earlier version); with fewer, ``slots``
        holds each slot's task and env state and ``task_rng`` the tasks' generators."""
        slots = self.vec.get_attr("checkpoint")
        state = {
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
        if self.n == len(self.tasks):
            state["envs"] = [slot["env"] for slot in slots]
        else:
            state["slots"] = list(slots)
            state["task_rng"] = dict(self.task_rng)
        return state

    def load_state_dict(self, state: dict) -> None:
        if "envs" in state and self.n < len(self.tasks):
            state = _per_task_to_slots(state)
        slots = state.get("slots") or [
            {"task": t, "env": env} for t, env in enumerate(state.get("envs", []))
        ]
        if len(slots) != self.n or state["obs"].shape != self.obs.shape:
            raise MCATError(
                f"saved collector has {len(slots)} envs and observations "
                f"{tuple(state['obs'].shape)}, "
                f"this one {self.n} and {self.obs.shape}"
            )
        try:
            self.vec.set_attr("checkpoint", slots)
        except (ValueError, AttributeError) as exc:
            raise MCATError(f"cannot restore the collector's environments: {exc}") from None
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
        self.task_rng = {int(t): r for t, r in state.get("task_rng", {}).items()}

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


class CollectorGroup:
    """The collectors of several seeds (the fast path's ``--seeds``) stepped as one: their
    per-step arrays (observations, context histories, episode counters, slot tasks) become rows
    of shared arrays, so a round's transitions are stored, the contexts pushed and the episodes
    counted by one set of NumPy operations for all seeds, and the host's Python per round
    hardly grows with the seeds. Each collector keeps its environments, generators, task
    schedule and checkpoints (its arrays are views, written in place), and a round of the group
    stores and returns exactly what :meth:`Collector.step_receive` of each collector in turn
    would. The collectors are stepped through the group only (:meth:`Collector.step_send`
    first or :meth:`send`, then :meth:`receive`)."""

    def __init__(self, collectors: Sequence[Collector], replay: DeviceReplay):
        first = collectors[0]
        shape = (first.n, first.obs_dim, first.act_dim, first.max_action, first.history)
        if any((c.n, c.obs_dim, c.act_dim, c.max_action, c.history) != shape for c in collectors):
            raise MCATError("the collectors of a group need the same environments and history")
        if replay.seeds != len(collectors):
            raise MCATError(f"{len(collectors)} collectors, a replay of {replay.seeds} seeds")
        S, n = len(collectors), first.n
        self.collectors, self.replay, self.n = list(collectors), replay, n
        self.max_action = first.max_action
        self.obs = np.stack([c.obs for c in collectors])  # [S, n, obs]
        self.slot_task = np.stack([c.slot_task for c in collectors])
        self.ep_return = np.stack([c.ep_return for c in collectors])
        self.ep_length = np.stack([c.ep_length for c in collectors])
        self.ctx = ContextHistory(S * n, first.history, first.obs_dim, first.act_dim)
        for i, c in enumerate(collectors):
            rows = slice(i * n, (i + 1) * n)
            ctx = self.ctx.part(rows)
            for name, array in c.ctx.arrays().items():
                getattr(ctx, name)[...] = array
            c.obs, c.slot_task, c.ctx = self.obs[i], self.slot_task[i], ctx
            c.ep_return, c.ep_length = self.ep_return[i], self.ep_length[i]
            c._replay, c.grouped = replay.views[i], True

    def send(self, actions: np.ndarray) -> None:
        """Every collector's :meth:`Collector.step_send` with its rows of ``actions``
        ([seeds, n, act])."""
        actions = np.asarray(actions, dtype=np.float32)
        if not np.isfinite(actions).all():
            for c, a in zip(self.collectors, actions, strict=True):
                if not np.isfinite(a).all():
                    c._non_finite_action(a)
        for c, a in zip(self.collectors, actions, strict=True):
            c._dispatch(a)

    def receive(self) -> list[list[EpisodeRecord]]:
        """Every collector's :meth:`Collector.step_receive`: the results of the actions each
        sent, stored; the episodes that ended, per collector."""
        S, n = len(self.collectors), self.n
        got = [c._results() for c in self.collectors]
        # (np.array of a list stacks: copies, as there, and faster than np.stack at this size)
        actions = np.array([a for a, _ in got])
        next_obs = np.array([r[0] for _, r in got], dtype=np.float32)
        rewards = np.array([r[1] for _, r in got], dtype=np.float32)
        if not (np.isfinite(next_obs).all() and np.isfinite(rewards).all()):
            for c, o, r in zip(self.collectors, next_obs, rewards, strict=True):
                if not (np.isfinite(o).all() and np.isfinite(r).all()):
                    c._non_finite(o, r)
        terminated = np.array([r[2] for _, r in got])
        truncated = np.array([r[3] for _, r in got])
        self.replay.add(self.slot_task, self.obs, actions, rewards, next_obs, terminated, truncated)
        self.ctx.push(
            self.obs.reshape(S * n, -1),
            actions.reshape(S * n, -1),
            rewards.reshape(-1),
            next_obs.reshape(S * n, -1),
        )
        self.ep_return += rewards
        self.ep_length += 1
        self.obs[...] = next_obs
        done = terminated | truncated
        for c in self.collectors:
            c.env_steps += n
        finished: list[list[EpisodeRecord]] = [[] for _ in self.collectors]
        for i in np.flatnonzero(done.any(1)).tolist():
            finished[i] = self.collectors[i]._end_episodes(done[i])
        return finished


def _per_task_to_slots(state: dict) -> dict:
    """A checkpoint written with one env per task (before the vector env), as slots: each slot
    continues its task's env; every task keeps its generator."""
    envs = state["envs"]
    slots = [{"task": int(t), "env": envs[t]} for t in state["slot_task"]]

    def generator(env: list[dict]) -> dict:  # the base env's: the innermost layer that has one
        return [layer for layer in env if "np_random" in layer and layer["type"] != "action_space"][
            -1
        ]["np_random"]

    task_rng = {t: generator(env) for t, env in enumerate(envs)}
    rest = {k: v for k, v in state.items() if k != "envs"}
    return {**rest, "slots": slots, "task_rng": task_rng}


def seed_text(task: TaskValue) -> str:
    """A task in the strings that seeds derive from: a number as ``repr(float(v))`` (the seeds
    of every run made before tasks could be strings or vectors), anything else as its key."""
    return repr(float(task)) if isinstance(task, int | float) else task_key(task)


def eval_seed(seed: int, task: TaskValue, episode: int) -> int:
    """Seed of evaluation episode ``episode`` of ``task`` (stable across processes)."""
    return zlib.crc32(f"eval:{seed}:{seed_text(task)}:{episode}".encode())


@torch.no_grad()
@overload
def evaluate(
    family: TaskFamily,
    tasks: Sequence[TaskValue],
    context_fn: ContextFn,
    act_fn: ActFn,
    history: int,
    episodes: int = ...,
    seed: int = ...,
    style: str = ...,
    max_episode_steps: int | None = ...,
    per_episode: Literal[False] = ...,
) -> dict[TaskValue, float]: ...


@overload
def evaluate(
    family: TaskFamily,
    tasks: Sequence[TaskValue],
    context_fn: ContextFn,
    act_fn: ActFn,
    history: int,
    episodes: int = ...,
    seed: int = ...,
    style: str = ...,
    max_episode_steps: int | None = ...,
    *,
    per_episode: Literal[True],
) -> dict[TaskValue, list[float]]: ...


def evaluate(
    family: TaskFamily,
    tasks: Sequence[TaskValue],
    context_fn: ContextFn,
    act_fn: ActFn,
    history: int,
    episodes: int = 1,
    seed: int = 0,
    style: str = "paper",
    max_episode_steps: int | None = None,
    per_episode: bool = False,
) -> dict[TaskValue, float] | dict[TaskValue, list[float]]:
    """Mean undiscounted return (or, with ``per_episode``, the list of episode returns) of the
    deterministic policy on each task, all episodes of all tasks run in lockstep. The reward
    delay does not change an episode's total, so evaluation
    uses the dense reward. Environment seeds derive from ``seed``, the task value and the episode
    index (not from the task's position), so a task gets the same episodes in any call."""

    seeds = [[eval_seed(seed, v, e) for e in range(episodes)] for v in tasks]
    totals, owner, _ = run_episodes(
        family,
        tasks,
        seeds,
        row_policy(context_fn, act_fn),
        history,
        style=style,
        max_episode_steps=max_episode_steps,
    )
    if per_episode:
        return {v: totals[owner == i].tolist() for i, v in enumerate(tasks)}
    return {v: float(totals[owner == i].mean()) for i, v in enumerate(tasks)}


# policy(obs [n, o], owner [n] (index into the tasks), the episodes' context window) -> actions
RowPolicy = Callable[[np.ndarray, np.ndarray, ContextWindow], np.ndarray]


def row_policy(context_fn: ContextFn, act_fn: ActFn) -> RowPolicy:
    """A policy given as ``context``/``act`` (see :mod:`mcat.policies`) as a :data:`RowPolicy`:
    the same for every task, z from each episode's own context window."""

    def policy(obs: np.ndarray, _owner: np.ndarray, ctx: ContextWindow) -> np.ndarray:
        return act_fn(obs, context_fn(ctx.delta, ctx.act, ctx.mask))

    return policy


@dataclass
class Episode:
    """The transitions of one finished episode (float32 arrays, one row per step)."""

    obs: np.ndarray  # [L, obs]
    act: np.ndarray  # [L, act]
    rew: np.ndarray  # [L] the reward as the environment paid it (delayed when it is)
    next_obs: np.ndarray  # [L, obs]
    terminated: np.ndarray  # [L] bool
    frames: list[np.ndarray] | None = None  # [L + 1] rendered frames (run_episodes' ``film``)

    @property
    def ret(self) -> float:
        return float(self.rew.sum(dtype=np.float64))


@torch.no_grad()
def run_episodes(
    family: TaskFamily,
    tasks: Sequence[TaskValue],
    seeds: Sequence[Sequence[int]],
    policy: RowPolicy,
    history: int,
    style: str = "paper",
    max_episode_steps: int | None = None,
    reward_delay: int = 1,
    record: bool = False,
    film: Callable[[gym.Env], None] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[Episode] | None]:
    """One episode per seed in ``seeds[i]`` on task ``tasks[i]``, all in lockstep, acting with
    ``policy`` (which sees each row's task index, so it may act differently per task). Returns
    each episode's undiscounted return, its task index and, with ``record``, its transitions.
    ``film`` (with ``record``) renders every step into the episodes' ``frames``: the envs are
    made with ``render_mode="rgb_array"`` and ``film(env)`` prepares each (its camera, say);
    ``env_kwargs`` go to the envs' constructors."""
    envs, owner = [], []
    kwargs = dict(env_kwargs or {}) | ({"render_mode": "rgb_array"} if film else {})
    for i, v in enumerate(tasks):
        for s in seeds[i]:
            envs.append(
                family.make_env(
                    v,
                    seed=s,
                    style=style,
                    max_episode_steps=max_episode_steps,
                    reward_delay=reward_delay,
                    **kwargs,
                )
            )
            owner.append(i)
    owner_arr = np.array(owner, dtype=np.int64)
    obs = np.stack([env.reset()[0] for env in envs]).astype(np.float32)
    frames: list[list[np.ndarray]] = [[] for _ in envs]
    if film is not None:
        for env, shots in zip(envs, frames, strict=True):
            film(env)
            shots.append(np.asarray(env.render()))
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
            if film is not None:
                frames[k].append(np.asarray(envs[k].render()))
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
            shots if film is not None else None,
        )
        for rows, shots in zip(steps, frames, strict=True)
    ]
    return totals, owner_arr, episodes
