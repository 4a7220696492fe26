"""Context-conditioned deterministic actor pi(s, z) and twin critics Q(s, a, z) (TD3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mcat.models.nets import mlp


class Actor(nn.Module):
    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        z_dim: int,
        hidden: Sequence[int] = (256, 256),
        max_action: float = 1.0,
    ):
        super().__init__()
        self.net = mlp(obs_dim + z_dim, hidden, act_dim)
        self.max_action = max_action

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.max_action * torch.tanh(self.net(torch.cat([obs, z], -1)))


class TwinCritic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, z_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim + z_dim, hidden, 1)
        self.q2 = mlp(obs_dim + act_dim + z_dim, hidden, 1)

    def forward(
        self, obs: torch.Tensor, act: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act, z], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def q1_only(self, obs: torch.Tensor, act: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.q1(torch.cat([obs, act, z], -1)).squeeze(-1)
