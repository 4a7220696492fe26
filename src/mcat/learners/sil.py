"""Self-imitation learning (SIL, Oh et al. 2018) for a deterministic actor-critic, as MCAT uses it
(paper Sec. 5.2: "to fully exploit the good data collected from our transferred policy").

Oh et al. give SIL for stochastic policies: a value loss 1/2 ((R - V(s))_+)^2 and a policy loss
-log pi(a|s) (R - V(s))_+, active only where the Monte-Carlo return R of a stored transition
beats the current estimate. For TD3's deterministic actor and twin critics we use (our
adaptation, the paper's appendix with the authors' form is not public):

- critic: 1/2 ((R - Q_k(s, a))_+)^2 for each of the two critics, which only ever pushes Q up
  towards returns that were actually achieved;
- actor: ||pi(s) - a||^2 on the transitions where R > min_k Q_k(s, a) (the action did better
  than the critic thinks). ``weighting="mask"`` (default) counts each such transition once;
  ``"advantage"`` weights it by (R - min Q)_+ as Oh et al. weight the log-likelihood, which puts
  the loss in return units (hundreds on MuJoCo) and needs a much smaller weight.

Transitions whose episode has not ended (no return yet, ``valid`` = 0) never contribute.

Both losses take the network outputs TD3 computes anyway on the same batch (Q_k(s, a) in the
critic step, pi(s) in the actor step), so SIL adds no forward or backward pass of its own. The
actor term judges "did better" with the critic's values from the critic step of the same
iteration (before that step's update).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mcat.validation import check_number

SIL_FIELDS = ("mc_return", "mc_valid")  # the replay fields the terms read


def sil_critic_loss(q1: torch.Tensor, q2: torch.Tensor, mc_return, valid) -> torch.Tensor:
    """Mean over the batch of sum_k 1/2 ((R - Q_k(s, a))_+)^2, counting only ``valid`` rows;
    ``q1``, ``q2``: the twin critics' values of the stored (s, a), with their graph."""
    gap = lambda q: (mc_return - q).clamp_min(0.0)  # noqa: E731
    per_row = 0.5 * (gap(q1) ** 2 + gap(q2) ** 2) * valid
    return per_row.sum() / valid.sum().clamp_min(1.0)


def sil_actor_loss(
    pi: torch.Tensor, act, q_min, mc_return, valid, weighting: str = "mask"
) -> torch.Tensor:
    """Imitation of the stored action ``act`` by ``pi`` = pi(s) (with its graph) where the return
    beat ``q_min`` = min_k Q_k(s, a) (no gradient), as a mean over the valid rows."""
    with torch.no_grad():
        advantage = (mc_return - q_min).clamp_min(0.0) * valid
        weight = advantage if weighting == "advantage" else (advantage > 0).float()
    per_row = ((pi - act) ** 2).sum(-1) * weight
    return per_row.sum() / valid.sum().clamp_min(1.0)


@dataclass
class SILParams:
    """Self-imitation for the baselines (``--sil``, as the paper's appendix D.4 adds it to them):
    the same two terms as MCAT's, with the ``"mask"`` weighting. For a stochastic policy the
    imitated action is its mean action (the one it is evaluated with)."""

    sil: bool = False
    """Add the self-imitation terms to the critic and policy losses (``--sil``)."""
    sil_critic_weight: float = 1.0
    """Weight of the SIL critic term."""
    sil_actor_weight: float = 1.0
    """Weight of the SIL policy term."""

    def validate_sil(self) -> None:
        for name in ("sil_critic_weight", "sil_actor_weight"):
            check_number(f"agent.{name}", getattr(self, name), 0.0)

    def sil_critic_term(self, q1, q2, mc_return, valid) -> torch.Tensor | None:
        """The weighted critic term, or None when SIL is off."""
        if not self.sil or not self.sil_critic_weight:
            return None
        return self.sil_critic_weight * sil_critic_loss(q1, q2, mc_return, valid)

    def sil_actor_term(self, pi, act, q_min, mc_return, valid) -> torch.Tensor | None:
        """The weighted policy term, or None when SIL is off."""
        if not self.sil or not self.sil_actor_weight:
            return None
        return self.sil_actor_weight * sil_actor_loss(pi, act, q_min, mc_return, valid)
