"""Forward model F (paper Sec. 3.2, Eq. 1): a Gaussian over the next-state difference s'-s given
(s, a, z).

Choices from the authors' code (method.md), after PETS (Chua et al. 2018): an MLP of 4 hidden
layers of 200 with swish (SiLU), separate mean and log-variance heads, the log-variance
soft-clamped to [-10, 0.5], inputs and targets normalised by running statistics, and a small L2
weight decay that grows with depth (see :data:`LAYER_WEIGHT_DECAY`).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from mcat.models.nets import RunningNorm

# L2 weight decay per layer (input ... output), as in PETS / CaDM.
LAYER_WEIGHT_DECAY = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)


class ForwardModel(nn.Module):
    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        z_dim: int,
        hidden: int = 200,
        layers: int = 4,
        min_logvar: float = -10.0,
        max_logvar: float = 0.5,
    ):
        super().__init__()
        self.obs_dim = obs_dim
        self.in_norm = RunningNorm(obs_dim + act_dim)
        self.target_norm = RunningNorm(obs_dim)
        dims = [obs_dim + act_dim + z_dim] + [hidden] * layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.mean_head = nn.Linear(hidden, obs_dim)
        self.logvar_head = nn.Linear(hidden, obs_dim)
        self.min_logvar, self.max_logvar = min_logvar, max_logvar

    def param_groups(self, weight_decay_scale: float = 1.0) -> list[dict]:
        """Optimiser parameter groups with the per-layer L2 weight decay."""
        layers = [*self.hidden, None]
        decays = list(LAYER_WEIGHT_DECAY) + [LAYER_WEIGHT_DECAY[-1]] * max(
            0, len(layers) - len(LAYER_WEIGHT_DECAY)
        )
        groups = [
            {"params": list(layer.parameters()), "weight_decay": d * weight_decay_scale}
            for layer, d in zip(self.hidden, decays[: len(self.hidden)], strict=True)
        ]
        heads = list(self.mean_head.parameters()) + list(self.logvar_head.parameters())
        groups.append(
            {"params": heads, "weight_decay": decays[len(self.hidden)] * weight_decay_scale}
        )
        return groups

    def update_normalizers(
        self, obs: torch.Tensor, act: torch.Tensor, delta: torch.Tensor, mask: torch.Tensor
    ) -> None:
        self.in_norm.update(torch.cat([obs, act], -1), mask)
        self.target_norm.update(delta, mask)

    def forward(
        self, obs: torch.Tensor, act: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the *normalised* state difference."""
        h = torch.cat([self.in_norm(torch.cat([obs, act], -1)), z], -1)
        for layer in self.hidden:
            h = F.silu(layer(h))
        mean = self.mean_head(h)
        logvar = self.logvar_head(h)
        # soft clamp into [min_logvar, max_logvar], smooth so gradients never vanish abruptly
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def nll(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        z: torch.Tensor,
        delta: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Gaussian negative log-likelihood of ``delta`` (up to a constant), averaged over state
        dimensions and over the entries where ``mask`` is 1."""
        mean, logvar = self(obs, act, z)
        target = self.target_norm(delta)
        per_step = 0.5 * (((target - mean) ** 2) * torch.exp(-logvar) + logvar).mean(-1)
        if mask is None:
            return per_step.mean()
        return (per_step * mask).sum() / mask.sum().clamp_min(1.0)

    def mean_distance(
        self, obs: torch.Tensor, act: torch.Tensor, z: torch.Tensor, delta: torch.Tensor
    ) -> torch.Tensor:
        """L1 distance between the predicted mean and the normalised ``delta`` (the deterministic
        stand-in for the NLL used in the authors' Table-1 code), per sample."""
        mean, _ = self(obs, act, z)
        return (mean - self.target_norm(delta)).abs().mean(-1)

    @torch.no_grad()
    def predict(
        self, obs: torch.Tensor, act: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted next state mean and standard deviation, in the original units."""
        mean, logvar = self(obs, act, z)
        scale = self.target_norm.std * self.target_norm.varies
        delta = self.target_norm.denormalize(mean)
        return obs + delta, torch.exp(0.5 * logvar) * scale
