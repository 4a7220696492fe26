"""State translator for tasks with different state spaces (paper Sec. 6 (2)): G maps a source
state to the equivalent target state, and G_inv maps back.

The paper learns "a state translator jointly with our action translator"; its architecture is in
the unpublished appendix E. Ours: two MLPs (256-256, ReLU) working in standardised units, each
space standardised by the mean and deviation of its own dataset (fixed by ``fit_normalizers``), so
that a body's large velocities do not dominate its small angles.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mcat.models.nets import mlp


class _Standardizer(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: torch.Tensor) -> None:
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))


class StateTranslator(nn.Module):
    def __init__(self, src_dim: int, tgt_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.src_norm, self.tgt_norm = _Standardizer(src_dim), _Standardizer(tgt_dim)
        self.to_target = mlp(src_dim, hidden, tgt_dim)
        self.to_source = mlp(tgt_dim, hidden, src_dim)

    def fit_normalizers(self, src_states: torch.Tensor, tgt_states: torch.Tensor) -> None:
        self.src_norm.fit(src_states)
        self.tgt_norm.fit(tgt_states)

    def forward(self, src_state: torch.Tensor) -> torch.Tensor:
        """G: the target state equivalent to ``src_state``."""
        n_src, n_tgt = self.src_norm, self.tgt_norm
        return n_tgt.mean + n_tgt.std * self.to_target((src_state - n_src.mean) / n_src.std)

    def inverse(self, tgt_state: torch.Tensor) -> torch.Tensor:
        """G_inv: the source state equivalent to ``tgt_state`` (what the source policy is shown
        on the target)."""
        n_src, n_tgt = self.src_norm, self.tgt_norm
        return n_src.mean + n_src.std * self.to_source((tgt_state - n_tgt.mean) / n_tgt.std)
