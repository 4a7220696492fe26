"""Networks with one member per task, evaluated for all tasks in one batched matrix product
(``torch.baddbmm``) instead of a Python loop over per-task networks: Distral's task policies and
critics."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """``members`` independent linear layers; input [members, N, in] -> [members, N, out]. Each
    member is initialised as ``nn.Linear`` is (weights and biases uniform in +-1/sqrt(in))."""

    def __init__(self, members: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMlp(nn.Module):
    """An MLP per member (ReLU between layers, linear output) on [members, N, in]."""

    def __init__(self, members: int, in_dim: int, hidden: Sequence[int], out_dim: int):
        super().__init__()
        widths = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [EnsembleLinear(members, a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])
        self.members = members

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat(inputs, -1))
