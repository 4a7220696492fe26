"""How close do the data of each collecting policy bring the hand to a reach target's goal? For
every metaworld-reach dataset in the cache whose task is TARGET: the hand-to-goal distance (min,
5th percentile, median) and the reward (max, mean), with the policy that collected it (the
source's scripted policy, or the TD3 target data policy of --target-data-policy), and the same
for 25 episodes of uniformly random actions.

    .venv/bin/python results/reward_goals/coverage.py 0.1,0.85,0.175 [--cache runs/cache]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mcat.tasks import get_family

parser = argparse.ArgumentParser()
parser.add_argument("target")
parser.add_argument("--cache", type=Path, default=Path("runs/cache"))
args = parser.parse_args()
goal = [float(x) for x in args.target.split(",")]
policies = {}
for meta_file in (args.cache / "source").glob("*/meta.json"):
    meta = json.loads(meta_file.read_text())
    policies[meta_file.parent.name] = f"TD3 {meta['steps']:,} steps on {meta['task']}"


def line(what: str, dist: np.ndarray, rew: np.ndarray) -> str:
    return (
        f"{what}: hand to goal min {dist.min():.3f}, 5% {np.percentile(dist, 5):.3f}, median "
        f"{np.median(dist):.3f}; reward max {rew.max():.2f}, mean {rew.mean():.2f}"
    )


for meta_file in sorted((args.cache / "data").glob("*/meta.json")):
    meta = json.loads(meta_file.read_text())
    if meta["family"] == "metaworld-reach" and meta["task"] == goal:
        with np.load(meta_file.parent / "data.npz") as data:
            dist = np.linalg.norm(data["obs"][:, :3] - np.asarray(goal), axis=1)
            rew = data["rew"]
        who = policies.get(meta["policy"], "the source's scripted policy")
        print(line(f"seed {meta['seed']}, {who}, noise {meta['noise']}", dist, rew))
env = get_family("metaworld-reach").make_env(tuple(goal), seed=0)
rng, dists, rews = np.random.default_rng(0), [], []
for episode in range(25):
    env.reset(seed=episode)
    for _ in range(200):
        obs, reward, *_ = env.step(rng.uniform(-1, 1, 4))
        dists.append(np.linalg.norm(obs[:3] - np.asarray(goal)))
        rews.append(reward)
print(line("25 episodes of random actions", np.asarray(dists), np.asarray(rews)))
