"""Context encoder C (paper Sec. 3.2): K past transitions of the current episode -> context z_t.

Following the authors' code (method.md), a transition is represented by its state difference
s_{t+1} - s_t and its action, each normalised by running statistics; steps before the episode
start are zero in the normalised space (masked).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mcat.models.nets import RunningNorm, mlp


class ContextEncoder(nn.Module):
    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        history: int = 10,
        z_dim: int = 10,
        hidden: Sequence[int] = (256, 128, 64),
    ):
        super().__init__()
        self.obs_dim, self.act_dim, self.history, self.z_dim = obs_dim, act_dim, history, z_dim
        self.delta_norm = RunningNorm(obs_dim)
        self.act_norm = RunningNorm(act_dim)
        self.net = mlp(history * (obs_dim + act_dim), hidden, z_dim)

    def update_normalizers(
        self, delta: torch.Tensor, act: torch.Tensor, mask: torch.Tensor
    ) -> None:
        self.delta_norm.update(delta, mask)
        self.act_norm.update(act, mask)

    def forward(self, delta: torch.Tensor, act: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """delta [..., K, obs], act [..., K, act], mask [..., K] -> z [..., z_dim]."""
        x = torch.cat([self.delta_norm(delta), self.act_norm(act)], dim=-1) * mask.unsqueeze(-1)
        return self.net(x.flatten(-2))
