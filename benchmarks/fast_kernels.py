"""How many kernels each fast-path step launches: the operations a step dispatches, counted on
the CPU (views, which launch nothing, left out). On a GPU each of them is a kernel inside the
step's CUDA graph, and with 256-unit networks a kernel costs about as much GPU time as its launch
(results/gpu/README.md: 466 kernels, 1,064 us busy per one-seed round), so fewer is faster there.

    python benchmarks/fast_kernels.py [--seeds 1 10]

Full MCAT with its defaults (256-unit networks, batches of 256, H on), 5 tasks with
HalfCheetah's sizes (17 observations, 6 actions), each step run once before it is counted. For
each number of seeds, the ways the learner can compute the seeds: ``per-seed`` (each seed's
modules as they are, one after the other), ``vmapped`` (torch.func.vmap over the stacked seeds:
one kernel for all seeds; each linear layer one ``baddbmm``) and ``before 36`` (vmapped as before
session 36, with vmap's own rule for a linear layer: a batched product, the bias multiplied by
one and an add).
The per-round line weighs the steps by the default schedule: one TD3 step per round (the actor
every second), acting once, and every ``model_every`` TD3 steps ``model_steps`` C+F steps, the
task features and ``translator_steps`` H steps. (The replay's scatter, the same in both ways,
is not counted.)
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mcat.agents.fast import FastLearner
from mcat.agents.mcat import MCATAgent, MCATConfig
from mcat.replay.device import DeviceReplay

TASKS, OBS, ACT = 5, 17, 6
# operations that make views or bookkeeping, not kernels
NO_KERNEL = {
    "_reshape_alias",
    "_unsafe_view",
    "alias",
    "as_strided",
    "detach",
    "empty",
    "empty_strided",
    "expand",
    "lift_fresh",
    "new_empty",
    "permute",
    "reshape",
    "select",
    "slice",
    "split",
    "split_with_sizes",
    "squeeze",
    "t",
    "transpose",
    "unbind",
    "unsqueeze",
    "view",
    "_record_function_enter_new",
    "_record_function_exit",
}


class Count(TorchDispatchMode):
    """Counts the kernel-launching operations dispatched while it is active."""

    def __init__(self):
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in NO_KERNEL:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def learner(seeds: int, how: str) -> FastLearner:
    """A CPU learner over ``seeds`` fresh MCAT agents and a replay of random transitions."""
    torch.manual_seed(0)
    cfg = MCATConfig()
    agents = [MCATAgent(OBS, ACT, cfg) for _ in range(seeds)]
    replay = DeviceReplay(seeds, TASKS, OBS, ACT, 2_000, cfg.gamma, "cpu")
    rng = np.random.default_rng(0)
    for view in replay.views:
        obs = rng.normal(size=(TASKS, OBS)).astype(np.float32)
        for i in range(600):
            nxt = (obs + 0.1 * rng.normal(size=(TASKS, OBS))).astype(np.float32)
            ended = np.full(TASKS, i % 100 == 99)
            act = rng.uniform(-1, 1, (TASKS, ACT)).astype(np.float32)
            rew = rng.normal(size=TASKS).astype(np.float32)
            view.add(obs, act, rew, nxt, np.zeros(TASKS, bool), ended)
            obs = nxt
        view.store.flush()
    gens = [torch.Generator().manual_seed(s) for s in range(seeds)]
    fast = FastLearner(agents, replay, gens, graphs=False, batched=how != "per-seed")
    if how == "before 36":
        fast._vmap_modules = dict(fast._modules)
    return fast


def counts(seeds: int, how: str) -> dict[str, int]:
    fast = learner(seeds, how)
    fast._feature_step()
    fast.has_features = True
    K = fast.cfg.history
    obs = np.zeros((seeds, TASKS, OBS), np.float32)
    # two tasks acting through H, as in the throughput benchmark's full MCAT
    sources = np.tile(np.array([1, -1, -1, 2, -1]), (seeds, 1))
    acting = (
        obs,
        np.zeros((seeds, TASKS, K, OBS), np.float32),
        np.zeros((seeds, TASKS, K, ACT), np.float32),
        np.ones((seeds, TASKS, K), np.float32),
        sources,
        np.tile(np.arange(TASKS), (seeds, 1)),
    )
    fast.act(*acting)
    steps = {
        "TD3 (critic)": lambda: fast._rl_step(False),
        "TD3 + actor": lambda: fast._rl_step(True),
        "C+F": fast._model_step,
        "features": fast._feature_step,
        "H": fast._translator_step,
        "acting": lambda: fast._act_step(obs.shape, K),
    }
    out = {}
    for name, step in steps.items():
        step()  # once first: lazily built state is not counted
        with Count() as c:
            step()
        out[name] = sum(c.ops.values())
    cfg = fast.cfg
    blocks = cfg.model_steps * out["C+F"] + out["features"] + cfg.translator_steps * out["H"]
    out["per round"] = round(
        (out["TD3 (critic)"] + out["TD3 + actor"]) / 2 + out["acting"] + blocks / cfg.model_every
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seeds in args.seeds:
        ways = ("per-seed", "vmapped", "before 36")
        got = {how: counts(seeds, how) for how in ways}
        default = "per-seed" if seeds == 1 else "vmapped"
        print(f"{seeds} seed(s), kernels per step (the fast path's default on a GPU: {default})")
        print(f"  {'step':<14}" + "".join(f"{how:>11}" for how in ways))
        for name in got["per-seed"]:
            print(f"  {name:<14}" + "".join(f"{got[how][name]:>11}" for how in ways))


if __name__ == "__main__":
    main()
