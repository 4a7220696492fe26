"""Correctness bar of context-conditioned TD3: on one task with dense reward (HalfCheetah,
armature 0.1 = gymnasium's default), ctd3 should learn like a standard TD3. Runs ctd3 and
Stable-Baselines3's TD3 with the same settings side by side and reports the evaluation returns.

    .venv/bin/pip install stable-baselines3          # benchmark-only dependency
    # one run per call (resumable: done runs are skipped)
    .venv/bin/python benchmarks/td3_vs_sb3.py run --algo ctd3 --seed 0
    .venv/bin/python benchmarks/td3_vs_sb3.py run --algo sb3 --seed 0
    .venv/bin/python benchmarks/td3_vs_sb3.py report                      # table over seeds

Shared settings: 256-256 networks, batch 256, Adam 3e-4, gamma 0.99, tau 0.005, policy delay 2,
target noise 0.2 clipped at 0.5, Gaussian exploration noise 0.1, 10,000 random steps first, one
gradient step per env step, 100,000 env steps; evaluation every 10,000 steps with 10 episodes of
the deterministic policy on the same seeded episodes (mcat.collect.evaluate).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mcat.agents.ctd3 import CTD3Config
from mcat.collect import evaluate
from mcat.config import RunConfig
from mcat.tasks import get_family

FAMILY, TASK = "halfcheetah-armature", 0.1
OUT = Path("results/td3_vs_sb3")


def run_ctd3(seed: int, steps: int, eval_every: int, episodes: int, threads: int) -> dict:
    from mcat.runs import read_metrics
    from mcat.train import train

    cfg = RunConfig(
        family=FAMILY,
        steps=steps,
        seed=seed,
        train_tasks=[TASK],
        test_tasks=[],
        learning_starts=10_000,
        eval_every=eval_every,
        eval_episodes=episodes,
        threads=threads,
        checkpoint_every=steps,
        agent=CTD3Config(),
    )
    run_dir = OUT / "runs" / f"ctd3-seed{seed}"
    t0 = time.perf_counter()
    train(cfg, run_dir, overwrite=True)
    wall = time.perf_counter() - t0
    curve = [[r["step"], r["return"]] for r in read_metrics(run_dir)]
    return {"curve": curve, "wall_s": wall}


def run_sb3(seed: int, steps: int, eval_every: int, episodes: int, threads: int) -> dict:
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    torch.set_num_threads(threads)
    family = get_family(FAMILY)
    env = family.make_env(TASK, seed=seed)
    model = TD3(
        "MlpPolicy",
        env,
        learning_rate=3e-4,
        buffer_size=steps,
        learning_starts=10_000,
        batch_size=256,
        tau=0.005,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        policy_delay=2,
        target_policy_noise=0.2,
        target_noise_clip=0.5,
        action_noise=NormalActionNoise(np.zeros(6), 0.1 * np.ones(6)),
        policy_kwargs={"net_arch": [256, 256]},
        seed=seed,
        verbose=0,
        device="cpu",
    )
    act = lambda obs, z: model.predict(obs, deterministic=True)[0]  # noqa: E731
    curve, t0, eval_s = [], time.perf_counter(), 0.0
    while model.num_timesteps < steps:
        model.learn(eval_every, reset_num_timesteps=False)
        e0 = time.perf_counter()
        ret = evaluate(
            family, [TASK], lambda *a: None, act, history=1, episodes=episodes, seed=seed
        )[TASK]
        eval_s += time.perf_counter() - e0
        curve.append([int(model.num_timesteps), ret])
        print(f"sb3 seed {seed}: {model.num_timesteps} steps, return {ret:.1f}", flush=True)
    return {"curve": curve, "wall_s": time.perf_counter() - t0, "eval_s": eval_s}


def cmd_run(args: argparse.Namespace) -> None:
    path = OUT / f"{args.algo}-seed{args.seed}.json"
    if path.exists() and not args.force:
        print(f"{path} exists, skipping (use --force to redo)")
        return
    fn = run_ctd3 if args.algo == "ctd3" else run_sb3
    result = fn(args.seed, args.steps, args.eval_every, args.episodes, args.threads)
    result.update(
        algo=args.algo,
        seed=args.seed,
        steps=args.steps,
        final_return=result["curve"][-1][1],
        threads=args.threads,
    )
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}: final return {result['final_return']:.1f}, {result['wall_s']:.0f} s")


def cmd_report(args: argparse.Namespace) -> None:
    results = [json.loads(p.read_text()) for p in sorted(OUT.glob("*-seed*.json"))]
    lines = [
        "| algo | seeds | "
        + " | ".join(f"{s // 1000}k" for s, _ in results[0]["curve"])
        + " | wall (s) |",
        "| --- | --- | " + " | ".join("---" for _ in results[0]["curve"]) + " | --- |",
    ]
    for algo in ("ctd3", "sb3"):
        runs = [r for r in results if r["algo"] == algo]
        if not runs:
            continue
        values = np.array([[v for _, v in r["curve"]] for r in runs])
        cells = [f"{m:.0f} ± {s:.0f}" for m, s in zip(values.mean(0), values.std(0), strict=True)]
        lines.append(
            f"| {algo} | {len(runs)} | "
            + " | ".join(cells)
            + f" | {np.mean([r['wall_s'] for r in runs]):.0f} |"
        )
        finals = ", ".join(f"{r['final_return']:.0f}" for r in runs)
        print(f"{algo}: final returns per seed: {finals}")
    print("\n".join(lines))
    print("(mean ± std over seeds of the evaluation return, 10 episodes each)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--algo", choices=("ctd3", "sb3"), required=True)
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--steps", type=int, default=100_000)
    r.add_argument("--eval-every", type=int, default=10_000)
    r.add_argument("--episodes", type=int, default=10)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--force", action="store_true")
    r.set_defaults(func=cmd_run)
    sub.add_parser("report").set_defaults(func=cmd_report)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
