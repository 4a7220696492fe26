"""TD3 (Fujimoto, van Hoof, Meger 2018) for a context-conditioned actor and twin critics.

All tasks are updated by one gradient step on one batch: the task-major batch is flattened, and
the contexts z (computed by the frozen encoder) condition the actor and critics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mcat.models import Actor, TwinCritic


@torch.no_grad()
def td3_target(
    critic_target: TwinCritic,
    actor_target: Actor,
    next_obs: torch.Tensor,
    next_z: torch.Tensor,
    rew: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    policy_noise: float,
    noise_clip: float,
    max_action: float,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """y = r + gamma (1 - done) min_k Q'_k(s', clip(pi'(s') + clip(eps, -c, c), -max, max)),
    eps ~ N(0, policy_noise^2) unless ``noise`` is given."""
    action = actor_target(next_obs, next_z)
    if noise is None:
        noise = torch.randn_like(action) * policy_noise
    action = (action + noise.clamp(-noise_clip, noise_clip)).clamp(-max_action, max_action)
    q1, q2 = critic_target(next_obs, action, next_z)
    return rew + gamma * (1.0 - done) * torch.min(q1, q2)


def critic_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Both critics' squared TD errors; ``q1``, ``q2`` = Q_k(s, a) (kept by the caller for
    extra terms on the same forward pass)."""
    return F.mse_loss(q1, target) + F.mse_loss(q2, target)


def actor_loss(critic: TwinCritic, obs, pi: torch.Tensor, z) -> torch.Tensor:
    """-Q_1(s, pi(s)), with ``pi`` = pi(s) computed by the caller."""
    return -critic.q1_only(obs, pi, z).mean()


@torch.no_grad()
def soft_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """target <- tau * source + (1 - tau) * target, in one fused call per parameter list."""
    t: list[torch.Tensor] = list(target.parameters())
    s: list[torch.Tensor] = list(source.parameters())
    torch._foreach_lerp_(t, s, tau)
