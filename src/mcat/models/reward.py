"""Reward model R(s, a) of one task, fitted on its transitions: the state translator (Sec. 6)
matches the reward of equivalent state-action pairs through it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mcat.models.nets import RunningNorm, mlp


class RewardModel(nn.Module):
    """An MLP on standardised (s, a) that predicts the standardised reward; ``fit_normalizers``
    fixes the standardisation from the dataset (call once)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hidden, 1)
        self.in_norm, self.reward_norm = RunningNorm(obs_dim + act_dim), RunningNorm(1)

    def fit_normalizers(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor) -> None:
        self.in_norm.update(torch.cat([obs, act], -1))
        self.reward_norm.update(rew[:, None])

    def standardize_reward(self, rew: torch.Tensor) -> torch.Tensor:
        return self.reward_norm(rew[:, None]).squeeze(-1)

    def standardized(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The predicted reward in standardised units."""
        return self.net(self.in_norm(torch.cat([obs, act], -1))).squeeze(-1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.reward_norm.denormalize(self.standardized(obs, act)[:, None]).squeeze(-1)


def fit_reward_model(
    obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, steps: int, batch: int, seed: int
) -> RewardModel:
    """R trained by squared error (standardised units) on fixed transitions."""
    torch.manual_seed(seed)
    model = RewardModel(obs.shape[1], act.shape[1])
    model.fit_normalizers(obs, act, rew)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    target = model.standardize_reward(rew)
    for _ in range(steps):
        idx = torch.randint(0, len(obs), (batch,), generator=gen)
        loss = ((model.standardized(obs[idx], act[idx]) - target[idx]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model
