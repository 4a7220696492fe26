"""The dense-reward competence table from the runs in results/baselines/runs (ALGO-seedS): each
algorithm's train and test return at the last step every listed run reached, its ratio to
ctd3's at the same step, and learning curves (curves.png).

    .venv/bin/python results/baselines/table.py

Returns are those of the runs' evaluations (metrics.csv: the mean over the split's tasks of 3
scored episodes per task, after the algorithm's adaptation episodes; see mcat.evaluation).
"""

from __future__ import annotations

import re
from pathlib import Path

from mcat.plot import plot_runs
from mcat.report import evaluations

HERE = Path(__file__).parent
NAME = re.compile(r"(?P<algo>.+)-seed(?P<seed>\d+)$")


def main() -> None:
    runs = sorted(
        d for d in (HERE / "runs").iterdir() if NAME.match(d.name) and (d / "metrics.csv").exists()
    )
    evals = {d.name: e for d in runs if (e := evaluations(d))}  # runs with an evaluation
    runs = [d for d in runs if d.name in evals]
    print("| run | last step | train | test | test / ctd3 (same step) |")
    print("| --- | --- | --- | --- | --- |")
    ctd3 = {
        int(NAME.match(n)["seed"]): e for n, e in evals.items() if NAME.match(n)["algo"] == "ctd3"
    }
    for name, ev in evals.items():
        seed = int(NAME.match(name)["seed"])
        step = max(ev)
        ratio = ""
        ref = ctd3.get(seed, {}).get(step, {}).get("test")
        if ref is not None and ref > 0 and NAME.match(name)["algo"] != "ctd3":
            ratio = f"{ev[step]['test'] / ref:.2f}"  # a ratio means little below zero
        print(f"| {name} | {step:,} | {ev[step]['train']:.1f} | {ev[step]['test']:.1f} | {ratio} |")
    plot_runs(runs, HERE / "curves.png", "halfcheetah-armature, dense reward")
    print(f"\ncurves: {HERE / 'curves.png'}")


if __name__ == "__main__":
    main()
