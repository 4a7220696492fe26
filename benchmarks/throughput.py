"""Env steps per second while learning, on HalfCheetah with 256-256 networks and batch 256:
Stable-Baselines3 TD3 and mcat's ctd3 and MCAT (or, with ``--only baselines``, the baselines
PEARL and MQL) measured in the same run, their ratios, and where the time goes.

    .venv/bin/pip install stable-baselines3          # benchmark-only dependency
    .venv/bin/python benchmarks/throughput.py [--steps 3000] [--threads 2] [--device cuda]
        [--only mcat|baselines] [--fast-seeds 1 3 10] [--fast-vector-envs sync async]

Each learner first collects 1,000 random steps (not timed), then the next ``--steps`` env steps
with one gradient step per env step of each task are timed. ctd3 is timed on one task (batch 256)
and on the 5 training tasks of halfcheetah-armature (one step of batch 256 per task for every 5
env steps, all tasks in one batch), each through the real training loop (mcat.train.Trainer).
MCAT (same 5 tasks, default settings: SIL, C+F and H blocks every 250 TD3 steps) is timed without
policy transfer and with it; with it, two of the five tasks (0.2 and 0.3) collect with the
policy transferred from task 0.1 for the whole timed window, so acting pays for the translator
(in a real run which tasks transfer changes from episode to episode). The one-off C+F and H
warm-ups are done before the timed window. The breakdown of the full MCAT run times each part
(synchronising the GPU around each when on CUDA, which costs a little speed there): acting
(context + actor + translator), environment steps and replay writes, TD3 with SIL, C+F blocks,
H blocks.

``--fast-seeds`` adds full MCAT on the fast path (``--fast``; ``--seeds`` for several seeds in one
process): env steps/s per seed and for all seeds together, then a shorter window with every part
synchronised for the breakdown (scripts/gpu_check.sh runs this on a GPU). ``--fast-vector-envs
async`` steps each environment in its own subprocess, every seed's at once (``--vector-envs
async``), ``worker`` each seed's environments in one subprocess of its own; in the breakdown the
environments' share is then the wait for the slowest of them. ``--fast-runs`` names the fast-path
runs one by one, in the order they run (the most wanted first, for a GPU call with a time limit),
instead of every combination of the ``--fast-*`` options:

    --fast-runs 1:sync:ahead+compile 10:worker:ahead+compile 1:sync 1:sync:ahead

each ``SEEDS[:MODE[:OPTIONS]]``, MODE sync (default), async or worker, OPTIONS joined by ``+``
among ahead (act_ahead), compile, priority (acting on a high-priority CUDA stream) and before36.
Each fast-path line also gives the run's wall time (its set-up, warm-up and any compiling
included) and any step that ran eagerly because its CUDA graph capture failed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mcat.agents.ctd3 import CTD3Config
from mcat.agents.distral import DistralConfig
from mcat.agents.hipbmdp import HiPBMDPConfig
from mcat.agents.mcat import MCATConfig
from mcat.agents.mql import MQLConfig
from mcat.agents.pearl import PEARLConfig
from mcat.collect import VECTOR_MODES
from mcat.config import RunConfig
from mcat.evaluation import evaluate_agent
from mcat.tasks import get_family
from mcat.train import Trainer

WARMUP = 1000

BASELINES = {
    "pearl": PEARLConfig(),
    "mql": MQLConfig(),
    "distral": DistralConfig(),
    "hipbmdp": HiPBMDPConfig(),
}


def time_sb3(steps: int, device: str = "cpu") -> float:
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    env = get_family("halfcheetah-armature").make_env(0.1, seed=0)
    model = TD3(
        "MlpPolicy",
        env,
        learning_rate=3e-4,
        learning_starts=WARMUP,
        batch_size=256,
        train_freq=1,
        gradient_steps=1,
        action_noise=NormalActionNoise(np.zeros(6), 0.1 * np.ones(6)),
        policy_kwargs={"net_arch": [256, 256]},
        seed=0,
        device=device,
        verbose=0,
    )
    model.learn(WARMUP)
    t0 = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - t0)


class Timers:
    """Seconds spent in chosen methods of chosen objects (wrapped in place)."""

    def __init__(self, device: str):
        self.seconds: dict[str, float] = {}
        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def wrap(self, obj, name: str, label: str) -> None:
        fn = getattr(obj, name)
        self.seconds[label] = 0.0

        def timed(*args, **kwargs):
            self.sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.sync()
            self.seconds[label] += time.perf_counter() - t0
            return out

        setattr(obj, name, timed)


def run_config(steps: int, device: str, agent, algo: str | None = None, **extra) -> RunConfig:
    """The benchmarks' run: halfcheetah-armature, learning from WARMUP env steps, no evaluation
    or checkpoint in the way; ``algo`` defaults to mcat for an MCATConfig, else ctd3."""
    return RunConfig(
        family="halfcheetah-armature",
        algo=algo or ("mcat" if isinstance(agent, MCATConfig) else "ctd3"),
        steps=steps,
        test_tasks=[],
        learning_starts=WARMUP,
        eval_every=10**9,
        checkpoint_every=10**9,
        device=device,
        agent=agent,
        **extra,
    )


def time_ctd3(
    steps: int,
    train_tasks: list[float] | None,
    agent=None,
    device: str = "cpu",
    breakdown: dict | None = None,
    algo: str | None = None,
) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = run_config(
            WARMUP + steps + 10, device, agent or CTD3Config(), algo, train_tasks=train_tasks
        )
        trainer = Trainer(cfg, tmp, log=lambda m: None)
        while trainer.env_steps < WARMUP:
            trainer.iterate()
        if algo in BASELINES:
            return _time_baseline(trainer, steps, breakdown)
        # the one-off warm-up(s), not timed
        trainer.agent.update_models(trainer.replay, cfg.agent.model_warmup_steps)
        pt = getattr(trainer.agent, "pt", None)
        if pt is not None:
            pt.slot_source[[1, 2]] = 0  # tasks 0.2 and 0.3 act with task 0.1's transferred policy
        timers = Timers(device)
        if breakdown is not None:
            timers.wrap(trainer, "policy", "acting")
            timers.wrap(trainer, "collect", "collect")
            timers.wrap(trainer.agent, "update_rl", "TD3 + SIL")
            timers.wrap(trainer.agent, "update_models", "C+F and H")
            if hasattr(trainer.agent, "update_translator"):
                timers.wrap(trainer.agent, "update_translator", "H")
        timers.sync()
        start_steps, t0 = trainer.env_steps, time.perf_counter()
        while trainer.env_steps < start_steps + steps:
            trainer.iterate()
        timers.sync()
        total = time.perf_counter() - t0
        rate = (trainer.env_steps - start_steps) / total
        trainer.close()
        if breakdown is not None:
            t = timers.seconds
            parts = {
                "acting": t["acting"],
                "environments and replay": t["collect"] - t["acting"],
                "TD3 + SIL": t["TD3 + SIL"],
                "C+F blocks": t["C+F and H"] - t.get("H", 0.0),
                "H blocks": t.get("H", 0.0),
            }
            parts["rest (loop, logs)"] = total - sum(parts.values())
            breakdown.update({k: v / total for k, v in parts.items()})
        return rate


def _time_baseline(trainer: Trainer, steps: int, breakdown: dict | None) -> float:
    """A baseline's trainer after its random steps: the timed window, with acting, environments
    and replay, and gradient steps timed apart; ``breakdown`` also gets the seconds one
    evaluation (with the algorithm's adaptation) takes per evaluated task."""
    timers = Timers(str(trainer.cfg.device))
    timers.wrap(trainer, "policy", "acting")
    timers.wrap(trainer, "collect", "collect")
    timers.wrap(trainer.agent, "train_step", "updates")
    start_steps, t0 = trainer.env_steps, time.perf_counter()
    while trainer.env_steps < start_steps + steps:
        trainer.iterate()
    total = time.perf_counter() - t0
    rate = (trainer.env_steps - start_steps) / total
    if breakdown is not None:
        t = timers.seconds
        parts = {
            "acting": t["acting"],
            "environments and replay": t["collect"] - t["acting"],
            "gradient steps": t["updates"],
        }
        parts["rest (loop, logs)"] = total - sum(parts.values())
        breakdown.update({k: v / total for k, v in parts.items()})
        t0 = time.perf_counter()
        evaluate_agent(trainer.agent, trainer.cfg, trainer.train_tasks[:1], trainer.replay)
        breakdown["evaluation s/task"] = time.perf_counter() - t0
    trainer.close()
    return rate


def _learner_notes(message: str) -> None:
    if "compil" in message or "eager" in message:
        print(f"  [fast path] {message}", flush=True)


FAST_OPTIONS = ("ahead", "compile", "priority", "before36")


def fast_run(spec: str) -> tuple[int, str, frozenset[str]]:
    """``SEEDS[:MODE[:OPTIONS]]`` of ``--fast-runs`` as (seeds, mode, options); a one-line
    error (SystemExit) for a spec that is not one."""
    parts = spec.split(":")
    mode = parts[1] if len(parts) > 1 else "sync"
    options = frozenset(parts[2].split("+")) if len(parts) > 2 and parts[2] else frozenset()
    if (
        len(parts) > 3
        or not parts[0].isdigit()
        or int(parts[0]) < 1
        or mode not in VECTOR_MODES
        or not options <= set(FAST_OPTIONS)
    ):
        raise SystemExit(
            f"--fast-runs: {spec!r} is not SEEDS[:MODE[:OPTIONS]] (MODE {', '.join(VECTOR_MODES)}; "
            f"OPTIONS joined by + among {', '.join(FAST_OPTIONS)})"
        )
    return int(parts[0]), mode, options


def time_fast(
    steps: int,
    seeds: int,
    device: str = "cpu",
    breakdown: dict | None = None,
    vector_envs: str = "sync",
    profile_rounds: int = 0,
    act_priority: bool = False,
    act_ahead: bool = False,
    before_36: bool = False,
    compiled: bool = False,
) -> tuple[float, float]:
    """Full MCAT on the fast path (mcat.seeds.SeedGroup) with ``seeds`` seeds in one process,
    set up as :func:`time_ctd3`'s full MCAT run (two of five tasks acting through H); returns
    (env steps/s of one seed, aggregate env steps/s over the seeds) and, once, the time spent
    building the CUDA graphs (their capture is in the warm-up, not timed). ``before_36``: the
    learner as it computed before session 36, every number of seeds vmapped and with vmap's own
    rule for linear layers (more kernels: benchmarks/fast_kernels.py). ``compiled``: --compile,
    the steps compiled by torch.compile (compiling is in the warm-up, not timed)."""
    from mcat.seeds import SeedGroup

    with tempfile.TemporaryDirectory() as tmp:
        cfg = run_config(
            WARMUP + steps + 100,
            device,
            MCATConfig(),
            fast=True,
            vector_envs=vector_envs,
            act_ahead=act_ahead,
            compile=compiled,
        )
        # the learner's notes (compiling, a capture that failed) shown; the seeds' progress not
        group = SeedGroup(cfg, list(range(seeds)), Path(tmp), log=_learner_notes)
        if act_priority:
            assert group.learner is not None
            group.learner.act_stream = torch.cuda.Stream(priority=-1)
        if before_36:  # before any step: the steps are captured the way chosen
            assert group.learner is not None
            group.learner.batched = True
            group.learner._compute = dict(group.learner._modules)
        while group.env_steps < WARMUP:
            group.iterate()
        for tr in group.trainers:
            pt = getattr(tr.agent, "pt", None)
            assert pt is not None
            pt.slot_source[[1, 2]] = 0  # tasks 0.2 and 0.3 act with task 0.1's policy
        # the one-off warm-ups, and every step kind run until its graph is captured
        for _ in range(2 * 250 + 10):
            group.iterate()
        learner = group.learner
        assert learner is not None
        learner.wait()
        timers = Timers(device)
        timers.sync()
        start, t0 = group.env_steps, time.perf_counter()
        while group.env_steps < start + steps:
            group.iterate()
        timers.sync()
        rate = (group.env_steps - start) / (time.perf_counter() - t0)
        if profile_rounds:  # before the breakdown's synchronising wrappers are installed
            profile(group, profile_rounds, device)
        if breakdown is not None:  # a shorter window with every part synchronised and timed
            timers.wrap(learner, "act", "acting")
            for tr in group.trainers:
                timers.wrap(tr, "collect_send", "collect")
                timers.wrap(tr, "after_collect", "collect")
            timers.wrap(group.collectors, "receive", "collect")
            timers.wrap(learner, "train_step", "learning")
            timers.wrap(group.store, "flush", "flush")
            timers.sync()
            start, t0 = group.env_steps, time.perf_counter()
            while group.env_steps < start + steps // 3:
                group.iterate()
            timers.sync()
            total = time.perf_counter() - t0
            t = timers.seconds
            parts = {
                "acting": t["acting"],
                "environments and replay queue": t["collect"],
                "replay copy to the GPU": t["flush"],
                "learning (TD3 + SIL, C+F, H)": t["learning"],
            }
            parts["rest (loop, logs)"] = total - sum(parts.values())
            breakdown.update({k: v / total for k, v in parts.items()})
        for tr in group.trainers:
            tr.close()
        return rate, rate * seeds


def profile(group, rounds: int, device: str) -> None:
    """``rounds`` more iterations under torch.profiler: the operators (and on CUDA the kernels)
    that take the most time, per round, and how many kernels a round launches."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    cuda = device.startswith("cuda")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=acts) as prof:
        for _ in range(rounds):
            group.iterate()
        if cuda:
            torch.cuda.synchronize()
    events = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    print(f"  profile of {rounds} rounds ({len(group.seeds)} seed(s)), per round:")
    if cuda:
        kernels = [e for e in events if e.device_type.name == "CUDA"]
        n = sum(e.count for e in kernels)
        busy = sum(e.self_device_time_total for e in kernels)
        print(f"    {n / rounds:.0f} GPU kernels and copies, {busy / rounds:.0f} us GPU busy")
    top = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:20]
    for e in top:
        print(
            f"    {getattr(e, key) / rounds:8.1f} us {e.count / rounds:7.1f} x  "
            f"cpu {e.self_cpu_time_total / rounds:8.1f} us  {e.key[:70]}"
        )
    if not cuda:  # the table above is the host's already
        return
    cpu = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    print("  host side (self CPU time per round):")
    for e in cpu:
        print(
            f"    {e.self_cpu_time_total / rounds:8.1f} us {e.count / rounds:7.1f} x  {e.key[:70]}"
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="torch device of every learner (cpu, cuda)")
    p.add_argument(
        "--only",
        choices=("all", "mcat", "baselines"),
        default="all",
        help="mcat: SB3 and the 5-task runs only; baselines: SB3, ctd3 and the baselines, 5 tasks",
    )
    p.add_argument(
        "--fast-seeds",
        type=int,
        nargs="*",
        default=[],
        metavar="S",
        help="also time full MCAT on the fast path with each of these numbers of seeds",
    )
    p.add_argument(
        "--fast-vector-envs",
        nargs="+",
        choices=VECTOR_MODES,
        default=["sync"],
        help="the fast path's environments: stepped in this process (sync), one subprocess "
        "each (async) or one worker subprocess per seed (worker), every seed's at once; each "
        "mode listed is timed",
    )
    p.add_argument(
        "--fast-act-ahead",
        action="store_true",
        help="also time each fast-path run with act_ahead (acting one round ahead of the "
        "gradient steps, which then overlap the environments)",
    )
    p.add_argument(
        "--fast-act-priority",
        action="store_true",
        help="also time each fast-path run with acting on a high-priority CUDA stream (CUDA only)",
    )
    p.add_argument(
        "--fast-before-36",
        action="store_true",
        help="also time the fast path's learner as it was before session 36 (every number of "
        "seeds vmapped, with vmap's own rule for linear layers: more kernels), with the first "
        "--fast-vector-envs mode and without act_ahead",
    )
    p.add_argument(
        "--fast-compile",
        action="store_true",
        help="also time each fast-path run with --compile (torch.compile), and with "
        "--fast-act-ahead also both together",
    )
    p.add_argument(
        "--fast-profile",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="profile this many rounds of each fast-path run after its timing (torch.profiler)",
    )
    p.add_argument(
        "--fast-runs",
        nargs="+",
        default=[],
        metavar="SEEDS[:MODE[:OPTIONS]]",
        help="the fast-path runs, in this order, instead of the combinations of --fast-seeds, "
        "--fast-vector-envs and the variant options (see the module docstring)",
    )
    args = p.parse_args()
    runs = [fast_run(spec) for spec in args.fast_runs]
    if runs and (
        args.fast_seeds
        or args.fast_act_ahead
        or args.fast_act_priority
        or args.fast_before_36
        or args.fast_compile
    ):
        raise SystemExit("--fast-runs names every fast-path run: leave out the other --fast-* runs")
    torch.set_num_threads(args.threads)
    dev = args.device
    sb3 = time_sb3(args.steps, dev)
    print(f"SB3 TD3, HalfCheetah, 1 task:                 {sb3:7.1f} env steps/s")
    if args.only == "all":
        one = time_ctd3(args.steps, [0.1], device=dev)
        print(
            f"mcat ctd3, 1 task:                             {one:7.1f} env steps/s  "
            f"({one / sb3:.2f} x SB3)"
        )
    five = time_ctd3(args.steps, None, device=dev)
    print(
        f"mcat ctd3, 5 tasks (halfcheetah-armature):     {five:7.1f} env steps/s  "
        f"({five / sb3:.2f} x SB3)"
    )
    if args.only == "baselines":
        for algo, agent in BASELINES.items():
            parts = {}
            rate = time_ctd3(args.steps, None, agent, dev, breakdown=parts, algo=algo)
            per_task = parts.pop("evaluation s/task")
            print(
                f"{algo}, 5 tasks:{' ' * (38 - len(algo))}{rate:7.1f} env steps/s  "
                f"({rate / sb3:.2f} x SB3, {rate / five:.2f} x ctd3)"
            )
            print(
                "  where its time goes: "
                + ", ".join(f"{k} {100 * v:.1f}%" for k, v in parts.items())
                + f"; one evaluation (adaptation included) takes {per_task:.1f} s per task"
            )
        print(f"torch {torch.__version__}, {args.threads} threads, device {dev}")
        return
    nopt = time_ctd3(args.steps, None, MCATConfig(policy_transfer=False), device=dev)
    print(
        f"MCAT without PT (ctd3 + SIL), 5 tasks:         {nopt:7.1f} env steps/s  "
        f"({nopt / sb3:.2f} x SB3)"
    )
    parts: dict[str, float] = {}
    full = time_ctd3(args.steps, None, MCATConfig(), device=dev, breakdown=parts)
    print(
        f"MCAT (SIL + H + PT, 2 of 5 tasks transferred): {full:7.1f} env steps/s  "
        f"({full / sb3:.2f} x SB3)"
    )
    print(
        "  where the full MCAT run's time goes: "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in parts.items())
    )
    if not runs:  # every combination of the --fast-* options
        variants = [frozenset()]
        if args.fast_act_priority:
            variants.append(frozenset({"priority"}))
        if args.fast_act_ahead:
            variants.append(frozenset({"ahead"}))
        if args.fast_before_36:
            variants.append(frozenset({"before36"}))
        if args.fast_compile:
            variants.append(frozenset({"compile"}))
            if args.fast_act_ahead:
                variants.append(frozenset({"ahead", "compile"}))
        runs = [
            (seeds, mode, options)
            for mode in args.fast_vector_envs
            for seeds in args.fast_seeds
            for options in variants
            if "before36" not in options or mode == args.fast_vector_envs[0]
        ]
    for seeds, mode, options in runs:
        parts = {}
        began = time.perf_counter()
        one, total = time_fast(
            args.steps,
            seeds,
            dev,
            breakdown=parts,
            vector_envs=mode,
            profile_rounds=args.fast_profile,
            act_priority="priority" in options,
            act_ahead="ahead" in options,
            before_36="before36" in options,
            compiled="compile" in options,
        )
        how = ", acting on a high-priority stream" if "priority" in options else ""
        how += ", act_ahead" if "ahead" in options else ""
        how += ", the learner before session 36" if "before36" in options else ""
        how += ", compiled" if "compile" in options else ""
        print(
            f"MCAT fast path, {seeds:2d} seed(s), {mode:5s} envs{how}: {one:7.1f} env "
            f"steps/s per seed, {total:8.1f} in all  ({total / sb3:.2f} x SB3, "
            f"{total / full:.2f} x MCAT above; the run took {time.perf_counter() - began:.0f} s)"
        )
        print(
            "  where its time goes: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in parts.items()),
            flush=True,
        )
    gpu = f", {torch.cuda.get_device_name()}" if dev.startswith("cuda") else ""
    print(f"torch {torch.__version__}, {args.threads} threads, device {dev}{gpu}")


if __name__ == "__main__":
    main()
