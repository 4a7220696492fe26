"""Small building blocks shared by the networks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(
    in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    """Linear layers with ``activation`` between them and a linear output."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers += [nn.Linear(last, width), activation()]
        last = width
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


NORM_MIN_VAR = 1e-7  # RunningNorm drops features that vary less (cached models record it)


class RunningNorm(nn.Module):
    """Running mean and standard deviation of a feature vector (buffers, saved with the model).

    Updated from batches with the parallel-variance formula (Chan et al. 1979); entries where
    ``mask`` is 0 (padding) are left out. A feature whose variance is below ``min_var`` is
    dropped: normalised to 0 whatever its value (and denormalised to its mean). It never varied in
    the data the statistics came from (a Meta-World goal, a cube's orientation that only jitters
    by 1e-4), so a model fitted there learned nothing from it; scaled by its tiny deviation, other
    data that do vary in it (a source task's states fed to a target's forward model) would reach
    the model as numbers in the thousands. Features of the MuJoCo locomotion tasks vary far more
    (variance 1e-3 and up), so they are never dropped.
    """

    mean: torch.Tensor  # buffers, registered in __init__
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, dim: int, eps: float = 1e-8, min_var: float = NORM_MIN_VAR):
        super().__init__()
        self.eps, self.min_var = eps, min_var
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        x = x.reshape(-1, x.shape[-1])
        if mask is not None:
            x = x[mask.reshape(-1) > 0]
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        w = float(n / total)
        self.mean += delta * w
        self.var.copy_(self.var * (1 - w) + batch_var * w + delta.pow(2) * w * (1 - w))
        self.count.copy_(total)

    @property
    def varies(self) -> torch.Tensor:
        """1 for the features kept, 0 for those dropped (variance below ``min_var``)."""
        return (self.var >= self.min_var).to(self.var.dtype)

    @property
    def std(self) -> torch.Tensor:
        """The scale the kept features are divided by."""
        return torch.sqrt(self.var + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std * self.varies

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std * self.varies + self.mean
