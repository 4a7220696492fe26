"""Losses and update step for the context encoder C and forward model F (paper Eq. 1 and 2).

The two are trained together by the forward-prediction NLL over M future steps with one context
per segment, plus the contrastive loss that pulls contexts of the same task together and pushes
those of different tasks beyond a margin. The RL losses never reach C (paper Sec. 3.4).
"""

from __future__ import annotations

import torch

from mcat.models import ContextEncoder, ForwardModel


def contrastive_loss(z: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Eq. 2 for contexts ``z`` of shape [tasks, n, dim] (row i of every task is a segment of
    that task): mean squared distance over same-task pairs plus, over different-task pairs, the
    mean of max(0, margin - distance)^2 (squared hinge, as in the authors' code)."""
    tasks, n, dim = z.shape
    flat = z.reshape(tasks * n, dim)
    sq = (flat.unsqueeze(0) - flat.unsqueeze(1)).pow(2).sum(-1)
    labels = torch.arange(tasks, device=z.device).repeat_interleave(n)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    off_diagonal = ~torch.eye(tasks * n, dtype=torch.bool, device=z.device)
    loss = sq[same & off_diagonal].mean() if n > 1 else z.new_zeros(())
    if tasks > 1:
        dist = torch.sqrt(sq[~same] + 1e-12)
        loss = loss + torch.relu(margin - dist).pow(2).mean()
    return loss


def dynamics_losses(
    encoder: ContextEncoder,
    forward_model: ForwardModel,
    batch: dict[str, torch.Tensor],
    contrastive_weight: float,
    contrastive_margin: float,
    contrastive_samples: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward NLL (Eq. 1) + weighted contrastive loss (Eq. 2) on a task-major batch with
    context windows ``ctx_*`` and future windows ``fut_*``."""
    z = encoder(batch["ctx_delta"], batch["ctx_act"], batch["ctx_mask"])  # [T, B, z]
    steps = batch["fut_obs"].shape[2]
    z_future = z.unsqueeze(2).expand(-1, -1, steps, -1)  # the same z for all M future steps
    nll = forward_model.nll(
        batch["fut_obs"], batch["fut_act"], z_future, batch["fut_delta"], batch["fut_mask"]
    )
    loss = nll
    metrics = {"model/forward_nll": float(nll.detach())}
    if contrastive_weight > 0:
        cont = contrastive_loss(z[:, :contrastive_samples], contrastive_margin)
        loss = loss + contrastive_weight * cont
        metrics["model/contrastive"] = float(cont.detach())
    return loss, metrics


def update_normalizers(
    encoder: ContextEncoder, forward_model: ForwardModel, batch: dict[str, torch.Tensor]
) -> None:
    encoder.update_normalizers(batch["ctx_delta"], batch["ctx_act"], batch["ctx_mask"])
    forward_model.update_normalizers(
        batch["fut_obs"], batch["fut_act"], batch["fut_delta"], batch["fut_mask"]
    )
