"""Ray's overhead in `mcat sweep`: the same short runs launched directly (`mcat train`, CONCURRENCY
at a time) and as one sweep on a local Ray (started and stopped by the command, one CPU per
trial), wall time of each and their ratio, in one process on one machine.

    .venv/bin/python benchmarks/sweep_overhead.py [--runs 12] [--steps 600] [--concurrency 2]

Runs: point-gain td3 (small networks, 50-step episodes), seeds 0..RUNS-1, one torch thread each.
Both arms write ordinary run folders in a temporary directory; their metrics are compared too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BASE = {
    "family": "point-gain",
    "algo": "td3",
    "learning_starts": 200,
    "checkpoint_every": 300,
    "threads": 1,
    "agent": {"hidden": [64, 64], "batch_size": 64},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=12)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--concurrency", type=int, default=2)
    args = p.parse_args()
    base = {**BASE, "steps": args.steps, "eval_every": args.steps}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = {"name": "overhead", "base": base, "grid": {"seed": list(range(args.runs))}}
        (root / "spec.json").write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "mcat.cli"]

        def direct(seed: int) -> None:
            config = root / f"config{seed}.json"
            config.write_text(json.dumps({**base, "seed": seed}))
            out = root / "direct" / f"seed{seed}"
            subprocess.run(
                [*cmd, "train", "--config", str(config), "--out", str(out), "--quiet"],
                env=env,
                check=True,
                capture_output=True,
            )

        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(direct, range(args.runs)))
        t_direct = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(
            [*cmd, "sweep", str(root / "spec.json"), "--out", str(root / "sweep")],
            env=env,
            check=True,
            capture_output=True,
        )
        t_sweep = time.perf_counter() - start
        same = all(
            (root / "direct" / f"seed{s}" / "metrics.csv").read_bytes()
            == (root / "sweep" / f"seed{s}" / "metrics.csv").read_bytes()
            for s in range(args.runs)
        )
    print(
        f"{args.runs} runs of {args.steps} steps, {args.concurrency} at a time on "
        f"{os.cpu_count()} CPUs: direct {t_direct:.1f} s, sweep on Ray {t_sweep:.1f} s, "
        f"ratio {t_sweep / t_direct:.2f}; metrics identical: {same}"
    )


if __name__ == "__main__":
    main()
