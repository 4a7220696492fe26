"""Is G a shift or a mirror image of the hand? For each result folder of ours (G and H jointly):
per hand axis, the slope of G's hand coordinate against the source's (1: a shift, -1: a mirror
image), the slope of G's hand steps G(s') - G(s) against the true steps s' - s, the slope of H's
action against the source's action, and how well G_inv undoes G on the hand (the cycle error).
A mirror image about the plane halfway between the two goals keeps every distance to the goal,
so it earns the same rewards as the shift: for the reward term of the joint loss the two are
equally good correspondences, and the transferred policy uses G_inv.

    .venv/bin/python results/reward_goals/g_symmetry.py results/reward_goals/*-mcat [--cache DIR]

Reads the seed's source dataset from the cache that `results/reward_goals/run.sh` filled.
"""

from __future__ import annotations

import numpy as np
import torch
from joint_results import joint_results, quiet

from mcat.experiments.transfer import dataset


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y on x."""
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


for result in joint_results():
    cfg, folder = result.cfg, result.folder
    src, _ = dataset(cfg, result.cache, result.agent, result.meta, cfg.source, quiet)
    G, H = result.policy.G, result.policy.translator
    idx = np.random.default_rng(0).integers(0, len(src["obs"]), 5000)
    o, a, o2 = (torch.as_tensor(src[k][idx]) for k in ("obs", "act", "next_obs"))
    with torch.no_grad():
        t, t2 = G(o), G(o2)
        back = G.inverse(t)
        h = H(t, a)
    o, o2, t, t2, back, a, h = (x.numpy() for x in (o, o2, t, t2, back, a, h))
    print(folder.name)
    for i, axis in enumerate("xyz"):  # Meta-World's observation starts with the hand's x, y, z
        print(
            f"  {axis}: G(s) on s {slope(o[:, i], t[:, i]):+.2f}, "
            f"G's steps on the true steps {slope(o2[:, i] - o[:, i], t2[:, i] - t[:, i]):+.2f}, "
            f"H's action on the source's {slope(a[:, i], h[:, i]):+.2f}, "
            f"cycle error |G_inv(G(s)) - s| {np.abs(back[:, i] - o[:, i]).mean():.4f}"
        )
