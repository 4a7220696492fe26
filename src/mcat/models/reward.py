"""Reward model R(s, a) of one task, fitted on its transitions: the state translator (Sec. 6)
matches the reward of equivalent state-action pairs through it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mcat.models.nets import mlp


class RewardModel(nn.Module):
    """An MLP on standardised (s, a) that predicts the standardised reward; ``fit_normalizers``
    fixes the standardisation from the dataset."""

    in_mean: torch.Tensor
    in_std: torch.Tensor
    r_mean: torch.Tensor
    r_std: torch.Tensor

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hidden, 1)
        self.register_buffer("in_mean", torch.zeros(obs_dim + act_dim))
        self.register_buffer("in_std", torch.ones(obs_dim + act_dim))
        self.register_buffer("r_mean", torch.zeros(()))
        self.register_buffer("r_std", torch.ones(()))

    def fit_normalizers(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor) -> None:
        x = torch.cat([obs, act], -1)
        self.in_mean.copy_(x.mean(0))
        self.in_std.copy_(x.std(0).clamp_min(1e-6))
        self.r_mean.copy_(rew.mean())
        self.r_std.copy_(rew.std().clamp_min(1e-6))

    def standardized(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The predicted reward in standardised units."""
        x = (torch.cat([obs, act], -1) - self.in_mean) / self.in_std
        return self.net(x).squeeze(-1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.r_mean + self.r_std * self.standardized(obs, act)


def fit_reward_model(
    obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, steps: int, batch: int, seed: int
) -> RewardModel:
    """R trained by squared error (standardised units) on fixed transitions."""
    torch.manual_seed(seed)
    model = RewardModel(obs.shape[1], act.shape[1])
    model.fit_normalizers(obs, act, rew)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    target = (rew - model.r_mean) / model.r_std
    for _ in range(steps):
        idx = torch.randint(0, len(obs), (batch,), generator=gen)
        loss = ((model.standardized(obs[idx], act[idx]) - target[idx]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model
