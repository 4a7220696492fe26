"""Env steps per second while learning, on HalfCheetah with 256-256 networks and batch 256:
Stable-Baselines3 TD3 and mcat's ctd3 measured in the same run, and their ratio.

    .venv/bin/pip install stable-baselines3          # benchmark-only dependency
    .venv/bin/python benchmarks/throughput.py [--steps 3000] [--threads 2]

Each learner first collects 1,000 random steps (not timed), then the next ``--steps`` env steps
with one gradient step per env step of each task are timed. ctd3 is timed on one task (batch 256)
and on the 5 training tasks of halfcheetah-armature (one step of batch 256 per task for every 5
env steps, all tasks in one batch), each through the real training loop (mcat.train.Trainer).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from mcat.agents.ctd3 import CTD3Config
from mcat.config import RunConfig
from mcat.tasks import get_family
from mcat.train import Trainer

WARMUP = 1000


def time_sb3(steps: int) -> float:
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    env = get_family("halfcheetah-armature").make_env(0.1, seed=0)
    model = TD3("MlpPolicy", env, learning_rate=3e-4, learning_starts=WARMUP, batch_size=256, train_freq=1, gradient_steps=1,
                action_noise=NormalActionNoise(np.zeros(6), 0.1 * np.ones(6)), policy_kwargs={"net_arch": [256, 256]},
                seed=0, device="cpu", verbose=0)
    model.learn(WARMUP)
    t0 = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - t0)


def time_ctd3(steps: int, train_tasks: list[float] | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(family="halfcheetah-armature", steps=WARMUP + steps + 10, train_tasks=train_tasks, test_tasks=[],
                        learning_starts=WARMUP, eval_every=10**9, checkpoint_every=10**9, agent=CTD3Config())
        trainer = Trainer(cfg, tmp, log=lambda m: None)
        while trainer.env_steps < WARMUP:
            trainer.iterate()
        trainer.agent.update_models(trainer.replay, cfg.agent.model_warmup_steps)  # the one-off warm-up, not timed
        start_steps, t0 = trainer.env_steps, time.perf_counter()
        while trainer.env_steps < start_steps + steps:
            trainer.iterate()
        rate = (trainer.env_steps - start_steps) / (time.perf_counter() - t0)
        trainer.close()
        return rate


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sb3 = time_sb3(args.steps)
    print(f"SB3 TD3, HalfCheetah, 1 task:                 {sb3:7.1f} env steps/s")
    one = time_ctd3(args.steps, [0.1])
    print(f"mcat ctd3, 1 task:                             {one:7.1f} env steps/s  ({one / sb3:.2f} x SB3)")
    five = time_ctd3(args.steps, None)
    print(f"mcat ctd3, 5 tasks (halfcheetah-armature):     {five:7.1f} env steps/s  ({five / sb3:.2f} x SB3)")
    print(f"torch {torch.__version__}, {args.threads} threads")


if __name__ == "__main__":
    main()
