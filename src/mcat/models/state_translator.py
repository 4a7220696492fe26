"""State translator for tasks with different state spaces (paper Sec. 6 (2)): G maps a source
state to the equivalent target state, and G_inv maps back.

The paper learns "a state translator jointly with our action translator"; its architecture is in
the unpublished appendix E. Ours: two MLPs (256-256, ReLU) working in standardised units, each
space standardised by the mean and deviation of its own dataset (``fit_normalizers``, once), so
that a body's large velocities do not dominate its small angles.

Between two tasks of one state space (``residual=True``, our option for Sec. 6 (1)) each MLP
gives a change to the state instead, in units of the other side's deviation, with its output
layer starting at zero: G starts as the identity, which is right for every part of the state
the tasks share.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mcat.models.nets import RunningNorm, mlp


class StateTranslator(nn.Module):
    def __init__(
        self,
        src_dim: int,
        tgt_dim: int,
        hidden: Sequence[int] = (256, 256),
        residual: bool = False,
    ):
        super().__init__()
        if residual and src_dim != tgt_dim:
            raise ValueError(f"a residual G needs one state size, got {src_dim} and {tgt_dim}")
        self.residual = residual
        self.src_norm, self.tgt_norm = RunningNorm(src_dim), RunningNorm(tgt_dim)
        self.to_target = mlp(src_dim, hidden, tgt_dim)
        self.to_source = mlp(tgt_dim, hidden, src_dim)
        if residual:
            for net in (self.to_target, self.to_source):
                last = net[-1]
                assert isinstance(last, nn.Linear)
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)

    def fit_normalizers(self, src_states: torch.Tensor, tgt_states: torch.Tensor) -> None:
        """The two spaces' statistics from the whole datasets (call once, before training)."""
        self.src_norm.update(src_states)
        self.tgt_norm.update(tgt_states)

    def forward(self, src_state: torch.Tensor) -> torch.Tensor:
        """G: the target state equivalent to ``src_state``."""
        out = self.to_target(self.src_norm(src_state))
        if self.residual:
            return src_state + out * self.tgt_norm.std * self.tgt_norm.varies
        return self.tgt_norm.denormalize(out)

    def inverse(self, tgt_state: torch.Tensor) -> torch.Tensor:
        """G_inv: the source state equivalent to ``tgt_state`` (what the source policy is shown
        on the target)."""
        out = self.to_source(self.tgt_norm(tgt_state))
        if self.residual:
            return tgt_state + out * self.src_norm.std * self.src_norm.varies
        return self.src_norm.denormalize(out)
