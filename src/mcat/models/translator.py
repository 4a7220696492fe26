"""Action translator H (paper Sec. 3.3): maps a source task's action to the action with the same
effect on a target task.

Architecture from the authors' Table-1 code (method.md): each input (state, source action and,
for the context-conditioned H, the source and target task features) is embedded to 128 units with
ReLU; the embeddings are concatenated and go through 256-256 to a tanh output scaled to the
action bound. ``conditioned=False`` gives the pair-only H(s, a) for one fixed source and target.
``out_dim`` gives the target's action size where it differs from the source's (bodies with other
action spaces, paper Sec. 6; ``obs_dim`` is then the target's state size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mcat.models.nets import mlp


class ActionTranslator(nn.Module):
    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        z_dim: int = 0,
        conditioned: bool = True,
        embed: int = 128,
        hidden: Sequence[int] = (256, 256),
        max_action: float = 1.0,
        out_dim: int | None = None,
    ):
        super().__init__()
        self.conditioned = conditioned
        self.max_action = max_action
        self.embed_obs = nn.Sequential(nn.Linear(obs_dim, embed), nn.ReLU())
        self.embed_act = nn.Sequential(nn.Linear(act_dim, embed), nn.ReLU())
        parts = 2
        if conditioned:
            if z_dim < 1:
                raise ValueError("a conditioned translator needs z_dim >= 1")
            self.embed_src = nn.Sequential(nn.Linear(z_dim, embed), nn.ReLU())
            self.embed_tgt = nn.Sequential(nn.Linear(z_dim, embed), nn.ReLU())
            parts = 4
        self.head = mlp(parts * embed, hidden, act_dim if out_dim is None else out_dim)

    def forward(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        z_src: torch.Tensor | None = None,
        z_tgt: torch.Tensor | None = None,
    ) -> torch.Tensor:
        parts = [self.embed_obs(obs), self.embed_act(act)]
        if self.conditioned:
            parts += [self.embed_src(z_src), self.embed_tgt(z_tgt)]
        return self.max_action * torch.tanh(self.head(torch.cat(parts, -1)))
