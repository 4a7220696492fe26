"""Baseline translator of Zhang et al. 2020c ("Learning Cross-Domain Correspondence for Control
with Dynamics Cycle-Consistency", ICLR 2021), the comparison row of the paper's Table 1.

Our tasks share one state space, so the state mappings of Zhang et al. are the identity and only
the action mappings are learned: H (source -> target, the translator that is evaluated) and its
inverse P (target -> source). Three losses, as in their paper:

- **dynamics cycle-consistency**: the target's forward model F, fed the translated action, must
  reproduce the source's real next state: |mean F(s, H(s, a_src)) - (s'_src - s)| (normalised
  units; the same term as MCAT's deterministic objective);
- **domain cycle-consistency**: P(s, H(s, a_src)) = a_src on source data and H(s, P(s, a_tgt)) =
  a_tgt on target data (L1);
- **adversarial**: a discriminator per domain tells real (s, a) pairs of that domain's data from
  translated ones (least-squares GAN, Mao et al. 2017); H and P are trained to fool them.

Zhang et al. do not give loss weights for this setting; ours (``DCCConfig``) are documented
choices. F is frozen throughout, exactly as for MCAT's translator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mcat.models import ForwardModel
from mcat.models.nets import mlp
from mcat.models.translator import ActionTranslator


@dataclass
class DCCConfig:
    """Loss weights and discriminator settings of the Zhang et al. baseline (our choices)."""

    dynamics_weight: float = 1.0
    """Weight of the dynamics cycle-consistency term."""
    cycle_weight: float = 1.0
    """Weight of the domain cycle-consistency terms."""
    adversarial_weight: float = 0.1
    """Weight of the adversarial terms for H and P."""
    discriminator_lr: float = 3e-4
    """Adam learning rate of the two discriminators."""
    discriminator_hidden: tuple[int, ...] = (256, 256)
    """Hidden layers of each discriminator D(s, a)."""


class Discriminator(nn.Module):
    """D(s, a) -> a real-valued score (least-squares GAN: 1 for real pairs, 0 for translated)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hidden, 1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, act], -1)).squeeze(-1)


class DCCTranslator:
    """H, its inverse P, the two discriminators and their optimisers; ``step`` does one update of
    the discriminators and one of H and P on a source batch and a target batch."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        max_action: float,
        cfg: DCCConfig | None = None,
        lr: float = 3e-4,
    ):
        self.cfg = cfg or DCCConfig()
        self.H = ActionTranslator(obs_dim, act_dim, conditioned=False, max_action=max_action)
        self.P = ActionTranslator(obs_dim, act_dim, conditioned=False, max_action=max_action)
        self.D_src = Discriminator(obs_dim, act_dim, self.cfg.discriminator_hidden)
        self.D_tgt = Discriminator(obs_dim, act_dim, self.cfg.discriminator_hidden)
        self.opt = torch.optim.Adam([*self.H.parameters(), *self.P.parameters()], lr=lr)
        self.d_opt = torch.optim.Adam(
            [*self.D_src.parameters(), *self.D_tgt.parameters()], lr=self.cfg.discriminator_lr
        )

    def losses(
        self, F: ForwardModel, src: tuple[torch.Tensor, ...], tgt: tuple[torch.Tensor, ...]
    ) -> dict[str, torch.Tensor]:
        """The generator-side terms. ``src``/``tgt`` are (obs, act, delta) batches of each
        domain."""
        (s_x, a_x, d_x), (s_y, a_y, _) = src, tgt
        empty = s_x.new_zeros(len(s_x), 0)
        a_xy = self.H(s_x, a_x)  # source action carried to the target
        a_yx = self.P(s_y, a_y)  # target action carried back to the source
        return {
            "a_xy": a_xy,
            "a_yx": a_yx,
            "dynamics": F.mean_distance(s_x, a_xy, empty, d_x).mean(),
            "cycle": (self.P(s_x, a_xy) - a_x).abs().mean()
            + (self.H(s_y, a_yx) - a_y).abs().mean(),
            "adversarial": ((self.D_tgt(s_x, a_xy) - 1) ** 2).mean()
            + ((self.D_src(s_y, a_yx) - 1) ** 2).mean(),
        }

    def step(
        self, F: ForwardModel, src: tuple[torch.Tensor, ...], tgt: tuple[torch.Tensor, ...]
    ) -> dict[str, float]:
        cfg = self.cfg
        flags = [p.requires_grad for p in F.parameters()]
        F.requires_grad_(False)  # F is fixed: gradients flow through it to H, not into it
        parts = self.losses(F, src, tgt)
        loss = (
            cfg.dynamics_weight * parts["dynamics"]
            + cfg.cycle_weight * parts["cycle"]
            + cfg.adversarial_weight * parts["adversarial"]
        )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        for p, flag in zip(F.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        self.opt.step()
        # discriminators: real pairs of each domain -> 1, translated pairs -> 0
        (s_x, a_x, _), (s_y, a_y, _) = src, tgt
        d_loss = (
            ((self.D_tgt(s_y, a_y) - 1) ** 2).mean()
            + (self.D_tgt(s_x, parts["a_xy"].detach()) ** 2).mean()
            + ((self.D_src(s_x, a_x) - 1) ** 2).mean()
            + (self.D_src(s_y, parts["a_yx"].detach()) ** 2).mean()
        )
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        terms = {k: parts[k] for k in ("dynamics", "cycle", "adversarial")} | {
            "discriminator": d_loss
        }
        return {k: v.item() for k, v in terms.items()}
