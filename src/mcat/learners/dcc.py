"""Baseline translator of Zhang et al. 2020c ("Learning Cross-Domain Correspondence for Control
with Dynamics Cycle-Consistency", ICLR 2021), the comparison row of the paper's Table 1.

Between two tasks of one family (:class:`DCCTranslator`) the state space is shared, so the state
mappings of Zhang et al. are the identity and only the action mappings are learned: H (source ->
target, the translator that is evaluated) and its inverse P (target -> source). Between bodies
with other state and action spaces (:class:`CrossBodyDCC`, paper Sec. 6 (2)) the state maps are
learned too. Three losses, as in their paper:

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
from typing import Any

import torch
from torch import nn

from mcat.models import ForwardModel
from mcat.models.nets import mlp
from mcat.models.state_translator import StateTranslator
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

    def stateful(self) -> dict[str, Any]:
        """The maps, discriminators and optimisers by name (what a resumable loop saves)."""
        return {k: v for k, v in vars(self).items() if hasattr(v, "load_state_dict")}

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

    def discriminator_pairs(self, parts: dict[str, torch.Tensor], src, tgt) -> tuple:
        """(real target, translated to target, real source, translated to source) (s, a) pairs,
        as each discriminator sees them."""
        (s_x, a_x, _), (s_y, a_y, _) = src, tgt
        return (s_y, a_y), (s_x, parts["a_xy"]), (s_x, a_x), (s_y, parts["a_yx"])

    def discriminator_loss(self, parts: dict[str, torch.Tensor], src, tgt) -> torch.Tensor:
        """Least squares: real pairs of each domain -> 1, translated pairs -> 0."""
        real_t, fake_t, real_s, fake_s = self.discriminator_pairs(parts, src, tgt)
        return (
            ((self.D_tgt(*real_t) - 1) ** 2).mean()
            + (self.D_tgt(*(x.detach() for x in fake_t)) ** 2).mean()
            + ((self.D_src(*real_s) - 1) ** 2).mean()
            + (self.D_src(*(x.detach() for x in fake_s)) ** 2).mean()
        )

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
        d_loss = self.discriminator_loss(parts, src, tgt)
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        terms = {k: parts[k] for k in ("dynamics", "cycle", "adversarial")} | {
            "discriminator": d_loss
        }
        return {k: v.item() for k, v in terms.items()}


class CrossBodyDCC(DCCTranslator):
    """Zhang et al. between bodies with other state and action spaces (their cross-morphology
    setting, the baseline of the paper's Sec. 6 (2)): the state maps G and G_inv (a
    :class:`~mcat.models.state_translator.StateTranslator`) are learned with the action maps H
    (target state, source action -> target action) and P (source state, target action -> source
    action), by the same three losses as :class:`DCCTranslator`, each now over states too:

    - dynamics cycle-consistency: |mean F_t(G(s), H(G(s), a)) - (G(s') - G(s))| (normalised);
    - domain cycle-consistency (L1, standardised states): G_inv(G(s)) = s, G(G_inv(t)) = t,
      P(s, H(G(s), a)) = a and H(t, P(G_inv(t), b)) = b;
    - adversarial: D_tgt tells real target pairs (t, b) from (G(s), H(G(s), a)), D_src real source
      pairs from (G_inv(t), P(G_inv(t), b)); both see standardised states.

    ``src`` and ``tgt`` batches are (obs, act, next_obs) of each body.
    """

    def __init__(  # not super().__init__(): other maps, discriminators and optimisers
        self,
        src_states: torch.Tensor,
        tgt_states: torch.Tensor,
        src_act_dim: int,
        tgt_act_dim: int,
        max_action: float,
        cfg: DCCConfig | None = None,
        lr: float = 3e-4,
    ):
        self.cfg = cfg or DCCConfig()
        src_dim, tgt_dim = src_states.shape[1], tgt_states.shape[1]
        self.G = StateTranslator(src_dim, tgt_dim)
        self.G.fit_normalizers(src_states, tgt_states)
        self.H = ActionTranslator(
            tgt_dim, src_act_dim, conditioned=False, max_action=max_action, out_dim=tgt_act_dim
        )
        self.P = ActionTranslator(
            src_dim, tgt_act_dim, conditioned=False, max_action=max_action, out_dim=src_act_dim
        )
        self.D_src = Discriminator(src_dim, src_act_dim, self.cfg.discriminator_hidden)
        self.D_tgt = Discriminator(tgt_dim, tgt_act_dim, self.cfg.discriminator_hidden)
        maps = [*self.G.parameters(), *self.H.parameters(), *self.P.parameters()]
        self.opt = torch.optim.Adam(maps, lr=lr)
        self.d_opt = torch.optim.Adam(
            [*self.D_src.parameters(), *self.D_tgt.parameters()], lr=self.cfg.discriminator_lr
        )

    def losses(
        self, F: ForwardModel, src: tuple[torch.Tensor, ...], tgt: tuple[torch.Tensor, ...]
    ) -> dict[str, torch.Tensor]:
        (s, a, s_next), (t, b, _) = src, tgt
        G, n_src, n_tgt = self.G, self.G.src_norm, self.G.tgt_norm
        t_x = G(s)  # source states and actions carried to the target body
        b_x = self.H(t_x, a)
        s_y = G.inverse(t)  # target states and actions carried back to the source body
        a_y = self.P(s_y, b)
        empty = s.new_zeros(len(s), 0)
        cycle = (
            (n_src(G.inverse(t_x)) - n_src(s)).abs().mean()
            + (n_tgt(G(s_y)) - n_tgt(t)).abs().mean()
            + (self.P(s, b_x) - a).abs().mean()
            + (self.H(t, a_y) - b).abs().mean()
        )
        return {
            "t_x": t_x,
            "b_x": b_x,
            "s_y": s_y,
            "a_y": a_y,
            "dynamics": F.mean_distance(t_x, b_x, empty, G(s_next) - t_x).mean(),
            "cycle": cycle,
            "adversarial": ((self.D_tgt(n_tgt(t_x), b_x) - 1) ** 2).mean()
            + ((self.D_src(n_src(s_y), a_y) - 1) ** 2).mean(),
        }

    def discriminator_pairs(self, parts: dict[str, torch.Tensor], src, tgt) -> tuple:
        (s, a, _), (t, b, _) = src, tgt
        n_src, n_tgt = self.G.src_norm, self.G.tgt_norm
        return (
            (n_tgt(t), b),
            (n_tgt(parts["t_x"]), parts["b_x"]),
            (n_src(s), a),
            (n_src(parts["s_y"]), parts["a_y"]),
        )
