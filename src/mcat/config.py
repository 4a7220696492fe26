"""Typed run configuration: a dataclass per algorithm and one per run, read from and written to
JSON with strict checking (unknown keys and wrong types are errors, not silent defaults)."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcat.agents.ctd3 import CTD3Config
from mcat.algos import get_algo
from mcat.collect import VECTOR_MODES
from mcat.errors import MCATError
from mcat.tasks.family import TaskValue
from mcat.validation import (
    MAX_INT,
    check_compiler,
    check_device,
    check_distinct,
    check_int,
    check_number,
    check_seed,
    check_threads,
)


@dataclass
class RunConfig:
    """One training run. Step counts are environment steps summed over the training tasks
    (the x-axis of the paper's learning curves)."""

    family: str
    """Task family name (see `mcat families`)."""
    algo: str = "ctd3"
    """Algorithm: mcat (context TD3 + self-imitation + policy transfer), ctd3
    (context-conditioned TD3), td3 (no context), the baselines pearl and mql, or a plugin's
    (see mcat.algos)."""
    steps: int = 100_000
    """Total environment steps over all training tasks."""
    seed: int = 0
    """Seed of networks, exploration, replay sampling and environments."""
    reward_delay: int = 1
    """Pay the summed reward every this many steps (1 = dense)."""
    style: str = "paper"
    """Reward/observation/termination of the environments: paper or gymnasium."""
    train_tasks: list[TaskValue] | None = None
    """Training task values (default: the family's)."""
    test_tasks: list[TaskValue] | None = None
    """Test task values (default: the family's)."""
    max_episode_steps: int | None = None
    """Episode length (default: the family's, 1000 for MuJoCo)."""
    learning_starts: int = 10_000
    """Environment steps of uniformly random actions before learning starts."""
    utd: float = 1.0
    """Gradient steps per environment step of each task (1 = one batch per task per step)."""
    envs_per_round: int | None = None
    """Tasks collected at once (default: all training tasks in lockstep)."""
    schedule: str = "round-robin"
    """With fewer envs than tasks, how the next task is picked: round-robin or sample."""
    vector_envs: str = "sync"
    """How the collector steps its environments: sync (in this process, in turn), async (one
    subprocess each, stepped in parallel) or worker (all in one subprocess, stepped in turn while
    this process goes on). Same transitions in every mode; see the README for when each pays."""
    replay_capacity: int = 1_000_000
    """Transitions kept per task (capped at what the run can collect)."""
    eval_every: int = 10_000
    """Environment steps between evaluations."""
    eval_episodes: int = 1
    """Evaluation episodes per task (deterministic policy)."""
    checkpoint_every: int = 50_000
    """Environment steps between checkpoints (one is always written at the end; the last two are
    kept)."""
    checkpoint_replay: bool = True
    """Put the replay contents in checkpoints (False: much smaller files, but a resumed run refills
    its replay and is not identical)."""
    log_interval: float = 10.0
    """Seconds between progress lines."""
    device: str = "cpu"
    """Torch device for learning and acting."""
    threads: int | None = None
    """Torch CPU threads (default: torch's choice)."""
    deterministic: bool = False
    """torch.use_deterministic_algorithms(True), and CUBLAS_WORKSPACE_CONFIG=:4096:8 unless set: for
    repeatable GPU runs (CPU runs repeat without it; see README, Determinism)."""
    fast: bool = False
    """The fast path (mcat.agents.fast): replay on the device and every update and acting step
    batched over seeds, as CUDA graphs on a GPU. Same algorithm, other random draws (not
    bit-identical to the default path). Meant for a GPU; on a CPU it runs, more slowly."""
    act_ahead: bool = False
    """Fast path only: each round acts with the policy from before the gradient steps the last
    round earned, which then run on the GPU while the environments step, so that the GPU's and
    the host's work overlap. The gradient steps and the data they sample are those of the serial
    order; only the acting policy lags one round (a step of each environment). Off by default
    until measured on a GPU (results/gpu/README.md)."""
    compile: bool = False
    """Fast path only: compile each step's networks and losses with torch.compile (inductor),
    so that a step launches fewer, fused kernels (benchmarks/fast_kernels.py counts them). The
    same algorithm, equal to the eager step within float rounding (not bit-identical to a run
    without it). Compiling takes about a minute at the start (more on a small CPU); it needs a
    C++ compiler on a CPU and triton on a GPU. Off by default until measured on a GPU."""
    agent: Any = field(default_factory=CTD3Config)
    """Hyper-parameters of the algorithm."""

    def validate(self) -> None:
        from mcat.tasks import check_reward_delay, get_family

        config_class = get_algo(self.algo).config
        if type(self.agent) is not config_class:
            raise MCATError(
                f"algo {self.algo} needs an agent config of type {config_class.__name__}, "
                f"got {type(self.agent).__name__}"
            )
        family = get_family(self.family)
        for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every", "replay_capacity"):
            check_int(name, getattr(self, name), 1)
        check_int("learning_starts", self.learning_starts, 0)
        check_number("utd", self.utd, 0.0, low_open=True)
        check_number("log_interval", self.log_interval, 0.0)
        check_seed(self.seed)
        check_threads(self.threads)
        check_device(self.device)
        check_reward_delay(self.reward_delay)
        if self.max_episode_steps is not None:
            check_int("max_episode_steps", self.max_episode_steps, 1)
        if self.style not in ("paper", "gymnasium"):
            raise MCATError(f"--style must be paper or gymnasium, got {self.style!r}")
        if self.schedule not in ("round-robin", "sample"):
            raise MCATError(f"--schedule must be round-robin or sample, got {self.schedule!r}")
        if self.vector_envs not in VECTOR_MODES:
            raise MCATError(
                f"--vector-envs must be one of {', '.join(VECTOR_MODES)}, got {self.vector_envs!r}"
            )
        if self.train_tasks is not None and not self.train_tasks:
            raise MCATError("--train-tasks needs at least one task")
        for name in ("train_tasks", "test_tasks"):
            if getattr(self, name) is not None:  # as values: "0.5" from the CLI is 0.5 in files
                setattr(self, name, [family.check_task(v) for v in getattr(self, name)])
            check_distinct(name, getattr(self, name) or [])
        train = [family.check_task(v) for v in self.train_tasks or family.train_tasks]
        n = len(train)
        if self.envs_per_round is not None and not 1 <= self.envs_per_round <= n:
            raise MCATError(
                f"--envs-per-round must be between 1 and the number of training tasks ({n}), "
                f"got {self.envs_per_round}"
            )
        validate_tasks = getattr(self.agent, "validate_tasks", None)  # what needs the tasks
        if callable(validate_tasks):
            validate_tasks(n)
        if self.act_ahead and not self.fast:
            raise MCATError("--act-ahead is an option of the fast path: add --fast")
        if self.compile:
            if not self.fast:
                raise MCATError("--compile is an option of the fast path: add --fast")
            check_compiler(self.device)
        if self.fast:
            from mcat.agents.ctd3 import CTD3Agent
            from mcat.agents.mcat import MCATAgent

            if get_algo(self.algo).agent not in (CTD3Agent, MCATAgent):
                raise MCATError(
                    f"the fast path runs ctd3, td3 and mcat; algo {self.algo} runs without --fast"
                )
        validate = getattr(self.agent, "validate", None)  # a plugin's config may have none
        if callable(validate):
            validate()


def _check_type(name: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` converted to the annotated type, or raise MCATError."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(name, value, option)
            except MCATError:
                pass
        raise MCATError(
            f"config key {name!r}: {value!r} has the wrong type (expected {annotation})"
        )
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise MCATError(f"config key {name!r}: expected a list, got {value!r}")
        inner = typing.get_args(annotation)[0]
        items = [_check_type(name, v, inner) for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MCATError(f"config key {name!r}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise MCATError(f"config key {name!r}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, float) and not math.isfinite(value):
            raise MCATError(f"config key {name!r}: expected an integer, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise MCATError(f"config key {name!r}: expected an integer, got {value!r}")
        if abs(value) > MAX_INT:
            raise MCATError(f"config key {name!r}: {value!r} is out of range (|value| < 2**63)")
        return int(value)
    if annotation in (str, bool):
        if not isinstance(value, annotation):
            raise MCATError(f"config key {name!r}: expected {annotation.__name__}, got {value!r}")
        return value
    return value


def dataclass_from_dict(cls: type, data: dict, where: str = "") -> Any:
    if not isinstance(data, dict):
        raise MCATError(f"config {where or cls.__name__} must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise MCATError(
            f"unknown config key(s) {', '.join(where + k for k in unknown)}; "
            f"known: {', '.join(fields)}"
        )
    values = {}
    for name, value in data.items():
        if name == "agent":
            continue
        values[name] = _check_type(where + name, value, hints[name])
    return cls(**values)


def merge_config(base: dict, update: dict) -> dict:
    """Merge ``update`` into ``base`` (nested dicts key by key, anything else replaced); returns
    ``base``, changed in place."""
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge_config(base[k], v)
        else:
            base[k] = v
    return base


def run_config_from_dict(data: dict) -> RunConfig:
    data = dict(data)
    agent = data.pop("agent", {})
    algo = data.get("algo", "ctd3")
    if not isinstance(algo, str):
        raise MCATError(f"algo must be a name, got {algo!r}")
    config_class = get_algo(algo).config
    if "family" not in data:
        raise MCATError("config needs a 'family'")
    cfg = dataclass_from_dict(RunConfig, data)
    agent = dict(agent)
    fixed = getattr(config_class(), "use_context", None)
    if "use_context" in agent and fixed is not None and agent["use_context"] != fixed:
        raise MCATError(f"agent.use_context={agent['use_context']} contradicts algo {algo}")
    _check_other_algos_keys(algo, config_class, agent)
    cfg.agent = dataclass_from_dict(config_class, agent, where="agent.")
    return cfg


def _check_other_algos_keys(algo: str, config_class: type, agent: dict) -> None:
    """A one-line error for a setting of another algorithm (``--set agent.kl_lambda=...`` on a
    ctd3 run: "a setting of pearl, not of ctd3")."""
    from mcat.algos import list_algos

    known = {f.name for f in dataclasses.fields(config_class)}
    for key in sorted(set(agent) - known):
        owners = [
            a.name for a in list_algos() if key in {f.name for f in dataclasses.fields(a.config)}
        ]
        if owners:
            raise MCATError(
                f"agent.{key} is a setting of {' and '.join(owners)}, not of {algo}; "
                f"drop it or choose --algo {owners[0]}"
            )


def run_config_to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def load_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MCATError(f"no such file: {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise MCATError(f"cannot read {path}: {exc}") from None
