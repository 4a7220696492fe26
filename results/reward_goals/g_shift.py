"""Where does the learned state translator G move the hand? For each result folder: the mean and
spread of G(s) - s on the hand's position (the first three numbers of the observation) over the
first 5,000 states of the source dataset, beside the shift that would carry the source's goal
onto the target's (target goal - source goal), and G_inv's cycle error.

    .venv/bin/python results/reward_goals/g_shift.py results/reward_goals/* [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mcat.models.state_translator import StateTranslator

parser = argparse.ArgumentParser()
parser.add_argument("results", nargs="+", type=Path)
parser.add_argument("--cache", type=Path, default=Path("runs/cache"))
args = parser.parse_args()
for folder in args.results:
    if not (folder / "state_translator.pt").is_file():
        continue
    cfg = json.loads((folder / "config.json").read_text())
    found = {}
    for meta_file in sorted((args.cache / "data").glob("*/meta.json")):
        meta = json.loads(meta_file.read_text())
        for role in ("source", "target"):
            if [meta["family"], meta["task"], meta["seed"]] == [
                cfg[k] for k in ("family", role, "seed")
            ]:
                found[role] = meta_file.parent / "data.npz"
    if set(found) != {"source", "target"}:
        raise SystemExit(f"{folder}: the datasets of seed {cfg['seed']} are not in {args.cache}")
    print(folder.name)
    for role, file in found.items():  # how close each dataset's hand comes to its task's goal
        with np.load(file) as data:
            dist = np.linalg.norm(data["obs"][:, :3] - np.asarray(cfg[role]), axis=1)
            rew = data["rew"]
        print(
            f"  {role} dataset: hand to goal min {dist.min():.3f}, 5% {np.percentile(dist, 5):.3f},"
            f" median {np.median(dist):.3f}; reward max {rew.max():.2f}, mean {rew.mean():.2f}"
        )
    with np.load(found["source"]) as data:
        obs = torch.as_tensor(data["obs"][:5000], dtype=torch.float32)
    G = StateTranslator(obs.shape[1], obs.shape[1])
    G.load_state_dict(torch.load(folder / "state_translator.pt", weights_only=True))
    with torch.no_grad():
        moved = G(obs)
        back = G.inverse(moved)
    shift = (moved[:, :3] - obs[:, :3]).numpy()
    print(
        f"  goal shift {np.subtract(cfg['target'], cfg['source']).round(3)}, "
        f"G moves the hand by {shift.mean(0).round(3)} (std {shift.std(0).round(3)}), "
        f"cycle error {(back[:, :3] - obs[:, :3]).abs().mean().item():.4f}"
    )
