"""Resident memory of a training run once its replay buffers are full.

    .venv/bin/python benchmarks/memory_flat.py [--family halfcheetah-armature] [--steps 120000]
        [--capacity 10000] [--every 2000] [--out runs/memory_flat]

Runs `mcat train` (the real loop: collection, gradient steps, evaluations, checkpoints with the
replay, CSV and TensorBoard logs) with a replay capacity of ``--capacity`` transitions per task,
small enough that the buffers fill early, and samples the process's resident set size (RSS)
every ``--every`` env steps. Prints the RSS when the buffers became full, its minimum, maximum
and last value after that, and the slope of a least-squares line through the samples after
full (bytes per 10,000 env steps). Flat memory means a slope near 0 and max - min of the order
of the checkpoint's transient buffers.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from mcat.config import run_config_from_dict
from mcat.train import Trainer


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class Probe(Trainer):
    """The trainer, sampling RSS after every ``every`` env steps."""

    every = 2000
    samples: list[tuple[int, int, bool]]

    def iterate(self) -> None:
        before = self.env_steps // self.every
        super().iterate()
        if self.env_steps // self.every != before:
            self.samples.append(
                (self.env_steps, rss_bytes(), bool(self.replay.size.min() == self.replay.capacity))
            )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--family", default="halfcheetah-armature")
    p.add_argument("--steps", type=int, default=120_000)
    p.add_argument("--capacity", type=int, default=10_000, help="replay transitions per task")
    p.add_argument("--every", type=int, default=2000, help="env steps between RSS samples")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/memory_flat"))
    args = p.parse_args()
    cfg = run_config_from_dict(
        {
            "family": args.family,
            "steps": args.steps,
            "replay_capacity": args.capacity,
            "threads": args.threads,
            "learning_starts": 5000,
            "eval_every": 20_000,
            "checkpoint_every": 20_000,
            "log_interval": 60.0,
        }
    )
    Probe.every = args.every
    trainer = Probe(cfg, args.out, overwrite=True)
    trainer.samples = []
    start = time.perf_counter()
    trainer.run()
    wall = time.perf_counter() - start
    steps = np.array([s for s, _, _ in trainer.samples])
    rss = np.array([r for _, r, _ in trainer.samples], dtype=float)
    full = np.array([f for _, _, f in trainer.samples])
    if not full.any():
        raise SystemExit("the buffers never filled; use more --steps or a smaller --capacity")
    i = int(np.argmax(full))
    after, after_steps = rss[i:], steps[i:]
    slope = np.polyfit(after_steps, after, 1)[0] * 10_000 if len(after) > 1 else 0.0
    mb = 1 / 2**20
    print(
        f"{args.family}: {cfg.steps:,} env steps in {wall:.0f} s, "
        f"replay {trainer.replay.num_tasks} x {trainer.replay.capacity:,} "
        f"transitions ({trainer.replay.nbytes * mb:.1f} MiB), "
        f"RSS sampled every {args.every:,} steps"
    )
    print(f"  buffers full at step {steps[i]:,}: RSS {rss[i] * mb:.1f} MiB")
    print(
        f"  after that ({len(after)} samples to step {steps[-1]:,}): "
        f"min {after.min() * mb:.1f}, max {after.max() * mb:.1f}, "
        f"last {after[-1] * mb:.1f} MiB; slope {slope * mb:+.2f} MiB per 10,000 steps"
    )
    print(
        "  peak RSS of the process (ru_maxrss): "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB"
    )
    print(
        "  samples (step: MiB): "
        + ", ".join(f"{s}: {r * mb:.0f}" for s, r in zip(steps, rss, strict=True))
    )


if __name__ == "__main__":
    main()
