"""Replay store: memory per transition and window-sampling speed.

    .venv/bin/python benchmarks/replay_memory.py [--tasks 5] [--capacity 200000] [--obs 17]
        [--act 6]

Fills every task's ring buffer with random transitions (episodes of 1000 steps, HalfCheetah
sizes by default), then reports
  * bytes per stored transition from the arrays, and from the process's resident memory,
    against the raw bytes of (s, a, r, s', done) (float32 s, a, r, s' and a one-byte done);
  * the time to sample a batch of 256 windows per task with context K=10 and future M=10.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from mcat.replay import MultiTaskReplay


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=5)
    p.add_argument("--capacity", type=int, default=200_000, help="transitions per task")
    p.add_argument("--obs", type=int, default=17)
    p.add_argument("--act", type=int, default=6)
    p.add_argument("--episode", type=int, default=1000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args()

    rng = np.random.default_rng(0)
    before = rss_bytes()
    replay = MultiTaskReplay(args.tasks, args.obs, args.act, capacity=args.capacity)
    T = args.tasks
    obs = rng.normal(size=(T, args.obs)).astype(np.float32)
    chunk = rng.normal(size=(1024, T, args.obs)).astype(np.float32)  # recycled random states
    t0 = time.perf_counter()
    for i in range(args.capacity - 1):
        nxt = chunk[i % 1024]
        end = (i + 1) % args.episode == 0
        replay.add(
            obs,
            rng.uniform(-1, 1, (T, args.act)),
            rng.normal(size=T),
            nxt,
            np.zeros(T, bool),
            np.full(T, end),
        )
        obs = nxt
    fill_s = time.perf_counter() - t0
    after = rss_bytes()
    stored = len(replay)
    raw = replay.raw_transition_bytes()
    print(
        f"tasks {T}, transitions stored {stored:,} ({args.capacity:,} slots per task), "
        f"obs {args.obs}, act {args.act}"
    )
    print(f"raw (s, a, r, s', done): {raw} B/transition")
    print(
        f"arrays: {replay.bytes_per_transition():.1f} B/transition = "
        f"{replay.bytes_per_transition() / raw:.3f} x raw"
    )
    print(
        f"resident memory growth: {(after - before) / stored:.1f} B/transition = "
        f"{(after - before) / stored / raw:.3f} x raw"
    )
    print(f"fill: {stored / fill_s:,.0f} transitions/s ({T} tasks per add call)")
    for K, M in ((10, 10), (10, 0), (0, 0)):
        replay.sample(args.batch, context=K, future=M)  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            replay.sample(args.batch, context=K, future=M)
        ms = (time.perf_counter() - t0) / args.repeats * 1e3
        print(f"sample {args.batch} x {T} tasks, K={K}, M={M}: {ms:.2f} ms per batch")


if __name__ == "__main__":
    main()
