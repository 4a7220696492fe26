"""Joint training of the state translator G and the action translator H between tasks with
different state and action spaces (paper Sec. 6 (2)).

What the paper says (Sec. 6; its appendix E is not public): on two general MDPs, equivalent
state-action pairs "achieve the same reward and transit to equivalent next states"; a state
translator is learned jointly with the action translator; compared with Zhang et al. (2020c), who
learn both, the action translator's objective is simpler. What we implement from it, on source
transitions (s, a, r, s') and target states t (the two datasets are unpaired):

- **transit to equivalent next states** (Eq. 3 with the states mapped): with the target's frozen
  forward model F_t, -log F_t(G(s') - G(s) | G(s), H(G(s), a));
- **achieve the same reward**: with the target's frozen reward model R_t, the squared error
  between R_t(G(s), H(G(s), a)) and r (standardised units);
- **G is a correspondence, not a collapse**: G_inv(G(s)) = s and G(G_inv(t)) = t (squared error,
  standardised units), and G(s) is distributed like the target's states (maximum mean
  discrepancy with Gaussian kernels, standardised units). These two terms are our choice for
  what the appendix leaves open: Zhang et al. use cycle and adversarial terms for the same
  purpose; a kernel two-sample distance needs no discriminator.
- **H stays among the target's actions** (optional, off by default): the same discrepancy between
  H's actions and the target data's actions (in units of the action bound). F_t and R_t know
  only those actions; without the term H can settle where F_t extrapolates in its favour (seen on
  Meta-World reach, results/reward_goals/README.md: H collapsed to one corner action).

The source policy then acts on the target through both: a_t = H(t, pi_src(G_inv(t))).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from mcat.models import ForwardModel
from mcat.models.reward import RewardModel
from mcat.models.state_translator import StateTranslator
from mcat.models.translator import ActionTranslator


@dataclass
class JointTranslatorConfig:
    """Loss weights of the joint G and H training (our choices, see the module docstring)."""

    reward_weight: float = 1.0
    """Weight of the reward-matching term."""
    cycle_weight: float = 1.0
    """Weight of the two cycle terms G_inv(G(s)) = s and G(G_inv(t)) = t."""
    distribution_weight: float = 1.0
    """Weight of the maximum mean discrepancy between G(s) and the target's states."""
    bandwidths: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    """Gaussian kernel widths of the discrepancy, in standardised units."""
    action_distribution_weight: float = 0.0
    """Weight of the maximum mean discrepancy between H's actions and the target data's actions
    (both divided by the action bound); 0 leaves it out (the paper says nothing of one)."""
    residual: bool = False
    """G as the identity plus a learned change (tasks of one state space only; see
    :class:`mcat.models.state_translator.StateTranslator`)."""


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...]) -> torch.Tensor:
    """Squared maximum mean discrepancy between the samples ``x`` and ``y`` (biased estimate)
    with a sum of Gaussian kernels."""
    xy = torch.cat([x, y])
    sq = torch.cdist(xy, xy).pow(2)
    k = torch.stack([torch.exp(-sq / (2 * b * b)) for b in bandwidths]).sum(0)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def joint_translator_loss(
    G: StateTranslator,
    H: ActionTranslator,
    forward_model: ForwardModel,
    reward_model: RewardModel,
    obs: torch.Tensor,
    act: torch.Tensor,
    rew: torch.Tensor,
    next_obs: torch.Tensor,
    tgt_obs: torch.Tensor,
    cfg: JointTranslatorConfig,
    tgt_act: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss on a batch of source transitions and a batch of target states (F and R must be
    frozen by the caller: gradients flow through them, not into them)."""
    t, t_next = G(obs), G(next_obs)
    b = H(t, act)
    empty = t.new_zeros(len(t), 0)
    dynamics = forward_model.nll(t, b, empty, t_next - t)
    reward = (reward_model.standardized(t, b) - reward_model.standardize_reward(rew)).pow(2).mean()
    std_src, std_tgt = G.src_norm, G.tgt_norm  # both in standardised units
    cycle = (std_src(G.inverse(t)) - std_src(obs)).pow(2).mean() + (
        std_tgt(G(G.inverse(tgt_obs))) - std_tgt(tgt_obs)
    ).pow(2).mean()
    distribution = mmd(std_tgt(t), std_tgt(tgt_obs), cfg.bandwidths)
    loss = (
        dynamics
        + cfg.reward_weight * reward
        + cfg.cycle_weight * cycle
        + cfg.distribution_weight * distribution
    )
    metrics = {
        "dynamics": float(dynamics.detach()),
        "reward": float(reward.detach()),
        "cycle": float(cycle.detach()),
        "distribution": float(distribution.detach()),
    }
    if cfg.action_distribution_weight > 0:
        if tgt_act is None:
            raise ValueError("action_distribution_weight > 0 needs the target's actions")
        bound = H.max_action
        actions = mmd(b / bound, tgt_act / bound, cfg.bandwidths)
        loss = loss + cfg.action_distribution_weight * actions
        metrics["action_distribution"] = float(actions.detach())
    return loss, metrics


def train_joint_translators(
    source: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    target_states: torch.Tensor,
    forward_model: ForwardModel,
    reward_model: RewardModel,
    act_dim_target: int,
    steps: int,
    batch: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    cfg: JointTranslatorConfig | None = None,
    every: int = 0,
    max_action: float = 1.0,
    report: Callable[[int, StateTranslator, ActionTranslator, dict[str, float]], None]
    | None = None,
    resume: Callable[[dict[str, Any]], int] | None = None,
    target_actions: torch.Tensor | None = None,
) -> tuple[StateTranslator, ActionTranslator]:
    """G and the pair-only H trained together for ``steps`` Adam steps on batches of the source
    transitions ``source`` = (obs, act, rew, next_obs) and of the target's states, with the
    target's F and R frozen here; H's actions lie within +-``max_action``.
    ``report(step, G, H, metrics)`` is called every ``every`` steps; ``resume(objects)``, given
    the loop's stateful objects by name, may load saved states and returns the steps done.
    ``target_actions`` (the actions of the transitions whose states are ``target_states``) are
    needed when ``cfg.action_distribution_weight`` > 0."""
    cfg = cfg or JointTranslatorConfig()
    obs, act, rew, next_obs = source
    forward_model.requires_grad_(False)
    reward_model.requires_grad_(False)
    torch.manual_seed(seed)
    G = StateTranslator(obs.shape[1], target_states.shape[1], residual=cfg.residual)
    G.fit_normalizers(obs, target_states)
    H = ActionTranslator(
        target_states.shape[1],
        act.shape[1],
        conditioned=False,
        out_dim=act_dim_target,
        max_action=max_action,
    )
    opt = torch.optim.Adam([*G.parameters(), *H.parameters()], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    start = resume({"G": G, "H": H, "opt": opt, "gen": gen}) if resume else 0
    for step in range(start + 1, steps + 1):
        i = torch.randint(0, len(obs), (batch,), generator=gen)
        j = torch.randint(0, len(target_states), (batch,), generator=gen)
        loss, metrics = joint_translator_loss(
            G,
            H,
            forward_model,
            reward_model,
            obs[i],
            act[i],
            rew[i],
            next_obs[i],
            target_states[j],
            cfg,
            None if target_actions is None else target_actions[j],
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if report is not None and every and step % every == 0:
            report(step, G, H, metrics)
    return G, H
