"""Why does the transferred reach policy drive the hand to the workspace's corner? For each result
folder of ours (G and H jointly): the action H gives along one target episode, the terms of the
joint loss on 4,000 translated source transitions (G(s), G(s')) with H's action, with the source
action itself and with the corner action [1, -1, 1, -1], F_t's fit on the target's own data, and
how far G's hand steps G(s') - G(s) are from the true ones s' - s.

    .venv/bin/python results/reward_goals/h_saturation.py results/reward_goals/*-mcat [--cache DIR]

Reads the seed's datasets and models from the cache that `results/reward_goals/run.sh` filled.
"""

from __future__ import annotations

import numpy as np
import torch
from joint_results import joint_results, quiet

from mcat.experiments.cross_body import reward_model
from mcat.experiments.transfer import dataset, target_model
from mcat.tasks import get_family

np.set_printoptions(precision=4, suppress=True)
for result in joint_results():
    cfg, cache, agent, meta = result.cfg, result.cache, result.agent, result.meta
    src, _ = dataset(cfg, cache, agent, meta, cfg.source, quiet, rewards=True)
    tgt, tmeta = dataset(
        cfg, cache, agent, meta, cfg.target, quiet, cfg.target_family_name, rewards=True
    )
    F = target_model(cfg, cache, tgt, tmeta, quiet, family=cfg.target_family_name)
    R = reward_model(cfg, cache, tgt, tmeta, quiet)
    policy = result.policy
    G, H = policy.G, policy.translator
    print(result.folder.name)

    # 1. the actions H takes along one target episode
    env = get_family(cfg.target_family_name).make_env(cfg.target, seed=cfg.seed)
    obs, _ = env.reset(seed=cfg.seed)
    taken = []
    for _ in range(100):
        action = policy.act(obs[None])[0]
        taken.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    env.close()
    taken_arr = np.array(taken)
    print(f"  one target episode: H's actions mean {taken_arr.mean(0)}, spread {taken_arr.std(0)}")

    # 2. the joint loss's terms at H's action, the source action and the corner action
    idx = np.random.default_rng(0).integers(0, len(src["obs"]), 4000)
    o, a, r, o2 = (torch.as_tensor(src[k][idx]) for k in ("obs", "act", "rew", "next_obs"))
    with torch.no_grad():
        t, t2 = G(o), G(o2)
        empty = t.new_zeros(len(t), 0)
        corner = torch.tensor([1.0, -1.0, 1.0, -1.0]).expand_as(a)
        for name, act in (("H(G(s), a)", H(t, a)), ("a (source's)", a), ("corner", corner)):
            nll = float(F.nll(t, act, empty, t2 - t))
            l1 = float(F.mean_distance(t, act, empty, t2 - t).mean())
            err = float((R.standardized(t, act) - R.standardize_reward(r)).pow(2).mean())
            print(f"  {name:13s} F_t NLL {nll:7.3f}, L1 {l1:.3f}; reward error {err:.3f}")
        j = idx % len(tgt["obs"])
        to, ta, to2 = (torch.as_tensor(tgt[k][j]) for k in ("obs", "act", "next_obs"))
        for name, act in (("its actions", ta), ("corner", corner)):
            nll = float(F.nll(to, act, empty, to2 - to))
            l1 = float(F.mean_distance(to, act, empty, to2 - to).mean())
            print(f"  target data, {name:11s}: F_t NLL {nll:7.3f}, L1 {l1:.3f}")
        # 3. G's hand steps against the true ones
        true_step, g_step = (o2 - o)[:, :3], (t2 - t)[:, :3]
        print(f"  hand step |s' - s| {true_step.abs().mean(0).numpy()}")
        print(f"  |G(s') - G(s)|     {g_step.abs().mean(0).numpy()}")
        print(f"  |difference|       {(g_step - true_step).abs().mean(0).numpy()}")
