"""The default path's collection step alone: ``Collector.step`` on the five HalfCheetah armature
tasks (in-process vector env) into a ``MultiTaskReplay``, zero actions, best of five blocks of
600 steps. Run at two commits, alternating, to see whether a change to the collector costs the
default (CPU) path anything.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/collector_step.py
"""

from __future__ import annotations

import time

import numpy as np

from mcat.collect import Collector
from mcat.replay import MultiTaskReplay
from mcat.tasks import get_family


def main() -> None:
    fam = get_family("halfcheetah-armature")
    col = Collector(fam, list(fam.train_tasks), 10, seed=0)
    rep = MultiTaskReplay(5, col.obs_dim, col.act_dim, 20000)
    actions = np.zeros((col.n, col.act_dim), np.float32)
    for _ in range(200):
        col.step(rep, lambda obs, c: actions)
    best = float("inf")
    for _ in range(5):  # (episodes end and restart in between, as in training)
        t0 = time.perf_counter()
        for _ in range(600):
            col.step(rep, lambda obs, c: actions)
        best = min(best, (time.perf_counter() - t0) / 600)
    col.close()
    print(f"{1e6 * best:.1f} us per Collector.step ({col.n} HalfCheetah environments)")


if __name__ == "__main__":
    main()
