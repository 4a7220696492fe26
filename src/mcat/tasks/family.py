"""Task families: a set of MDPs that share states, actions and reward but differ in one physics
parameter (paper Sec. 3.1), and the registry that names them.

A task is a value of the family's parameter: a number (an armature), a string (a Meta-World
environment name) or a small vector (a goal position). :func:`task_key` gives each task the stable
string used in files, seeds and on the command line: ``0.5``, ``push-v3``, ``0.1,0.8,0.2``.

A family is plain data plus two functions: how to build the gymnasium environment, and how to
apply a task's parameter value to it. Users register their own families with
:func:`register_family`; nothing in the package needs editing.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec
from gymnasium.wrappers import TimeLimit

from mcat.errors import MCATError
from mcat.plugins import load_plugins
from mcat.tasks.wrappers import DelayedReward

TaskValue = float | int | str | tuple[float, ...]
STYLES = ("paper", "gymnasium")
GYM_NAMESPACE = "mcat"
ENTRY_POINT = "mcat.tasks.family:make_task_env"


def task_key(value: TaskValue) -> str:
    """The stable string of a task: a number as ``f"{v:g}"`` (``0.1``, ``3``: the keys of every
    run directory written before tasks could be strings or vectors), a string as it is, a vector
    as its numbers joined by commas (``0.1,0.8,0.2``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return ",".join(f"{x:g}" for x in value)
    return f"{value:g}"


def _number(task: Any, family: str) -> float:
    if isinstance(task, bool):
        raise MCATError(f"task value for {family} must be a number, got {task!r}")
    try:
        return float(task)
    except (TypeError, ValueError):
        raise MCATError(f"task value for {family} must be a number, got {task!r}") from None


class Domain(Protocol):
    """The values a task parameter may take; ``str(domain)`` describes them to a user. A domain
    may also offer ``parse(task, family) -> TaskValue``, which turns what a user or a JSON file
    gives (``"0.5"``, ``[0.1, 0.8, 0.2]``) into a task value; without it tasks are numbers."""

    def contains(self, value: TaskValue) -> bool: ...


@dataclass(frozen=True)
class Interval:
    """Real values between ``low`` and ``high`` (closed ends unless marked open)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def parse(self, task: Any, family: str) -> TaskValue:
        return _number(task, family)

    def contains(self, value: TaskValue) -> bool:
        if not isinstance(value, int | float):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return bool(above and below)

    def __str__(self) -> str:
        left = "(" if self.low_open or self.low == -math.inf else "["
        right = ")" if self.high_open or self.high == math.inf else "]"
        return f"{left}{self.low:g}, {self.high:g}{right}"


@dataclass(frozen=True)
class Choice:
    """A finite set of values: numbers (crippled-leg indices) or strings (environment names)."""

    values: tuple[TaskValue, ...]

    def parse(self, task: Any, family: str) -> TaskValue:
        if any(isinstance(v, str) for v in self.values):
            return task if isinstance(task, str) else repr(task)  # refused by contains
        value = _number(task, family)
        return int(value) if math.isfinite(value) and value == int(value) else value

    def contains(self, value: TaskValue) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(task_key(v) for v in self.values)


@dataclass(frozen=True)
class Box:
    """Vectors of ``len(low)`` numbers within ``low`` and ``high`` (each coordinate), for example
    goal positions inside a robot's workspace. Written ``x,y,z`` on the command line."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def parse(self, task: Any, family: str) -> TaskValue:
        parts = task.split(",") if isinstance(task, str) else task
        if not isinstance(parts, list | tuple) or len(parts) != len(self.low):
            raise MCATError(
                f"task value for {family} must be {len(self.low)} numbers "
                f"(comma-separated on the command line), got {task!r}"
            )
        return tuple(_number(x, family) for x in parts)

    def contains(self, value: TaskValue) -> bool:
        return (
            isinstance(value, tuple)
            and len(value) == len(self.low)
            and all(
                math.isfinite(x) and lo <= x <= hi
                for x, lo, hi in zip(value, self.low, self.high, strict=True)
            )
        )

    def __str__(self) -> str:
        return f"a vector within [{task_key(self.low)}] and [{task_key(self.high)}]"


def check_reward_delay(reward_delay: Any) -> int:
    """Return ``reward_delay`` as an int >= 1, or raise :class:`MCATError`."""
    if (
        isinstance(reward_delay, bool)
        or not isinstance(reward_delay, int | float)
        or not math.isfinite(reward_delay)
        or reward_delay != int(reward_delay)
    ):
        raise MCATError(f"reward delay must be a whole number of steps >= 1, got {reward_delay!r}")
    if reward_delay < 1:
        raise MCATError(f"reward delay must be >= 1 step, got {reward_delay!r}")
    if reward_delay > 2**63 - 1:
        raise MCATError(f"reward delay must be < 2**63 steps, got {reward_delay!r}")
    return int(reward_delay)


@dataclass(frozen=True)
class TaskFamily:
    """A family of tasks differing in one parameter.

    Attributes:
        name: registry name, for example ``"halfcheetah-armature"``.
        env: a gymnasium id passed to ``gym.make`` or a callable returning a new Env.
        parameter: what a task value means, for people (``"joint armature"``).
        train_tasks: parameter values of the meta-training tasks.
        test_tasks: parameter values of the unseen test tasks.
        domain: the values a task may take; anything else is refused.
        apply: ``apply(env, value)`` changes a freshly built env into the task; it may return a
            wrapped env (used as the result) or ``None`` (the env was changed in place).
        task_env_kwargs: constructor arguments that depend on the task (for example the
            ``xml_file`` of a recompiled model); ``None`` when the task is set by ``apply`` only.
        paper_env_kwargs: constructor arguments for ``style="paper"`` (the authors' reward,
            observation and termination); ``style="gymnasium"`` leaves them out.
        default_task: the value of the unmodified environment, if there is one.
        max_episode_steps: episode length (time limit).
        description: one line for listings.
        gym_name: the gymnasium name under the ``mcat/`` namespace (registered as
            ``mcat/<gym_name>-v0``); empty = derived from ``name`` (``my-family`` ->
            ``MyFamily``).
        scripted_policy: ``scripted_policy(task)`` gives a hand-designed policy of the task,
            ``policy(obs) -> action`` for one observation, where the benchmark ships one
            (Meta-World); `mcat transfer --source-policy scripted` transfers it.
        positions: ``positions(obs, task)`` gives named 3-D positions (``"effector"``,
            ``"object"``, ``"goal"``: [steps, 3] each) along an episode of ``task`` from its
            observations; `mcat transfer` then draws the paths of its episodes (paper Fig. 4).
    """

    name: str
    env: str | Callable[..., gym.Env]
    parameter: str
    train_tasks: tuple[TaskValue, ...]
    test_tasks: tuple[TaskValue, ...]
    domain: Domain
    apply: Callable[[gym.Env, Any], gym.Env | None] | None = None
    task_env_kwargs: Callable[[Any], Mapping[str, Any]] | None = None
    paper_env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    default_task: TaskValue | None = None
    max_episode_steps: int = 1000
    description: str = ""
    gym_name: str = ""
    scripted_policy: Callable[[Any], Callable[[Any], Any]] | None = None
    positions: Callable[[Any, Any], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not self.train_tasks:
            raise MCATError(f"family {self.name!r} needs at least one training task")
        if self.gym_name and not re.fullmatch(r"[A-Za-z_][\w.]*", self.gym_name):
            raise MCATError(
                f"gym_name of family {self.name!r} must be letters, digits, _ and . "
                f"(it becomes mcat/<gym_name>-v0), got {self.gym_name!r}"
            )
        object.__setattr__(self, "train_tasks", tuple(self.check_task(v) for v in self.train_tasks))
        object.__setattr__(self, "test_tasks", tuple(self.check_task(v) for v in self.test_tasks))

    @property
    def gym_id(self) -> str:
        """The id this family has in gymnasium's registry: ``gym.make(family.gym_id, task=...)``."""
        name = self.gym_name or "".join(
            p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9.]+", self.name)
        )
        return f"{GYM_NAMESPACE}/{name or 'Family'}-v0"

    @property
    def all_tasks(self) -> tuple[TaskValue, ...]:
        return self.train_tasks + tuple(v for v in self.test_tasks if v not in self.train_tasks)

    def check_task(self, task: Any) -> TaskValue:
        """Return ``task`` (a value, or its key as a string) as a value in the family's domain,
        or raise :class:`MCATError`."""
        parse = getattr(self.domain, "parse", None)
        value = parse(task, self.name) if parse is not None else _number(task, self.name)
        finite = not isinstance(value, float) or math.isfinite(value)
        if not finite or not self.domain.contains(value):
            shown = task if isinstance(task, str) else repr(task)  # as the user wrote it
            raise MCATError(
                f"task value {shown} is not valid for {self.name} ({self.parameter}): "
                f"it must be {self.domain}"
            )
        return value

    def task(self, key: str) -> TaskValue:
        """The task whose :func:`task_key` is ``key`` (as a run directory's files name it)."""
        return self.check_task(key)

    def make_env(
        self,
        task: TaskValue,
        reward_delay: int = 1,
        seed: int | None = 0,
        *,
        style: str = "paper",
        max_episode_steps: int | None = None,
        **env_kwargs: Any,
    ) -> gym.Env:
        """Build the gymnasium Env of one task.

        The reward is delayed by ``reward_delay`` steps (1 = dense; see :class:`DelayedReward`),
        the episode is cut at ``max_episode_steps`` (default: the family's), and the env is
        reset once with ``seed`` so that later ``reset()`` calls draw from a seeded generator.
        ``style="paper"`` uses the authors' reward/observation/termination, ``"gymnasium"``
        gymnasium's defaults; ``env_kwargs`` override constructor arguments.
        """
        env = self.build_env(
            task, reward_delay, style=style, episode_steps=max_episode_steps, **env_kwargs
        )
        env.reset(seed=seed)
        env.action_space.seed(seed)
        return env

    def build_env(
        self,
        task: TaskValue,
        reward_delay: int = 1,
        *,
        style: str = "paper",
        episode_steps: int | None = None,
        **env_kwargs: Any,
    ) -> gym.Env:
        """The env of :meth:`make_env`, not yet reset, with a spec that rebuilds it:
        ``gym.make(env.spec)`` gives the same task (the id :attr:`gym_id` with the task, the delay,
        the style, the episode length and ``env_kwargs`` as its kwargs)."""
        value = self.check_task(task)
        delay = check_reward_delay(reward_delay)
        if style not in STYLES:
            raise MCATError(f"unknown env style {style!r}; choose one of {', '.join(STYLES)}")
        steps = self.max_episode_steps if episode_steps is None else episode_steps
        if not isinstance(steps, int) or steps < 1:
            raise MCATError(f"max_episode_steps must be a positive integer, got {steps!r}")
        kwargs = dict(self.paper_env_kwargs) if style == "paper" else {}
        if self.task_env_kwargs is not None:
            kwargs.update(self.task_env_kwargs(value))
        kwargs.update(env_kwargs)
        with _quiet_known_model_warnings():
            if isinstance(self.env, str):
                env = gym.make(self.env, max_episode_steps=steps, **kwargs)
            else:
                env = TimeLimit(self.env(**kwargs), max_episode_steps=steps)
        if self.apply is not None:
            env = self.apply(env, value) or env
        env = DelayedReward(env, delay)
        # What gym.make records for an env it built (the minimal spec; the wrappers above add
        # themselves to env.spec), so that anything recreating the env from its spec gets this task
        # and not the default model of the underlying id.
        env.unwrapped.spec = EnvSpec(
            id=self.gym_id,
            entry_point=ENTRY_POINT,
            max_episode_steps=None,
            order_enforce=False,
            disable_env_checker=True,
            kwargs={
                "family": self.name,
                "task": value,
                "reward_delay": delay,
                "style": style,
                "episode_steps": steps,
                **env_kwargs,
            },
        )
        return env


@contextlib.contextmanager
def _quiet_known_model_warnings() -> Iterator[None]:
    """Drop MuJoCo's deprecation warning about ``settotalmass`` in gymnasium's own
    half_cheetah.xml (printed at every model load, harmless); other warnings still print."""
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def handler(message: str) -> None:
        if "settotalmass" not in message:
            print(f"MuJoCo warning: {message}", file=sys.stderr)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


_REGISTRY: dict[str, TaskFamily] = {}
PLUGIN_GROUP = "mcat.families"


def register_family(family: TaskFamily, *, overwrite: bool = False) -> TaskFamily:
    """Add a family to the registry so that :func:`get_family` and ``mcat`` find it."""
    if not isinstance(family, TaskFamily):
        raise MCATError(f"register_family expects a TaskFamily, got {type(family).__name__}")
    if family.name in _REGISTRY and not overwrite:
        raise MCATError(
            f"a family named {family.name!r} is already registered "
            "(pass overwrite=True to replace it)"
        )
    _register_with_gymnasium(family, overwrite)  # first: a taken gym id refuses the family
    _REGISTRY[family.name] = family
    return family


def _register_with_gymnasium(family: TaskFamily, overwrite: bool) -> None:
    if family.gym_id in gym.registry:
        owner = gym.registry[family.gym_id].kwargs.get("family")
        if owner != family.name and not overwrite:
            raise MCATError(
                f"gymnasium id {family.gym_id} of family {family.name!r} is already taken by "
                f"{owner!r}; give the family another gym_name"
            )
        del gym.registry[family.gym_id]  # gymnasium warns when an id is registered twice
    # No max_episode_steps here: the episode length is applied inside the reward delay (so the
    # pending reward is paid when the episode is cut); pass episode_steps= to change it.
    gym.register(family.gym_id, entry_point=ENTRY_POINT, kwargs={"family": family.name})


def make_task_env(
    family: str,
    task: TaskValue | None = None,
    reward_delay: int = 1,
    style: str = "paper",
    episode_steps: int | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """gymnasium's entry point of every family: ``gym.make("mcat/HalfCheetahArmature-v0",
    task=0.5, reward_delay=500)``. ``task`` defaults to the family's unmodified value (or its
    first training task); ``episode_steps`` sets the episode length (default: the family's).
    gym.make's own ``max_episode_steps`` adds a second time limit outside the reward delay,
    which would cut an episode before its pending reward is paid: use ``episode_steps``."""
    fam = get_family(family)
    if task is None:
        task = fam.default_task if fam.default_task is not None else fam.train_tasks[0]
    return fam.build_env(task, reward_delay, style=style, episode_steps=episode_steps, **env_kwargs)


def _load_plugins() -> None:
    """Import user modules that register families: the ``mcat.families`` entry-point group of
    installed packages, and the comma-separated module names in ``$MCAT_PLUGINS``."""
    load_plugins(PLUGIN_GROUP)


def list_families() -> list[str]:
    """Names of all registered families, built-in first, in registration order."""
    _load_plugins()
    return list(_REGISTRY)


def get_family(name: str) -> TaskFamily:
    """The registered family called ``name``; an unknown name raises :class:`MCATError`."""
    _load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise MCATError(
            f"unknown task family {name!r}; known families: {', '.join(_REGISTRY)}"
        ) from None
