"""Why does a Table-1 translator do what it does? Scores the cached target forward model F on
the target data, and the identity mapping and saved translators on the source data, with both
objectives of Eq. 3 (lower is better), plus how far the translated actions move.

    .venv/bin/python benchmarks/translator_diagnostics.py --cache runs/cache \
        --family halfcheetah-armature --source 0.1 --target 0.5 \
        results/table1/halfcheetah-armature-0.1-to-0.5-seed0{,-l1}

Uses the first cached forward model and the cached datasets of the two tasks (one seed in the
cache).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mcat.models import ForwardModel
from mcat.models.translator import ActionTranslator


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "results", nargs="+", type=Path, help="transfer result dirs holding translator.pt"
    )
    p.add_argument("--cache", type=Path, default=Path("runs/cache"))
    p.add_argument("--family", required=True)
    p.add_argument("--source", type=float, required=True)
    p.add_argument("--target", type=float, required=True)
    p.add_argument("--n", type=int, default=20000)
    args = p.parse_args()
    datasets = {}
    for meta in args.cache.glob("data/*/meta.json"):
        m = json.loads(meta.read_text())
        if m["family"] == args.family:
            datasets[m["task"]] = dict(np.load(meta.parent / "data.npz"))
    model_dir = next(
        d.parent
        for d in args.cache.glob("model/*/meta.json")
        if json.loads(d.read_text())["family"] == args.family
    )
    src, tgt = datasets[args.source], datasets[args.target]
    obs_dim, act_dim = src["obs"].shape[1], src["act"].shape[1]
    F = ForwardModel(obs_dim, act_dim, 0)
    F.load_state_dict(torch.load(model_dir / "model.pt", weights_only=True))
    empty = torch.zeros(args.n, 0)

    def batch(d):
        i = np.random.default_rng(0).integers(0, len(d["obs"]), args.n)
        o = torch.as_tensor(d["obs"][i])
        return o, torch.as_tensor(d["act"][i]), torch.as_tensor(d["next_obs"][i]) - o

    with torch.no_grad():
        o, a, dl = batch(tgt)
        print(
            f"F on target data:          nll {F.nll(o, a, empty, dl):9.3f}  "
            f"l1 {F.mean_distance(o, a, empty, dl).mean():.3f}"
        )
        o, a, dl = batch(src)
        print(
            f"identity on source data:   nll {F.nll(o, a, empty, dl):9.3f}  "
            f"l1 {F.mean_distance(o, a, empty, dl).mean():.3f}  "
            f"mean logvar {F(o, a, empty)[1].mean():.2f}"
        )
        for result in args.results:
            H = ActionTranslator(obs_dim, act_dim, conditioned=False)
            H.load_state_dict(torch.load(result / "translator.pt", weights_only=True))
            at = H(o, a)
            print(
                f"H of {result.name}: nll {F.nll(o, at, empty, dl):9.3f}  "
                f"l1 {F.mean_distance(o, at, empty, dl).mean():.3f}  "
                f"mean logvar {F(o, at, empty)[1].mean():.2f}  "
                f"mean |a_tgt - a_src| {(at - a).abs().mean():.3f}  "
                f"mean |a_tgt| {at.abs().mean():.3f}"
            )


if __name__ == "__main__":
    main()
