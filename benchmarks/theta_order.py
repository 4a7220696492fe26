"""Does HiP-BMDP's theta place tasks as their dynamics differ? On the point-gain toy (tasks differ
in actuator gain), after a short run: the Spearman rank correlation, over the pairs of training
tasks, between ||theta_i - theta_j||_1 (theta: the posterior mean, averaged over 8 context
batches of the task) and |gain_i - gain_j|; and the same for PEARL's z, which has no dynamics
loss, and for HiP-BMDP with other bisimulation weights.

    .venv/bin/python benchmarks/theta_order.py [--steps 2500] [--seeds 0 1] [--weights 0 0.01 1]

One thread; each run takes about 15-20 s here. Prints one line per (method, seed).
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

from mcat.analysis import distance_rank_correlation
from mcat.config import run_config_from_dict
from mcat.train import Trainer

SMALL = {
    "hidden": [64, 64],
    "encoder_hidden": [64, 64],
    "batch_size": 64,
    "embedding_batch_size": 32,
    "prior_episodes": 1,
    "posterior_episodes": 1,
}


def theta_order(algo: str, seed: int, steps: int, agent: dict) -> tuple[float, float, float]:
    """(Spearman rho, train return, test return) of one run."""
    cfg = run_config_from_dict(
        {
            "family": "point-gain",
            "algo": algo,
            "steps": steps,
            "learning_starts": 250,
            "eval_every": steps,
            "checkpoint_every": steps,
            "threads": 1,
            "seed": seed,
            "agent": agent,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, f"{tmp}/run", log=lambda _m: None)
        summary = trainer.run()
        agent_, replay = trainer.agent, trainer.replay
        theta = agent_.task_latents(replay, np.random.default_rng(5), batches=8)
        rho = distance_rank_correlation(theta, trainer.train_tasks)
        trainer.close()
    return rho, summary["train_return"], summary["test_return"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.01, 1.0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [("pearl", SMALL, "PEARL")] + [
        ("hipbmdp", {**SMALL, "model_hidden": 64, "bisim_weight": w}, f"HiP-BMDP, bisim {w:g}")
        for w in args.weights
    ]
    print(f"point-gain, {args.steps} env steps; rho over the 10 task pairs (1 = same order)")
    for algo, agent, label in runs:
        for seed in args.seeds:
            rho, train, test = theta_order(algo, seed, args.steps, agent)
            print(
                f"{label:24} seed {seed}: rho {rho:+.2f}  "
                f"(return train {train:.1f}, test {test:.1f})"
            )


if __name__ == "__main__":
    main()
