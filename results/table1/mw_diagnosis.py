"""Why does H fail on a Meta-World pair? For a result folder of `mcat transfer` on a
metaworld-push family: how often the object moves in the source's and the target's datasets,
which state differences never change in the target's data, and F_t's error (L1 and NLL of the
normalised state difference) on 2,000 of the target's own transitions (what it was fitted to),
and on 2,000 source transitions with the source's own actions (the identity translator) and with
the learned H's.

    .venv/bin/python results/table1/mw_diagnosis.py RESULT_DIR [--cache runs/cache]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mcat.models import ForwardModel
from mcat.models.nets import NORM_MIN_VAR
from mcat.models.translator import ActionTranslator
from mcat.runs import load_checkpoint_file

# Meta-World's observation: hand, gripper opening, object position and quaternion (then a second
# object, the previous frame of all that, and the goal)
PARTS = {"hand": (0, 3), "gripper": (3, 4), "object xyz": (4, 7), "object quat": (7, 11)}


def load(result: Path, cache: Path) -> tuple[dict, dict, ForwardModel]:
    """The result's config, the seed's source and target datasets (by task) and F_t, all from
    the cache that `mcat transfer` filled."""
    cfg = json.loads((result / "config.json").read_text())
    data, model = {}, None
    for meta_file in (cache / "data").glob("*/meta.json"):
        meta = json.loads(meta_file.read_text())
        if (meta["family"], meta["seed"], meta["size"]) == (
            cfg["family"],
            cfg["seed"],
            cfg["dataset_size"],
        ):
            data[meta["task"]] = dict(np.load(meta_file.parent / "data.npz"))
    for meta_file in (cache / "model").glob("*/meta.json"):
        meta = json.loads(meta_file.read_text())
        if (meta.get("family"), meta.get("task"), meta.get("seed"), meta.get("norm_min_var")) == (
            cfg["family"],
            cfg["target"],
            cfg["seed"],
            NORM_MIN_VAR,  # not one fitted before the normaliser dropped never-varying features
        ):
            model = next(meta_file.parent.glob("*.pt"))
    if set(data) < {cfg["source"], cfg["target"]} or model is None:
        raise SystemExit(f"the datasets and F_t of {result} are not in {cache}")
    obs_dim = data[cfg["source"]]["obs"].shape[1]
    F = ForwardModel(obs_dim, 4, 0)
    F.load_state_dict(load_checkpoint_file(model))
    return cfg, data, F


def sample(d: dict, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pick = np.random.default_rng(seed).integers(0, len(d["obs"]), n)
    obs = torch.as_tensor(d["obs"][pick])
    return obs, torch.as_tensor(d["act"][pick]), torch.as_tensor(d["next_obs"][pick]) - obs


@torch.no_grad()
def errors(F: ForwardModel, name: str, obs, a, delta) -> None:
    """F_t's L1 and NLL (normalised units) on these transitions, by part of the state."""
    still = F.target_norm.varies == 0
    mean, logvar = F(obs, a, obs.new_zeros(len(obs), 0))
    target = F.target_norm(delta)
    l1 = (mean - target).abs()
    nll = 0.5 * ((target - mean) ** 2 * torch.exp(-logvar) + logvar)
    print(
        f"{name}: F_t's L1 {l1[:, ~still].mean():.3f} (never-changing: "
        f"{l1[:, still].mean():.3f}), NLL {nll[:, ~still].mean():.3g} "
        f"({nll[:, still].mean():.3g}); mean |action| {a.abs().mean():.3f}"
    )
    print(
        "    L1 by part: "
        + ", ".join(f"{k} {l1[:, i:j].mean():.3f}" for k, (i, j) in PARTS.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("result", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("runs/cache"))
    args = parser.parse_args()
    cfg, data, F = load(args.result, args.cache)
    for role in ("source", "target"):
        d = data[cfg[role]]
        moved = np.linalg.norm(d["next_obs"][:, 4:7] - d["obs"][:, 4:7], axis=1)
        print(
            f"{role} data: the object moves (> 1 mm a step) in {100 * (moved > 1e-3).mean():.1f}%"
        )
    obs_dim = F.target_norm.var.shape[0]
    still = F.target_norm.varies == 0
    print(
        f"state differences that never change in the target's data: {int(still.sum())} of {obs_dim}"
    )
    H = ActionTranslator(obs_dim, 4, conditioned=False, max_action=1.0)
    H.load_state_dict(load_checkpoint_file(args.result / "translator.pt"))
    obs, act, delta = sample(data[cfg["source"]], 2000, 0)
    errors(
        F, "target's own transitions (F_t's training data)", *sample(data[cfg["target"]], 2000, 1)
    )
    errors(F, "identity (the source's actions)", obs, act, delta)
    with torch.no_grad():
        errors(F, "learned H", obs, H(obs, act), delta)


if __name__ == "__main__":
    main()
