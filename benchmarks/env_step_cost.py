"""Where the CPU side of collection goes on HalfCheetah (the limit of the GPU fast path with
several seeds): one ``env.step`` through gymnasium's layers, the ``mj_step`` inside it, and 10
seeds x 5 armature tasks collected by their Collectors one after the other and with a thread
pool (4 threads); and the collector's vector env (5 slots, in-process) stepped with the
environments' info dicts, as before session 35, and without them, as now (alternating blocks).

    .venv/bin/python benchmarks/env_step_cost.py
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from mcat.collect import Collector, TaskSlot
from mcat.replay import MultiTaskReplay
from mcat.tasks import get_family

ROUNDS = 200


def main() -> None:
    fam = get_family("halfcheetah-armature")
    cols = [Collector(fam, list(fam.train_tasks), 10, seed=s) for s in range(10)]
    reps = [MultiTaskReplay(5, c.obs_dim, c.act_dim, 5000) for c in cols]
    rng = np.random.default_rng(0)

    def policy(obs, col):
        return rng.uniform(-1, 1, (col.n, col.act_dim))

    def collect(i: int) -> None:
        cols[i].step(reps[i], policy)

    steps = ROUNDS * sum(c.n for c in cols)
    t0 = time.perf_counter()
    for _ in range(ROUNDS):
        for i in range(len(cols)):
            collect(i)
    rate = steps / (time.perf_counter() - t0)
    print(f"10 seeds x 5 tasks, one after the other: {rate:.0f} env steps/s")
    with ThreadPoolExecutor(4) as pool:
        t0 = time.perf_counter()
        for _ in range(ROUNDS):
            list(pool.map(collect, range(len(cols))))
        rate = steps / (time.perf_counter() - t0)
        print(f"the same with 4 threads:                 {rate:.0f} env steps/s")
    env = fam.make_env(fam.train_tasks[0])
    t0 = time.perf_counter()
    for _ in range(2000):
        env.step(np.zeros(6))
    print(f"one env.step: {(time.perf_counter() - t0) / 2000 * 1e6:.0f} us")
    u = env.unwrapped
    t0 = time.perf_counter()
    for _ in range(2000):
        mujoco.mj_step(u.model, u.data, nstep=u.frame_skip)
    print(f"the mj_step inside it: {(time.perf_counter() - t0) / 2000 * 1e6:.0f} us")
    vector_step_infos(fam)


class _SlotWithInfo(TaskSlot):
    """The collector's slot as before session 35: it passed on its environment's info dict."""

    def step(self, action):
        return self.envs[self.task].step(action)


def vector_step_infos(fam, blocks: int = 30, steps: int = 200) -> None:
    tasks = list(fam.train_tasks)

    def vec(slot: type) -> SyncVectorEnv:
        fns = [
            functools.partial(slot, i, fam, tasks, range(5), 1, "paper", 10**9) for i in range(5)
        ]
        v = SyncVectorEnv(fns, copy=False, autoreset_mode=AutoresetMode.DISABLED)
        v.reset()
        return v

    envs = {"with infos": vec(_SlotWithInfo), "without": vec(TaskSlot)}
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 5, 6)).astype(np.float32)
    took = dict.fromkeys(envs, 0.0)
    for b in range(blocks):  # alternating blocks, either order: the machine's drift cancels
        for name in sorted(envs, reverse=b % 2 == 1):
            t0 = time.perf_counter()
            for a in actions:
                envs[name].step(a)
            took[name] += time.perf_counter() - t0
    per = {k: v / (blocks * steps) * 1e6 for k, v in took.items()}
    print(
        f"the collector's vector env, 5 slots: {per['with infos']:.1f} us a step with the "
        f"environments' infos, {per['without']:.1f} us without "
        f"({per['without'] / per['with infos']:.3f}x)"
    )


if __name__ == "__main__":
    main()
