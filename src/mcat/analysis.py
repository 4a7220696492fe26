"""Checks that the context is informative (quality bars of the context-TD3 issue).

* :func:`context_accuracy`: a nearest-centroid classifier on contexts. Centroids are the task
  features z^(i) from one sample of each task's segments; held-out segments (a second, independent
  sample) are assigned to the nearest centroid. Chance is 1 / number of tasks.
* :func:`forward_nll`: the forward model's NLL on held-out segments, to compare a
  context-conditioned model with a context-free one (:func:`train_context_free_model`).
* :func:`distance_rank_correlation`: whether task latents (PEARL's z, HiP-BMDP's theta) lie as far
  apart as the tasks' parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mcat.agents.ctd3 import MODEL_FIELDS, batch_to_torch
from mcat.models import ContextEncoder, ForwardModel
from mcat.replay import MultiTaskReplay


@torch.no_grad()
def context_accuracy(
    encoder: ContextEncoder, replay: MultiTaskReplay, segments: int = 512, seed: int = 1
) -> float:
    rng = np.random.default_rng(seed)
    K = encoder.history
    fields = ("ctx_delta", "ctx_act", "ctx_mask")
    fit = batch_to_torch(replay.sample(segments, context=K, rng=rng), torch.device("cpu"), fields)
    held = batch_to_torch(replay.sample(segments, context=K, rng=rng), torch.device("cpu"), fields)
    centroids = encoder(fit["ctx_delta"], fit["ctx_act"], fit["ctx_mask"]).mean(1)  # [T, z]
    z = encoder(held["ctx_delta"], held["ctx_act"], held["ctx_mask"])  # [T, B, z]
    guess = torch.cdist(z.reshape(-1, z.shape[-1]), centroids).argmin(-1).reshape(z.shape[:2])
    truth = torch.arange(z.shape[0]).unsqueeze(1)
    return float((guess == truth).float().mean())


@torch.no_grad()
def forward_nll(
    forward_model: ForwardModel,
    encoder: ContextEncoder | None,
    replay: MultiTaskReplay,
    future: int = 10,
    segments: int = 256,
    seed: int = 2,
) -> float:
    """Mean NLL of the future windows of held-out segments; ``encoder=None`` for a context-free
    model (z of size 0)."""
    history = encoder.history if encoder is not None else 1
    b = batch_to_torch(
        replay.sample(segments, context=history, future=future, rng=np.random.default_rng(seed)),
        torch.device("cpu"),
        MODEL_FIELDS,
    )
    if encoder is not None:
        z = encoder(b["ctx_delta"], b["ctx_act"], b["ctx_mask"])
    else:
        z = b["fut_obs"].new_zeros(*b["fut_obs"].shape[:2], 0)
    z = z.unsqueeze(2).expand(-1, -1, future, -1)
    return float(forward_model.nll(b["fut_obs"], b["fut_act"], z, b["fut_delta"], b["fut_mask"]))


def train_context_free_model(
    replay: MultiTaskReplay,
    obs_dim: int,
    act_dim: int,
    steps: int,
    batch_size: int = 64,
    future: int = 10,
    hidden: int = 200,
    layers: int = 4,
    lr: float = 1e-3,
    seed: int = 0,
) -> ForwardModel:
    """A forward model without context, trained on the same data the same way (the baseline a
    context must beat)."""
    torch.manual_seed(seed)
    model = ForwardModel(obs_dim, act_dim, 0, hidden, layers)
    opt = torch.optim.Adam(model.param_groups(), lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        b = batch_to_torch(
            replay.sample(batch_size, context=0, future=future, rng=rng),
            torch.device("cpu"),
            MODEL_FIELDS,
        )
        model.update_normalizers(b["fut_obs"], b["fut_act"], b["fut_delta"], b["fut_mask"])
        z = b["fut_obs"].new_zeros(*b["fut_obs"].shape[:3], 0)
        loss = model.nll(b["fut_obs"], b["fut_act"], z, b["fut_delta"], b["fut_mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


def distance_rank_correlation(latents: torch.Tensor | np.ndarray, params: Sequence[float]) -> float:
    """Spearman rho, over the pairs of tasks, between the L1 distance of their latents [tasks, L]
    and the gap of their (scalar) parameters: 1 when the latents order the pairs as the
    parameters do, about 0 when they ignore them."""
    z = torch.as_tensor(latents).cpu().numpy()
    pairs = np.triu_indices(len(z), 1)
    dist = np.abs(z[:, None] - z[None]).sum(-1)[pairs]
    p = np.asarray(params, dtype=float)
    gap = np.abs(p[:, None] - p[None])[pairs]
    ranks = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    return float(np.corrcoef(ranks(dist), ranks(gap))[0, 1])
