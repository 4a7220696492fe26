"""Tables 3/4 from the runs in results/table34/runs: test (and train) return of MCAT and MCAT
without policy transfer, mean ± standard error over seeds, the improvement of PT as the paper
computes it ((with - without) / |without|), and learning-curve plots.

    .venv/bin/python results/table34/table.py [--step N] [--last K]

Rows compare runs at one step: by default the largest evaluated step that at least one run with
and one without PT have reached (runs still short of it are left out of that row; the seeds
column says which are in), or ``--step``. ``--last K`` scores each run by the mean of its last K
evaluations up to that step instead of the single one (less evaluation noise: 3 episodes per task
per evaluation); the default K = 1 is the paper's "reward at N timesteps".

The "Across delays" section puts each family's rows side by side with the paper's trend (PT helps
more as the reward gets sparser) and adds two counts that a single breakout run cannot swing the
way it swings a mean: in how many of the (MCAT run, MCAT w/o PT run) pairs MCAT's test return is
higher, and at how many evaluations from ``--from-step`` on the MCAT seed mean is ahead. It also
writes ``trend.png`` (improvement per delay, ours and the paper's).
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from mcat.report import evaluations

HERE = Path(__file__).parent
NAME = re.compile(r"(?P<family>.+)-delay(?P<delay>\d+)-(?P<variant>mcat|nopt)-seed(?P<seed>\d+)$")
PAPER = {  # Table 4 at 1M steps: MCAT w/o PT, MCAT (test reward); improvement as in the paper
    # (its Table 3 gives -364.3 for mass at delay 500 w/o PT, Table 4 -364.2)
    ("halfcheetah-armature", 200): (2583.2, 2251.8),
    ("halfcheetah-mass", 200): (709.6, 666.7),
    ("halfcheetah-armature", 350): (1771.7, 2004.5),
    ("halfcheetah-mass", 350): (156.6, 247.8),
    ("halfcheetah-armature", 500): (579.1, 1776.8),
    ("halfcheetah-mass", 500): (-364.2, 67.1),
}


def score(ev: dict[int, dict[str, float]], step: int, last: int) -> dict[str, float]:
    """split -> mean over the run's last ``last`` evaluations at or before ``step``."""
    steps = sorted(s for s in ev if s <= step)[-last:]
    return {split: float(np.mean([ev[s][split] for s in steps])) for split in ("test", "train")}


