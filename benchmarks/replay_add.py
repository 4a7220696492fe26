"""Microseconds per ``MultiTaskReplay.add`` of one transition for each of five tasks (17 state
and 6 action numbers, no episode ending): the replay's share of the host's work per env step,
which the fast path pays once per seed and round (results/gpu/README.md).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/replay_add.py [--adds 5000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mcat.replay import MultiTaskReplay


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adds", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    replay = MultiTaskReplay(5, 17, 6, args.adds * args.repeats + 1)
    obs, act = np.zeros((5, 17), np.float32), np.zeros((5, 6), np.float32)
    rew, flags, tasks = np.zeros(5, np.float32), np.zeros(5, bool), np.arange(5)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.adds):
            replay.add(obs, act, rew, obs, flags, flags, tasks=tasks)
        times.append((time.perf_counter() - t0) / args.adds * 1e6)
    print(f"us per add: {', '.join(f'{t:.1f}' for t in times)} (median {np.median(times):.1f})")


if __name__ == "__main__":
    main()
