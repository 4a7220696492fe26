"""Policy objects. A policy offers ``context(delta, act, mask) -> z`` (from the current
episode's last K steps) and ``act(obs, z, noise=0, rng=None) -> actions`` for a batch of
environments; `CTD3Agent` is one, and anything with these two methods can be evaluated
(`mcat.collect.evaluate`) or used to collect data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from mcat.models import Actor
from mcat.models.state_translator import StateTranslator


class Translator(Protocol):
    """What :class:`TransferredPolicy` needs of H: ``H(s, a_src, z_src, z_tgt) -> a_tgt`` with
    actions within +-``max_action`` (an :class:`~mcat.models.translator.ActionTranslator`, or
    :class:`SourceAction`)."""

    max_action: float

    def __call__(
        self, obs: torch.Tensor, act: torch.Tensor, z_src: torch.Tensor, z_tgt: torch.Tensor
    ) -> torch.Tensor: ...


class SourceAction:
    """The identity in place of H: the transferred policy is the source policy pi(s, z_src)."""

    def __init__(self, max_action: float = 1.0):
        self.max_action = max_action

    def __call__(
        self, obs: torch.Tensor, act: torch.Tensor, z_src: torch.Tensor, z_tgt: torch.Tensor
    ) -> torch.Tensor:
        return act


class TransferredPolicy:
    """The source task's policy carried to a target task by the action translator (paper Sec.
    3.3): pi_tgt(s) = H(s, pi(s, z_src), z_src, z_tgt), with fixed task features z_src, z_tgt
    (empty tensors for a context-free source policy and a pair-only H)."""

    def __init__(
        self, actor: Actor, translator: Translator, z_src: torch.Tensor, z_tgt: torch.Tensor
    ):
        self.actor, self.translator = actor, translator
        self.z_src, self.z_tgt = z_src.reshape(1, -1), z_tgt.reshape(1, -1)
        first = next(actor.parameters(), None)  # a scripted actor has none
        self.device = torch.device("cpu") if first is None else first.device

    def context(
        self, ctx_delta: np.ndarray, ctx_act: np.ndarray, ctx_mask: np.ndarray
    ) -> torch.Tensor:
        return torch.zeros(len(ctx_delta), 0, device=self.device)  # the task features are fixed

    def source_state(self, state: torch.Tensor) -> torch.Tensor:
        """What the source policy is shown: the state itself (tasks that share their states)."""
        return state

    @torch.no_grad()
    def act(
        self,
        obs: np.ndarray,
        z: torch.Tensor | None = None,
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        s = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        z_src, z_tgt = self.z_src.expand(len(s), -1), self.z_tgt.expand(len(s), -1)
        a_src = self.actor(self.source_state(s), z_src)
        action = self.translator(s, a_src, z_src, z_tgt).cpu().numpy()
        return add_exploration_noise(action, noise, self.translator.max_action, rng)


class CrossBodyPolicy(TransferredPolicy):
    """A source body's policy on a target body with other state and action spaces (paper Sec. 6
    (2)): pi_tgt(t) = H(t, pi(G_inv(t))), with the state translator G of
    :mod:`mcat.learners.state_translator` and its pair-only H (a context-free source policy)."""

    def __init__(self, actor: Actor, state_translator: StateTranslator, translator: Translator):
        super().__init__(actor, translator, torch.zeros(0), torch.zeros(0))
        self.G = state_translator

    def source_state(self, state: torch.Tensor) -> torch.Tensor:
        return self.G.inverse(state)


@dataclass
class ScriptedConfig:
    history: int = 1
    """Context window the collector keeps (a scripted policy reads none)."""


class ScriptedPolicy:
    """A hand-designed policy (Meta-World's, ``policy(obs) -> action`` for one observation) in
    the shape of the learned ones: ``context``/``act`` to evaluate it or collect data with it,
    and ``actor`` (states in, actions out, torch) for :class:`TransferredPolicy`."""

    def __init__(self, policy: Callable[[np.ndarray], np.ndarray], max_action: float = 1.0):
        self.policy, self.max_action = policy, max_action
        self.cfg = ScriptedConfig()
        self.actor = _ScriptedActor(self)

    def context(
        self, ctx_delta: np.ndarray, ctx_act: np.ndarray, ctx_mask: np.ndarray
    ) -> torch.Tensor:
        return torch.zeros(len(ctx_delta), 0)

    def act(
        self,
        obs: np.ndarray,
        z: torch.Tensor | None = None,
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        # one call per row: the scripted policies take one observation (not a hot loop: data
        # collection and evaluation of a fixed policy)
        bound = self.max_action
        action = np.stack([np.clip(self.policy(o), -bound, bound) for o in obs])
        return add_exploration_noise(action.astype(np.float32), noise, bound, rng)


class _ScriptedActor(nn.Module):
    def __init__(self, policy: ScriptedPolicy):
        super().__init__()
        self.scripted = [policy]  # a list: not a submodule

    def forward(self, obs: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return torch.as_tensor(self.scripted[0].act(obs.cpu().numpy()), device=obs.device)


def add_exploration_noise(
    action: np.ndarray, noise: float, bound: float, rng: np.random.Generator | None
) -> np.ndarray:
    """``action`` plus Gaussian noise of std ``noise * bound``, clipped to [-bound, bound]: the
    exploration of every deterministic policy here (``action`` unchanged when ``noise`` is 0)."""
    if noise <= 0:
        return action
    if rng is None:
        raise ValueError("exploration noise (noise > 0) needs rng, a numpy Generator")
    return np.clip(action + exploration_noise(action.shape, noise, bound, rng), -bound, bound)


def exploration_noise(
    shape: tuple[int, ...], noise: float, bound: float, rng: np.random.Generator
) -> np.ndarray:
    """One draw of :func:`add_exploration_noise`'s Gaussian noise (std ``noise * bound``), for
    callers that add and clip it themselves (the fast path: every seed's at once)."""
    return rng.normal(0.0, noise * bound, size=shape)
