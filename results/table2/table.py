"""Table 2 (budgeted) from the runs: MCAT and MCAT w/o PT (results/table34/runs, reward delay
500) beside the baselines (results/table2/runs), test and train return, mean ± standard error
over seeds and per seed, the paper's Table 2 value beside each, and the test-task learning curves
of every method (seed mean, the paper's Fig. 3 style) in curves-FAMILY.png.

    .venv/bin/python results/table2/table.py [--family halfcheetah-armature] [--step N]

Each run is scored at ``--step`` (default: the budget, 300,000) or, if it has not got there yet,
at its latest evaluation; the "at" column says where, so an unfinished run is visible as such.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
TABLE34 = HERE.parent / "table34" / "runs"
METHODS = {  # name -> (label, run folder pattern)
    "mcat": ("MCAT", TABLE34 / "{family}-delay500-mcat-seed{seed}"),
    "nopt": ("MCAT w/o PT", TABLE34 / "{family}-delay500-nopt-seed{seed}"),
    "mql": ("MQL", HERE / "runs" / "{family}-mql-seed{seed}"),
    "pearl": ("PEARL", HERE / "runs" / "{family}-pearl-seed{seed}"),
    "distral": ("Distral", HERE / "runs" / "{family}-distral-seed{seed}"),
    "hipbmdp": ("HiP-BMDP", HERE / "runs" / "{family}-hipbmdp-seed{seed}"),
}
# the paper's Table 2 (test reward at 2M env steps, delayed reward); None: not in the paper
PAPER = {
    "halfcheetah-armature": {
        "mcat": 2071.5,
        "nopt": None,
        "mql": -77.9,
        "pearl": -18.8,
        "distral": 566.9,
        "hipbmdp": -102.4,
    },
}
SEEDS = (0, 1, 2)


def evaluations(run: Path) -> dict[int, dict[str, float]]:
    """step -> {split: mean return over the split's tasks}."""
    per: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(run / "metrics.csv") as f:
        for row in csv.DictReader(f):
            per[int(row["step"])][row["split"]].append(float(row["return"]))
    return {s: {k: float(np.mean(v)) for k, v in d.items()} for s, d in per.items()}


def mean_se(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    se = np.std(values, ddof=1) / np.sqrt(len(values))
    return f"{np.mean(values):.1f} ± {se:.1f}"


def plot(curves: dict[str, list[dict[int, float]]], family: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method, runs in curves.items():
        steps = sorted(set.intersection(*[set(r) for r in runs]))
        if not steps:
            continue
        values = np.array([[r[s] for s in steps] for r in runs])
        mean = values.mean(0)
        ax.plot(np.array(steps) / 1e3, mean, label=f"{METHODS[method][0]} ({len(runs)} seeds)")
        if len(runs) > 1:
            se = values.std(0, ddof=1) / np.sqrt(len(runs))
            ax.fill_between(np.array(steps) / 1e3, mean - se, mean + se, alpha=0.2)
    ax.set_xlabel("env steps (thousands)")
    ax.set_ylabel("test-task return")
    ax.set_title(f"{family}, reward delayed by 500 steps (mean ± s.e. over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="halfcheetah-armature")
    parser.add_argument("--step", type=int, default=300_000)
    args = parser.parse_args()
    paper = PAPER.get(args.family, {})
    print(
        "| method | test (ours) | train (ours) | per seed: test @ step | paper, 2M |\n"
        "| --- | --- | --- | --- | --- |"
    )
    curves: dict[str, list[dict[int, float]]] = {}
    for method, (label, pattern) in METHODS.items():
        tests, trains, cells, runs = [], [], [], []
        for seed in SEEDS:
            run = Path(str(pattern).format(family=args.family, seed=seed))
            if not (run / "metrics.csv").is_file():
                continue
            ev = evaluations(run)
            if not ev:
                continue
            at = args.step if args.step in ev else max(s for s in ev if s <= args.step)
            tests.append(ev[at]["test"])
            trains.append(ev[at]["train"])
            cells.append(f"s{seed}: {ev[at]['test']:.1f} @ {at // 1000}k")
            runs.append({s: v["test"] for s, v in ev.items() if s <= args.step})
        if runs:
            curves[method] = runs
        ref = paper.get(method)
        print(
            f"| {label} | {mean_se(tests)} | {mean_se(trains)} | {'; '.join(cells) or 'no run'} "
            f"| {'—' if ref is None else f'{ref:.1f}'} |"
        )
    if curves:
        out = HERE / f"curves-{args.family}.png"
        plot(curves, args.family, out)
        print(f"\nwrote {out.relative_to(HERE.parent.parent)}")


if __name__ == "__main__":
    main()