def transfer_stats(runs: list[Path], step: int) -> list[str]:
    """Who collected the MCAT runs' episodes up to ``step`` (transfer.csv), and the mean return of
    the transferred and the task's own episodes in each third of that span, all seeds pooled."""
    rows = []
    for run in runs:
        with open(run / "transfer.csv") as f:
            rows += [r for r in csv.DictReader(f) if int(r["step"]) <= step]
    if not rows:
        return []
    counts = {p: sum(r["policy"] == p for r in rows) for p in ("random", "own", "transfer")}
    lines = [
        f"{len(rows)} episodes in {len(runs)} run(s): "
        f"{counts['transfer']} by a transferred policy, "
        f"{counts['own']} by the task's own, {counts['random']} random (warm-up)"
    ]
    for lo, hi in ((0, step // 3), (step // 3, 2 * step // 3), (2 * step // 3, step)):
        part = {
            p: [float(r["return"]) for r in rows if r["policy"] == p and lo < int(r["step"]) <= hi]
            for p in ("own", "transfer")
        }
        lines.append(
            f"steps {lo // 1000}k-{hi // 1000}k: "
            f"transferred {np.mean(part['transfer']) if part['transfer'] else float('nan'):.1f} "
            f"({len(part['transfer'])} episodes), "
            f"own {np.mean(part['own']) if part['own'] else float('nan'):.1f} ({len(part['own'])})"
        )
    return lines


def evaluations_ahead(by: dict, step: int, from_step: int) -> tuple[int, int]:
    """(evaluations at which the MCAT seed mean of the test return is above the w/o-PT one, all
    evaluations from ``from_step`` to ``step`` that every run of the row has)."""
    evs = [ev for ev in by.values() if step in ev]
    steps = sorted(set.intersection(*[set(ev) for ev in evs]))
    steps = [s for s in steps if from_step <= s <= step]
    mean = {
        v: [
            np.mean([ev[s]["test"] for (vv, _), ev in by.items() if vv == v and step in ev])
            for s in steps
        ]
        for v in ("mcat", "nopt")
    }
    return sum(a > b for a, b in zip(mean["mcat"], mean["nopt"], strict=True)), len(steps)


def plot_trend(trend: dict, out: Path) -> None:
    """Improvement of PT per delay, ours at 300k and the paper's at 1M, one panel per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(trend), figsize=(5 * len(trend), 3.6), squeeze=False)
    for ax, (family, rows) in zip(axes[0], sorted(trend.items()), strict=True):
        rows = sorted(rows)
        delays = [r[0] for r in rows]
        ax.plot(
            delays, [r[1] for r in rows], "o-", label="ours (300k steps; see the table for seeds)"
        )
        paper = sorted(
            (d, 100 * (b - a) / abs(a)) for (f, d), (a, b) in PAPER.items() if f == family
        )
        ax.plot(
            [d for d, _ in paper],
            [v for _, v in paper],
            "s--",
            label="paper Table 4 (1M steps, 3 seeds)",
        )
        for d, _, pairs, _, _ in rows:
            ax.annotate(
                f"pairs {pairs}",
                (d, next(r[1] for r in rows if r[0] == d)),
                textcoords="offset points",
                xytext=(4, 6),
                fontsize=7,
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(sorted(set(delays) | {d for d, _ in paper}))
        ax.set_title(family)
        ax.set_xlabel("reward delay (steps)")
        ax.set_ylabel("PT improvement on test tasks (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def mean_se(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1) / np.sqrt(len(values)):.1f}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--step",
        type=int,
        help="compare at this env step (default: the last one all runs of a setting reached)",
    )
    p.add_argument(
        "--last",
        type=int,
        default=1,
        help="score a run by the mean of its last K evaluations up to the step (default 1)",
    )
    p.add_argument(
        "--from-step",
        type=int,
        default=100_000,
        help="count evaluations from this step on in 'Across delays' (default 100000)",
    )
    args = p.parse_args()
    if args.last < 1:
        p.error(f"--last must be at least 1, got {args.last}")
    runs = defaultdict(dict)  # (family, delay) -> {(variant, seed): evaluations}
    compared: dict[tuple[str, int], int] = {}  # the step each row compares at
    # family -> rows
    trend: dict[str, list[tuple[int, float, str, str, float | None]]] = defaultdict(list)
    for run in sorted((HERE / "runs").glob("*")):
        m = NAME.match(run.name)
        if m and (run / "metrics.csv").is_file():
            ev = evaluations(run)
            if ev:
                runs[(m["family"], int(m["delay"]))][(m["variant"], int(m["seed"]))] = ev
    print(
        "| family | delay | step | seeds (PT / no PT) | test: MCAT w/o PT | test: MCAT "
        "| improvement | train: MCAT w/o PT | train: MCAT | paper (1M): w/o PT -> MCAT |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (family, delay), by in sorted(runs.items()):
        reached = {
            v: set().union(*[set(ev) for (vv, _), ev in by.items() if vv == v])
            for v in ("mcat", "nopt")
        }
        common = reached["mcat"] & reached["nopt"]
        if not common:
            continue
        step = args.step or max(common)
        compared[(family, delay)] = step
        scores = {key: score(ev, step, args.last) for key, ev in sorted(by.items()) if step in ev}
        vals = {
            v: {
                split: [sc[split] for (vv, _), sc in scores.items() if vv == v]
                for split in ("test", "train")
            }
            for v in ("mcat", "nopt")
        }
        seeds = {v: [s for (vv, s) in scores if vv == v] for v in ("mcat", "nopt")}
        if not vals["mcat"]["test"] or not vals["nopt"]["test"]:
            continue
        with_pt, without = np.mean(vals["mcat"]["test"]), np.mean(vals["nopt"]["test"])
        paper = PAPER.get((family, delay))
        paper_txt = (
            f"{paper[0]} -> {paper[1]} ({100 * (paper[1] - paper[0]) / abs(paper[0]):+.1f}%)"
            if paper
            else "-"
        )
        print(
            f"| {family} | {delay} | {step:,} | "
            f"{','.join(map(str, seeds['mcat']))} / {','.join(map(str, seeds['nopt']))} | "
            f"{mean_se(vals['nopt']['test'])} | {mean_se(vals['mcat']['test'])} | "
            f"{100 * (with_pt - without) / abs(without):+.1f}% | "
            f"{mean_se(vals['nopt']['train'])} | {mean_se(vals['mcat']['train'])} | {paper_txt} |"
        )
        pairs = [a > b for a in vals["mcat"]["test"] for b in vals["nopt"]["test"]]
        ahead = evaluations_ahead(by, step, args.from_step)
        trend[family].append(
            (
                delay,
                100 * (with_pt - without) / abs(without),
                f"{sum(pairs)}/{len(pairs)}",
                f"{ahead[0]}/{ahead[1]}",
                100 * (paper[1] - paper[0]) / abs(paper[0]) if paper else None,
            )
        )
    if trend:
        print(
            "\nAcross delays (test tasks; "
            "run pairs: MCAT run ahead of MCAT w/o PT run at the compared step; "
            f"evaluations: seed means, from {args.from_step:,} steps on):\n"
        )
        print(
            "| family | delay | improvement (ours) | run pairs with MCAT ahead "
            "| evaluations with MCAT ahead | paper improvement (1M) |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for family, rows in sorted(trend.items()):
            for delay, imp, pairs, ahead, paper_imp in rows:
                print(
                    f"| {family} | {delay} | {imp:+.1f}% | {pairs} | {ahead} | "
                    f"{'-' if paper_imp is None else f'{paper_imp:+.1f}%'} |"
                )
    print(
        "\nPer seed at the compared step (test / train"
        f"{'' if args.last == 1 else f', mean of the last {args.last} evaluations'}):\n"
    )
    for (family, delay), step in sorted(compared.items()):
        for (variant, seed), ev in sorted(runs[(family, delay)].items()):
            if step in ev:
                name = "MCAT" if variant == "mcat" else "MCAT w/o PT"
                sc = score(ev, step, args.last)
                print(
                    f"- {family}, delay {delay}, {name}, seed {seed}: "
                    f"{sc['test']:.1f} / {sc['train']:.1f}"
                )
    print("\nPolicy transfer in the MCAT runs (transfer.csv):\n")
    for (family, delay), step in sorted(compared.items()):
        mcat_runs = [
            HERE / "runs" / f"{family}-delay{delay}-mcat-seed{seed}"
            for (v, seed), ev in sorted(runs[(family, delay)].items())
            if v == "mcat" and step in ev
        ]
        for line in transfer_stats([r for r in mcat_runs if (r / "transfer.csv").is_file()], step):
            print(f"- {family}, delay {delay}: {line}")
    try:
        from mcat.plot import plot_runs
    except ImportError:
        return
    if trend:
        plot_trend(trend, HERE / "trend.png")
        print(f"wrote {(HERE / 'trend.png').relative_to(HERE.parent.parent)}")
    for (family, delay), step in sorted(compared.items()):
        # only runs that reached the compared step (the plot keeps the steps every seed has)
        dirs = [
            d
            for d in sorted((HERE / "runs").glob(f"{family}-delay{delay}-*-seed*"))
            if step in evaluations(d)
        ]
        png = HERE / f"curves-{family}-delay{delay}.png"
        plot_runs(dirs, png, title=f"{family}, delay {delay}: MCAT vs MCAT w/o PT")
        print(f"wrote {png.relative_to(HERE.parent.parent)}")


if __name__ == "__main__":
    main()
