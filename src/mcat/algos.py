"""The algorithm registry: what ``--algo NAME`` (and ``"algo"`` in a config) trains.

An algorithm is a config dataclass (its hyper-parameters: typed, with documented defaults, read
from and written to config.json under ``"agent"``) and an agent class built as
``agent_class(obs_dim, act_dim, config, max_action=..., device=...)``, plus
``train_tasks=[...]`` when its constructor takes that keyword (an agent with a part per training
task, like Distral, or one that evaluates them differently from new tasks, like MQL). The
training loop uses the agent through :class:`Agent`. Adding an algorithm is one module and one
line::

    from mcat.algos import register_algo
    register_algo("my-algo", MyConfig, MyAgent, "what it is, in a few words")

and a module that does so is found the way task-family plugins are: named in ``$MCAT_PLUGINS``
(comma-separated module names) or in an installed package's ``mcat.algos`` entry-point group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from mcat.agents.ctd3 import CTD3Agent, CTD3Config, TD3Config
from mcat.agents.distral import DistralAgent, DistralConfig
from mcat.agents.hipbmdp import HiPBMDPAgent, HiPBMDPConfig
from mcat.agents.mcat import MCATAgent, MCATConfig
from mcat.agents.mql import MQLAgent, MQLConfig
from mcat.agents.pearl import PEARLAgent, PEARLConfig
from mcat.collect import ActInput
from mcat.errors import MCATError
from mcat.plugins import load_plugins

PLUGIN_GROUP = "mcat.algos"


class Agent(Protocol):
    """What the training loop, evaluation and checkpoints use of an agent (CTD3Agent is the
    reference implementation; subclass it to change its losses or its acting)."""

    cfg: Any  # the config dataclass; ``history`` (context length, 0 for none) and
    # ``exploration_noise`` are read by the loop
    act_dim: int
    rl_steps: int  # gradient steps done (0 until learning starts)

    def context(self, delta: np.ndarray, act: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """z for each environment from its current episode's last K (s'-s, a) pairs."""
        ...

    def act(
        self,
        obs: np.ndarray,
        z: torch.Tensor,
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Actions for a batch of states (Gaussian exploration noise of std ``noise`` times the
        action bound when ``noise > 0``)."""
        ...

    def train_step(self, replay: Any) -> dict[str, float]:
        """One gradient step (and whatever is scheduled with it) from the replay; its losses."""
        ...

    def warmup_description(self) -> str | None:
        """What the first train_step does before its gradient step (for the progress line)."""
        ...

    def modules(self) -> dict[str, torch.nn.Module | torch.optim.Optimizer]:
        """Networks and optimisers (their parameters are checked for NaN before checkpoints)."""
        ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict, policy_only: bool = False) -> None: ...

    # collection hooks (CTD3Agent's defaults: the learned policy collects, nothing extra; MCAT's
    # policy transfer is its override of these)
    def start_collection(self, tasks: list[float], slots: int, learning_starts: int) -> None: ...

    def act_collect(self, inp: ActInput, noise: float, rng: np.random.Generator) -> np.ndarray:
        """Actions while collecting, from one input (observations, the current episodes'
        context windows, each slot's task, step counters: :class:`mcat.collect.ActInput`)."""
        ...

    def slot_sources(self) -> np.ndarray | None: ...

    def log_files(self) -> dict[str, list[str]]: ...

    def episode_ended(
        self, task: int, slot: int, ret: float, next_task: int, step: int, learning: bool
    ) -> dict[str, list[list]]: ...

    def evaluation_report(
        self, step: int
    ) -> tuple[dict[str, list[list]], dict[str, float], str]: ...

    def collection_state(self) -> dict | None: ...

    def load_collection_state(self, state: dict | None) -> None: ...


@dataclass(frozen=True)
class Algo:
    name: str
    config: type
    agent: type
    description: str = ""


_REGISTRY: dict[str, Algo] = {}


def register_algo(
    name: str, config_class: type, agent_class: type, description: str = "", *, overwrite=False
) -> Algo:
    """Make ``name`` trainable by ``mcat train --algo NAME`` and readable from config.json."""
    if not name or not isinstance(name, str) or any(c.isspace() for c in name):
        raise MCATError(f"an algorithm name must be a non-empty word, got {name!r}")
    if not (isinstance(config_class, type) and hasattr(config_class, "__dataclass_fields__")):
        raise MCATError(f"register_algo({name!r}): the config class must be a dataclass")
    if not isinstance(agent_class, type):
        raise MCATError(f"register_algo({name!r}): the agent must be a class")
    if name in _REGISTRY and not overwrite:
        raise MCATError(
            f"an algorithm named {name!r} is already registered (pass overwrite=True to replace it)"
        )
    _REGISTRY[name] = algo = Algo(name, config_class, agent_class, description)
    return algo


def _load_plugins() -> None:
    load_plugins(PLUGIN_GROUP)


def get_algo(name: str) -> Algo:
    """The algorithm registered as ``name``; an unknown name is a one-line error."""
    _load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise MCATError(f"unknown algo {name!r}; choose one of {', '.join(_REGISTRY)}") from None


def list_algos() -> list[Algo]:
    """Every registered algorithm, the built-in ones first."""
    _load_plugins()
    return list(_REGISTRY.values())


register_algo("ctd3", CTD3Config, CTD3Agent, "context-conditioned TD3 (C and F, no transfer)")
register_algo("td3", TD3Config, CTD3Agent, "plain multi-task TD3, no context")
register_algo("mcat", MCATConfig, MCATAgent, "ctd3 + self-imitation + policy transfer through H")
register_algo("pearl", PEARLConfig, PEARLAgent, "PEARL: SAC with a probabilistic context encoder")
register_algo(
    "mql", MQLConfig, MQLAgent, "MQL: TD3 with a GRU context; propensity-weighted adaptation"
)
register_algo(
    "distral", DistralConfig, DistralAgent, "Distral: a SAC policy per task, distilled into one"
)
register_algo(
    "hipbmdp",
    HiPBMDPConfig,
    HiPBMDPAgent,
    "HiP-BMDP: PEARL whose z is a dynamics parameter (model and task-bisimulation losses)",
)
