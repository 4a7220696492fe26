"""What every agent shares: the training loop's collection hooks with their defaults (the learned
policy collects everything, no extra logs, no extra state), and saving its modules and counters.
An algorithm that decides more than the actions while collecting (MCAT: which policy collects
each episode; PEARL: which z) overrides the hooks; see :class:`mcat.algos.Agent` for the whole
interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from mcat.collect import ActInput
from mcat.tasks import TaskValue


def adam_options(device: torch.device) -> dict[str, Any]:
    """Fused Adam where torch has it (one kernel per step; the same algorithm)."""
    return {"fused": True} if device.type in ("cpu", "cuda") else {}


class AgentBase:
    """Default collection hooks and saving; a subclass provides ``context``, ``act`` and
    ``modules``."""

    # provided by the subclass (see mcat.algos.Agent)
    context: Callable[[np.ndarray, np.ndarray, np.ndarray], torch.Tensor]
    act: Callable[..., np.ndarray]
    modules: Callable[[], dict[str, torch.nn.Module | torch.optim.Optimizer]]

    policy_modules: ClassVar[tuple[str, ...]] = ()
    """The modules acting needs (what ``load_state_dict(policy_only=True)`` loads)."""
    counters: ClassVar[tuple[str, ...]] = ("rl_steps",)
    """Integer attributes saved with the modules."""

    def state_dict(self) -> dict:
        state: dict = {name: m.state_dict() for name, m in self.modules().items()}
        state["counters"] = {name: getattr(self, name) for name in self.counters}
        return state

    def load_state_dict(self, state: dict, policy_only: bool = False) -> None:
        modules = self.modules()
        names = self.policy_modules if policy_only else tuple(modules)
        for name in (n for n in names if n in modules):
            modules[name].load_state_dict(state[name])
        if not policy_only:
            for name in self.counters:
                setattr(self, name, int(state["counters"][name]))

    def start_collection(self, tasks: list[TaskValue], slots: int, learning_starts: int) -> None:
        """Called once by the training loop: the training tasks, the number of environment
        slots collected at once, and the env step where learning starts."""

    def act_collect(self, inp: ActInput, noise: float, rng: np.random.Generator) -> np.ndarray:
        """Actions of every environment slot while collecting: by default :meth:`act` on the
        contexts of the current episodes, with exploration noise."""
        z = self.context(inp.ctx_delta, inp.ctx_act, inp.ctx_mask)
        return self.act(inp.obs, z, noise=noise, rng=rng)

    def slot_sources(self) -> np.ndarray | None:
        """For each slot, the task whose transferred policy collects its episode (-1: the
        learned policy), or None when the algorithm never transfers (read by the fast path)."""
        return None

    def log_files(self) -> dict[str, list[str]]:
        """Extra CSV files of a run (name -> columns), written through the two hooks below."""
        return {}

    def episode_ended(
        self, task: int, slot: int, ret: float, next_task: int, step: int, learning: bool
    ) -> dict[str, list[list]]:
        """An episode of ``task`` in ``slot`` ended with return ``ret`` (the slot goes on with
        ``next_task``): rows for the extra log files."""
        return {}

    def evaluation_report(self, step: int) -> tuple[dict[str, list[list]], dict[str, float], str]:
        """At an evaluation: rows for the extra log files, TensorBoard scalars, and a suffix for
        the evaluation's progress line."""
        return {}, {}, ""

    def collection_state(self) -> dict | None:
        """Plain data (no tensors) of the collection-time state, for checkpoints."""
        return None

    def load_collection_state(self, state: dict | None) -> None:
        """Restore :meth:`collection_state`."""
