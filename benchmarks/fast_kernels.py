"""How many kernels each fast-path step launches, counted on the CPU. On a GPU each of them is a
kernel inside the step's CUDA graph, and with 256-unit networks a kernel costs about as much GPU
time as its launch (results/gpu/README.md: 466 kernels, 1,064 us busy per one-seed round), so
fewer is faster there.

    python benchmarks/fast_kernels.py [--seeds 1 10]

Full MCAT with its defaults (256-unit networks, batches of 256, H on), 5 tasks with
HalfCheetah's sizes (17 observations, 6 actions), each step run twice before it is counted. For
each number of seeds, the ways the learner can compute the seeds: ``per-seed`` (each seed's
modules as they are, one after the other), ``vmapped`` (torch.func.vmap over the stacked seeds:
one kernel for all seeds; each linear layer one ``baddbmm``), ``before 36`` (vmapped as before
session 36, with vmap's own rule for a linear layer: a batched product, the bias multiplied by
one and an add) and ``compiled`` (the default way for that number of seeds, per seed for one and
vmapped for several, with ``compile``: torch.compile's inductor; its CPU kernels stand in for the
GPU's, which inductor fuses by the same rules but may split otherwise).
The count: the operations each step dispatches (views left out; under vmap each kernel its
batching rules launch); for the compiled steps, whose fused kernels are not dispatched, the
operations in the step's profile that launch a kernel (a fused kernel, or an aten operation with
a kernel of its own, neither a view nor a composite that only calls others), outermost only.
For one seed the eager per-seed steps are counted both ways too, to show that they agree.
The per-round line weighs the steps by the default schedule: one TD3 step per round (the actor
every second), acting once, and every ``model_every`` TD3 steps ``model_steps`` C+F steps, the
task features and ``translator_steps`` H steps. (The replay's scatter, the same in every way,
is not counted.) Compiling takes a few minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import collections
import functools

import numpy as np
import torch
import torch._inductor.config
from torch.profiler import ProfilerActivity, profile
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
    """Counts the kernel-launching operations dispatched while it is active (below vmap's
    batching rules, so each kernel a rule launches counts)."""

    def __init__(self):
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in NO_KERNEL:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def dispatched(step) -> int:
    """The kernels ``step`` launches, counted as they are dispatched (eager steps only: under a
    dispatch mode compiled code runs eagerly)."""
    with Count() as c:
        step()
    return sum(c.ops.values())


@functools.cache
def composite(name: str) -> bool:
    """Whether the aten operation ``name`` only calls other operations (every overload
    CompositeImplicitAutograd, such as linear or isfinite): the kernels are its callees'."""
    packet = getattr(torch.ops.aten, name, None)
    if packet is None:
        return False

    def implicit(overload: str) -> bool:
        try:
            op = getattr(packet, overload).name()
            return torch._C._dispatch_has_kernel_for_dispatch_key(op, "CompositeImplicitAutograd")
        except RuntimeError:  # an overload the dispatcher does not know (TorchScript's)
            return True

    return all(implicit(o) for o in packet.overloads())


def launches(event) -> bool:
    """A profiler event that launches a kernel: a fused kernel of compiled code, or an aten
    operation with a kernel of its own (not a view, not a composite)."""
    name = event.name
    if "cpp_fused" in name:
        return True
    return name.startswith("aten::") and name[6:] not in NO_KERNEL and not composite(name[6:])


def profiled(step) -> int:
    """The kernels ``step`` launches, from its profile (compiled steps; for eager ones without
    vmap the same count as :func:`dispatched`, within a few): the outermost launching events
    (what a kernel calls in turn, as relu's clamp_min on the CPU, is inside that kernel)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()

    def inside_another(event) -> bool:
        parent = event.cpu_parent
        while parent is not None:
            if launches(parent):
                return True
            parent = parent.cpu_parent
        return False

    return sum(1 for e in prof.events() if launches(e) and not inside_another(e))


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
    batched = how != "per-seed" and not (how == "compiled" and seeds == 1)
    compiled = how == "compiled"
    fast = FastLearner(agents, replay, gens, False, batched, lambda m: None, compiled)
    if how == "before 36":
        fast._compute = dict(fast._modules)
    return fast


def counts(seeds: int, how: str, way=dispatched) -> dict[str, int]:
    """Kernels per step of ``seeds`` seeds computed ``how``, counted by ``way`` (compiled steps
    always by :func:`profiled`)."""
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
        step()  # twice first: lazily built state and compiling are not counted
        step()
        out[name] = profiled(step) if how == "compiled" else way(step)
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
    torch._inductor.config.cpp.enable_kernel_profile = True  # fused kernels in the profile
    for seeds in args.seeds:
        ways = ("per-seed", "vmapped", "before 36", "compiled")
        got = {how: counts(seeds, how) for how in ways}
        default = "per-seed" if seeds == 1 else "vmapped"
        print(f"{seeds} seed(s), kernels per step (the fast path's default on a GPU: {default})")
        print(f"  {'step':<14}" + "".join(f"{how:>11}" for how in ways))
        for name in got["per-seed"]:
            print(f"  {name:<14}" + "".join(f"{got[how][name]:>11}" for how in ways))
        if seeds == 1:  # the two counts on the same eager steps: they should agree
            both = counts(1, "per-seed", profiled)
            print("  per-seed counted from the profile, as the compiled steps are: ", end="")
            print(", ".join(f"{name} {n}" for name, n in both.items()))


if __name__ == "__main__":
    main()
