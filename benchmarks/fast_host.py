"""The host's share of a fast-path round: the loop of ``mcat.seeds.SeedGroup`` (exploration, the
environments, the replay queue and copy, logs) with the learner's gradient steps and acting
replaced by nothing (zero actions), timed per round of 5 env steps per seed.

    python benchmarks/fast_host.py [--seeds 1 10] [--vector-envs sync async worker] [--device cpu]
        [--profile] [--stub-envs]

Beside the full loop's rate (benchmarks/throughput.py --fast-seeds) it says how much of a round
the GPU could at best hide: if the host alone takes as long as a whole round, the loop is
bound by the host (results/gpu/README.md). HalfCheetah armature, 5 tasks, full MCAT config.
``--stub-envs`` also times the rounds with the environments stubbed out (each returns its last
results again, no episode ends): what is left is this library's own per-round Python (the
replay queue and copy, the collector's bookkeeping, exploration, the loop).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from throughput import WARMUP, run_config  # the same run as the fast-path timing

from mcat.agents.mcat import MCATConfig
from mcat.seeds import SeedGroup

ROUNDS = 400


def host_round(
    seeds: int, vector_envs: str, device: str, profile: bool = False, stub_envs: bool = False
) -> float:
    """Milliseconds per round of the loop without its GPU work; ``profile``: also print where
    the timed rounds went (cProfile, cumulative times of this library's and gymnasium's vector
    env functions; the profiler's overhead makes the rounds themselves slower)."""
    with tempfile.TemporaryDirectory() as tmp:
        # a run just long enough (its replay, sized by it, is small: ten seeds' replays of a
        # long run filled a 24 GiB machine through the subprocesses' copies)
        steps = WARMUP + 5 * (250 + ROUNDS + 10)
        cfg = run_config(steps, device, MCATConfig(), fast=True, vector_envs=vector_envs)
        group = SeedGroup(cfg, list(range(seeds)), Path(tmp), log=lambda m: None)
        learner = group.learner
        assert learner is not None
        act_dim = learner.agents[0].act_dim

        def act(obs: np.ndarray, *rest) -> tuple[np.ndarray, np.ndarray]:
            return np.zeros((*obs.shape[:2], act_dim), np.float32), np.zeros(len(obs), bool)

        learner.train_step = lambda: None  # type: ignore[method-assign]
        learner.act = act  # type: ignore[method-assign]
        while group.env_steps < cfg.learning_starts + 250:
            group.iterate()
        if stub_envs:
            for tr in group.trainers:
                _stub(tr.collector.vec, act_dim)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        prof = cProfile.Profile() if profile else None
        t0 = time.perf_counter()
        with prof or contextlib.nullcontext():
            for _ in range(ROUNDS):
                group.iterate()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        ms = 1e3 * (time.perf_counter() - t0) / ROUNDS
        if prof is not None:
            stats = pstats.Stats(prof).sort_stats("cumulative")
            stats.print_stats(r"mcat/|gymnasium/vector|tasks/wrappers", 25)
        for tr in group.trainers:
            tr.close()
        return ms


def _stub(vec, act_dim: int) -> None:
    """Make ``vec`` return the results of one real step for ever, in every stepping mode."""
    obs, rew, _, _, _ = vec.step(np.zeros((vec.num_envs, act_dim), np.float32))
    never = np.zeros(vec.num_envs, bool)
    results = (obs.copy(), rew.copy(), never, never, {})
    vec.step = lambda actions: results
    vec.step_async = lambda actions: None
    vec.step_wait = lambda: results


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 10])
    p.add_argument("--vector-envs", nargs="+", default=["sync", "async", "worker"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--profile", action="store_true", help="also print where the rounds went")
    p.add_argument(
        "--stub-envs", action="store_true", help="also time the rounds without the environments"
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    for mode in args.vector_envs:
        for seeds in args.seeds:
            ms = host_round(seeds, mode, args.device, args.profile)
            print(
                f"{seeds:2d} seed(s), {mode:6s} envs: {ms:6.3f} ms of host work per round "
                f"(at most {5 * seeds / ms * 1e3:8.1f} env steps/s in all if the GPU were free)"
            )
            if args.stub_envs:
                ms = host_round(seeds, mode, args.device, stub_envs=True)
                print(f"{seeds:2d} seed(s), {mode:6s} envs stubbed out: {ms:6.3f} ms per round")


if __name__ == "__main__":
    main()
