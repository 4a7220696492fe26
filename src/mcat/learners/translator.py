"""Loss of the action translator H (paper Eq. 3), with the context encoder C and forward model
F frozen.

For a source transition (s, a_src, s'_src) and a target task i, H proposes a_tgt = H(s, a_src,
z_src, z_tgt); the loss is the negative log-likelihood of the source's real next state under F's
prediction for the target task, -log F(s'_src | s, a_tgt, z_tgt). The deterministic variant
(``objective="l1"``) is the L1 distance between F's predicted mean and the real normalised state
difference, as in the authors' Table-1 code. The pair-only and the conditioned H use this same
function (the pair-only H ignores the task features it is given).
"""

from __future__ import annotations

import torch

from mcat.models import ForwardModel
from mcat.models.translator import ActionTranslator

OBJECTIVES = ("nll", "l1")


def translator_loss(
    translator: ActionTranslator,
    forward_model: ForwardModel,
    obs: torch.Tensor,
    act_src: torch.Tensor,
    delta_src: torch.Tensor,
    z_src: torch.Tensor,
    z_tgt: torch.Tensor,
    objective: str = "nll",
) -> torch.Tensor:
    """Mean Eq. 3 loss over a batch. ``delta_src`` = s'_src - s; ``z_src``/``z_tgt`` are the task
    features (for a context-free F of a single target, tensors with 0 columns). F's parameters get
    no gradient, but gradients flow through F to the translated action."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown translator objective {objective!r}; choose one of {OBJECTIVES}")
    act_tgt = translator(obs, act_src, z_src, z_tgt)
    frozen = [p.requires_grad for p in forward_model.parameters()]
    forward_model.requires_grad_(False)
    try:
        if objective == "nll":
            return forward_model.nll(obs, act_tgt, z_tgt, delta_src)
        return forward_model.mean_distance(obs, act_tgt, z_tgt, delta_src).mean()
    finally:
        for p, flag in zip(forward_model.parameters(), frozen, strict=True):
            p.requires_grad_(flag)


def all_pairs_loss(
    translator: ActionTranslator,
    forward_model: ForwardModel,
    obs: torch.Tensor,
    act: torch.Tensor,
    delta: torch.Tensor,
    features: torch.Tensor,
    objective: str = "nll",
) -> torch.Tensor:
    """Eq. 3 over every ordered pair (source j -> target i, i != j) at once: the batch of task j
    (``obs``/``act``/``delta`` of shape [T, B, ...]) is translated to every other task i, using the
    task features ``features`` [T, z]."""
    T, B = obs.shape[:2]
    src, tgt = torch.meshgrid(torch.arange(T), torch.arange(T), indexing="ij")
    keep = src != tgt
    src, tgt = src[keep].to(obs.device), tgt[keep].to(obs.device)  # [P] with P = T (T - 1)
    expand = lambda z: z.unsqueeze(1).expand(-1, B, -1)  # noqa: E731 - [P, z] -> [P, B, z]
    return translator_loss(
        translator,
        forward_model,
        obs[src],
        act[src],
        delta[src],
        expand(features[src]),
        expand(features[tgt]),
        objective,
    )
