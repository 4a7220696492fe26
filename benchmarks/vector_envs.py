"""The collector's three vector modes, measured in one run on HalfCheetah armature (5 training
tasks, one slot each): raw collection with random actions (the policy costs nothing) and env
steps/s while learning (``mcat train`` with ctd3, after the random warm-up). Sync steps the five
environments in this process in turn; async steps each in its own subprocess, paying a pipe round
trip per environment and step in exchange for parallel stepping; worker steps all five in one
subprocess, one round trip per step (what pays in the fast path's ``--seeds``, where every seed's
worker steps at once).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vector_envs.py [--rounds 400] [--train-steps 6000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mcat.collect import Collector
from mcat.tasks import get_family

MODES = ("sync", "async", "worker")


class _Discard:
    def add(self, *args, **kwargs) -> None:
        pass


def raw(mode: str, rounds: int) -> float:
    fam = get_family("halfcheetah-armature")
    col = Collector(fam, list(fam.train_tasks), 10, vector_envs=mode)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (rounds, col.n, col.act_dim)).astype(np.float32)
    try:
        t0 = time.perf_counter()
        for k in range(rounds):
            col.step(_Discard(), lambda o, c, a=actions[k]: a)  # type: ignore[arg-type]
        return rounds * col.n / (time.perf_counter() - t0)
    finally:
        col.close()


def learning(mode: str, steps: int, threads: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        subprocess.run(
            [sys.executable, "-m", "mcat.cli", "train", "halfcheetah-armature", "--algo", "ctd3",
             "--steps", str(steps), "--learning-starts", "1000", "--eval-every", str(steps),
             "--threads", str(threads), "--vector-envs", mode, "--out", str(out)],
            check=True, capture_output=True,
        )  # fmt: skip
        return float(json.loads((out / "summary.json").read_text())["env_steps_per_s"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=400, help="collection rounds (5 env steps each)")
    p.add_argument("--train-steps", type=int, default=6000, help="env steps of each training run")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the training runs")
    args = p.parse_args()
    print(f"{os.cpu_count()} CPUs; HalfCheetah armature, 5 tasks, one environment each")
    rates = {m: raw(m, args.rounds) for m in MODES}
    for m, r in rates.items():
        print(f"raw collection, {m:6s}: {r:7.0f} env steps/s")
    print("  " + ", ".join(f"{m} / sync: {rates[m] / rates['sync']:.2f}" for m in MODES[1:]))
    rates = {m: learning(m, args.train_steps, args.threads) for m in MODES}
    for m, r in rates.items():
        print(f"while learning (ctd3, {args.train_steps} steps), {m:6s}: {r:6.1f} env steps/s")
    print("  " + ", ".join(f"{m} / sync: {rates[m] / rates['sync']:.2f}" for m in MODES[1:]))


if __name__ == "__main__":
    main()
