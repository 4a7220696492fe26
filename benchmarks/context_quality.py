"""Is the learned context informative? For a finished run:

    .venv/bin/python benchmarks/context_quality.py RUN_DIR [--steps 2000] [--model-steps 2000]

1. Collects fresh data on the run's training tasks with its policy (exploration noise 0.1):
   a set A (to fit baselines) and a held-out set B, ``--steps`` per task each.
2. Nearest-centroid task classification: centroids = mean contexts of B segments, then other,
   independently drawn B segments are assigned to the nearest centroid (chance = 1 / #tasks).
3. Forward-model NLL on B of (a) the run's own F with its C (trained during the run on the whole
   replay), (b) a fresh C+F trained on A for ``--model-steps`` steps exactly as during a run, and
   (c) a context-free F trained on A the same way (same architecture, optimiser, batch size and
   steps). (b) against (c) is the like-for-like comparison; (a) also shows the run's model on the
   final policy's data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mcat.analysis import context_accuracy, forward_nll, train_context_free_model
from mcat.collect import Collector
from mcat.replay import MultiTaskReplay
from mcat.tasks import get_family
from mcat.train import build_agent, load_run_agent, run_tasks


def collect(agent, cfg, tasks, steps, seed) -> MultiTaskReplay:
    col = Collector(
        get_family(cfg.family),
        tasks,
        cfg.agent.history,
        seed=seed,
        style=cfg.style,
        max_episode_steps=cfg.max_episode_steps,
    )
    replay = MultiTaskReplay(len(tasks), col.obs_dim, col.act_dim, steps + 2, seed=seed)
    rng = np.random.default_rng(seed)

    def policy(obs, c):
        return agent.act(obs, agent.context(c.ctx.delta, c.ctx.act, c.ctx.mask), noise=0.1, rng=rng)

    while col.env_steps < steps * len(tasks):
        col.step(replay, policy)
    return replay


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir", type=Path)
    p.add_argument("--steps", type=int, default=2000, help="env steps per task in each of A and B")
    p.add_argument(
        "--model-steps", type=int, default=2000, help="training steps of the context-free model"
    )
    args = p.parse_args()
    cfg, agent, _ = load_run_agent(args.run_dir, policy_only=False)
    tasks, _ = run_tasks(cfg)
    obs_dim, act_dim = agent.obs_dim, agent.act_dim
    torch.manual_seed(0)
    fit = collect(agent, cfg, tasks, args.steps, seed=10_001)
    held = collect(agent, cfg, tasks, args.steps, seed=20_002)
    acc = context_accuracy(agent.encoder, held, segments=1000)
    nll_ctx = forward_nll(agent.forward_model, agent.encoder, held, future=cfg.agent.future)
    baseline = train_context_free_model(
        fit,
        obs_dim,
        act_dim,
        args.model_steps,
        batch_size=cfg.agent.model_batch_size,
        future=cfg.agent.future,
        hidden=cfg.agent.model_hidden,
        layers=cfg.agent.model_layers,
        lr=cfg.agent.model_lr,
    )
    nll_free = forward_nll(baseline, None, held, future=cfg.agent.future)
    torch.manual_seed(0)
    fresh = build_agent(cfg, obs_dim, act_dim, agent.max_action)
    fresh.update_models(fit, args.model_steps)
    nll_fresh = forward_nll(fresh.forward_model, fresh.encoder, held, future=cfg.agent.future)
    acc_fresh = context_accuracy(fresh.encoder, held, segments=1000)
    print(f"run {args.run_dir}: {cfg.family}, {len(tasks)} training tasks {tasks}")
    print(
        f"nearest-centroid task accuracy on held-out segments: {acc:.3f} "
        f"(chance {1 / len(tasks):.3f})"
    )
    print(f"  same with a fresh C+F trained on A: {acc_fresh:.3f}")
    print(
        f"forward-model NLL on held-out data (lower is better): run's C+F {nll_ctx:.3f}; "
        f"fresh C+F on A {nll_fresh:.3f}; context-free F on A {nll_free:.3f}"
    )


if __name__ == "__main__":
    main()
