"""Soft actor-critic networks (Haarnoja et al. 2018, the first version with a state-value net, as
PEARL uses it): a tanh-squashed Gaussian policy and fully connected Q and V nets, with the
initialisation of rlkit, the code base of PEARL's authors (katerakelly/oyster,
rlkit/torch/networks.py): hidden weights uniform in +-1/sqrt(fan_in), hidden biases 0.1, the
last layer uniform in +-3e-3."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mcat.models.nets import mlp

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # rlkit/torch/sac/policies.py
TANH_EPS = 1e-6  # rlkit's TanhNormal: log(1 - tanh(u)^2 + eps)


def rlkit_init(net: nn.Sequential, init_w: float = 3e-3, bias: float = 0.1) -> nn.Sequential:
    linears = [m for m in net if isinstance(m, nn.Linear)]
    for layer in linears[:-1]:
        bound = 1.0 / math.sqrt(layer.in_features)
        nn.init.uniform_(layer.weight, -bound, bound)
        nn.init.constant_(layer.bias, bias)
    nn.init.uniform_(linears[-1].weight, -init_w, init_w)
    nn.init.uniform_(linears[-1].bias, -init_w, init_w)
    return net


class FlatMlp(nn.Module):
    """An MLP on the concatenation of its inputs, with one output (Q(s, a, z) or V(s, z))."""

    def __init__(self, in_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.net = rlkit_init(mlp(in_dim, hidden, 1))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat(inputs, -1)).squeeze(-1)


class TanhGaussianPolicy(nn.Module):
    """pi(a | s, z): a = max_action * tanh(u), u ~ N(mean(s, z), std(s, z)), log std clamped to
    [-20, 2]."""

    def __init__(self, in_dim: int, act_dim: int, hidden: Sequence[int], max_action: float = 1.0):
        super().__init__()
        trunk = rlkit_init(mlp(in_dim, hidden, 2 * act_dim))
        self.trunk = trunk
        self.act_dim, self.max_action = act_dim, max_action

    def forward(
        self, obs: torch.Tensor, z: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, mean, log std, log pi(action)). With ``noise`` (standard normal, the shape of
        the action) the action is reparameterised, else it is the deterministic tanh(mean)
        and log pi is not computed (zeros)."""
        out = self.trunk(torch.cat([obs, z], -1))
        mean, log_std = out[..., : self.act_dim], out[..., self.act_dim :]
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        if noise is None:
            return self.max_action * torch.tanh(mean), mean, log_std, torch.zeros_like(mean[..., 0])
        u = mean + log_std.exp() * noise
        a = torch.tanh(u)
        # log N(u; mean, std) - sum log(1 - tanh(u)^2 + eps)
        log_pi = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1) - torch.log(
            1 - a.pow(2) + TANH_EPS
        ).sum(-1)
        return self.max_action * a, mean, log_std, log_pi
