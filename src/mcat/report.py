"""`mcat report`: one markdown report (with PNG curves) for any set of runs or sweeps.

Runs are grouped by **setting** (family and reward delay) and **method** (the algorithm, with
MCAT's ablations and a baseline's ``+SIL``), seeds pooled. Each run is scored by its evaluation at
``step`` (default: its last evaluation; a run short of ``step`` is scored at its last one and
marked, as is every figure that pools it). Per setting and method: the test (and train) return as
mean ± standard error over seeds with every seed's value, the interquartile mean (IQM) with a 95%
stratified-bootstrap interval, and the paper's number where the setting is one of its tables
(``mcat/data/paper_results.json``). Across settings: the probability of improvement of MCAT over
each other method, P(X > Y) + P(X = Y)/2 for runs X of MCAT and Y of the other method on the same
setting, averaged over settings, with a 95% stratified-bootstrap interval (Agarwal et al. 2021,
"Deep RL at the edge of the statistical precipice"; computed here with NumPy as their ``rliable``
library defines them).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcat.errors import MCATError
from mcat.runs import atomic_write_bytes, load_run_config, read_metrics

PAPER = Path(__file__).parent / "data" / "paper_results.json"
NAMES = {
    "mcat": "MCAT",
    "ctd3": "ctd3",
    "td3": "TD3",
    "pearl": "PEARL",
    "mql": "MQL",
    "distral": "Distral",
    "hipbmdp": "HiP-BMDP",
}
BOOTSTRAP_REPS = 2000


@dataclass(frozen=True)
class Scored:
    run: Path
    setting: str  # "family, delay D"
    family: str
    delay: int
    method: str  # paper-style name, e.g. "MCAT w/o PT"
    seed: int
    step: int  # the evaluation scored
    short: bool  # the run has not reached the asked step
    test: float
    train: float
    curve: dict[int, float]  # step -> mean test return


def method_name(run: Path) -> str:
    cfg = load_run_config(run)
    name = NAMES.get(cfg.algo, cfg.algo)
    agent = cfg.agent
    if cfg.algo == "mcat":
        off = [k for k, on in (("PT", agent.policy_transfer), ("SIL", agent.sil)) if not on]
        name += "".join(f" w/o {k}" for k in off)
    elif getattr(agent, "sil", False):
        name += " +SIL"
    return name


def evaluations(run: Path) -> dict[int, dict[str, float]]:
    """step -> split -> mean return over the split's tasks, from a run's metrics.csv."""
    per: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in read_metrics(run):
        per[row["step"]][row["split"]].append(row["return"])
    return {s: {k: float(np.mean(v)) for k, v in d.items()} for s, d in per.items()}


def score_runs(runs: Sequence[Path], step: int | None = None) -> list[Scored]:
    """Every run with at least one evaluation, scored at ``step`` (or its last evaluation)."""
    out = []
    for run in runs:
        if not (run / "metrics.csv").is_file():
            continue
        ev = evaluations(run)
        ev = {s: v for s, v in ev.items() if "test" in v and "train" in v}
        if not ev:
            continue
        cfg = load_run_config(run)
        upto = [s for s in ev if step is None or s <= step]
        if not upto:
            continue
        at = max(upto)
        out.append(
            Scored(
                run,
                f"{cfg.family}, delay {cfg.reward_delay}",
                cfg.family,
                cfg.reward_delay,
                method_name(run),
                cfg.seed,
                at,
                step is not None and at < step,
                ev[at]["test"],
                ev[at]["train"],
                {s: v["test"] for s, v in sorted(ev.items()) if s <= at},
            )
        )
    return out


# ---------------------------------------------------------------------------- statistics
def iqm(x: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle half (scipy's trim_mean with 25% cut, the
    definition rliable uses: int(n / 4) values cut from each end)."""
    x = np.sort(np.asarray(x, dtype=float).ravel())
    cut = int(0.25 * len(x))
    return float(x[cut : len(x) - cut].mean())


def stratified_bootstrap(
    groups: Sequence[np.ndarray],
    statistic: Callable[[list[np.ndarray]], float],
    reps: int = BOOTSTRAP_REPS,
    seed: int = 0,
) -> tuple[float, float]:
    """95% percentile interval of ``statistic`` when each group (a setting's runs) is resampled
    with replacement on its own."""
    rng = np.random.default_rng(seed)
    values = np.empty(reps)
    for r in range(reps):
        values[r] = statistic([g[rng.integers(0, len(g), len(g))] for g in groups])
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def probability_of_improvement(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> float:
    """Mean over settings of P(X > Y) + P(X = Y) / 2 (X, Y: runs of two methods on a setting)."""
    per = []
    for x, y in zip(xs, ys, strict=True):
        diff = np.asarray(x)[:, None] - np.asarray(y)[None, :]
        per.append(float(((diff > 0) + 0.5 * (diff == 0)).mean()))
    return float(np.mean(per))


def poi_interval(
    xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], reps: int = BOOTSTRAP_REPS
) -> tuple[float, float]:
    """95% stratified-bootstrap interval of :func:`probability_of_improvement` (the runs of
    each method on each setting resampled independently)."""
    k = len(xs)
    return stratified_bootstrap(
        [*xs, *ys], lambda g: probability_of_improvement(g[:k], g[k:]), reps
    )


# ---------------------------------------------------------------------------- the paper
PAPER_TABLES = ("table2", "table3", "table4")


def paper_value(
    family: str, delay: int, method: str, tables: Sequence[str] = PAPER_TABLES
) -> tuple[float, str] | None:
    """The paper's test reward for this setting and method, and where it is from: the first of
    ``tables`` (in the order Table 4, 2, 3 unless one is asked for) that has it."""
    data = json.loads(PAPER.read_text())
    key = method.lower().replace("mcat w/o pt", "mcat w/o PT").replace("hip-bmdp", "hipbmdp")
    candidates = [("table4", f"{family}@{delay}", "Table 4, 1M")]
    if delay == 500:
        candidates += [("table2", family, "Table 2, 2M"), ("table3", family, "Table 3, 1M")]
    for table, row, where in (c for c in candidates if c[0] in tables):
        value = data[table]["results"].get(row, {}).get(key)
        if value is not None:
            return float(value), where
    return None


# ---------------------------------------------------------------------------- the report
def _mean_se(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1) / np.sqrt(len(values)):.1f}"


def curves(runs: Sequence[Scored]) -> tuple[list[int], np.ndarray, list[tuple[int, list[int]]]]:
    """A method's test-task curves: the steps every run evaluated, the runs' returns there
    [runs, steps], and for each run that went further, (its index, its steps from the last
    common one on), so that a seed ahead of the others is still drawn."""
    steps = sorted(set.intersection(*[set(r.curve) for r in runs]))
    values = np.array([[r.curve[s] for s in steps] for r in runs])
    ahead = []
    for i, r in enumerate(runs):
        after = [s for s in sorted(r.curve) if steps and s >= steps[-1]]
        if len(after) > 1:
            ahead.append((i, after))
    return steps, values, ahead


def _plot(setting: str, rows: dict[str, list[Scored]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method, runs in sorted(rows.items()):
        steps, values, ahead = curves(runs)
        if not steps:
            continue
        x, mean = np.array(steps) / 1e3, values.mean(0)
        label = f"{method} ({len(runs)} seed{'s' * (len(runs) > 1)}"
        label += "; dashed: seeds past the others)" if ahead else ")"
        (line,) = ax.plot(x, mean, label=label)
        if len(runs) > 1:
            se = values.std(0, ddof=1) / np.sqrt(len(runs))
            ax.fill_between(x, mean - se, mean + se, color=line.get_color(), alpha=0.2)
        for i, after in ahead:
            y = [runs[i].curve[s] for s in after]
            ax.plot(np.array(after) / 1e3, y, color=line.get_color(), lw=0.8, ls="--")
    ax.set_xlabel("env steps (thousands)")
    ax.set_ylabel("test-task return")
    ax.set_title(setting)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_report(
    runs: Sequence[Path],
    out: Path,
    step: int | None = None,
    paper_tables: Sequence[str] = PAPER_TABLES,
) -> str:
    """Write the report to ``out`` (markdown; curves as PNGs beside it) and return its text;
    the paper's numbers come from ``paper_tables``."""
    scored = score_runs(runs, step)
    if not scored:
        raise MCATError("no evaluated runs to report (each needs a metrics.csv with evaluations)")
    out.parent.mkdir(parents=True, exist_ok=True)
    by: dict[str, dict[str, list[Scored]]] = defaultdict(lambda: defaultdict(list))
    for s in scored:
        by[s.setting][s.method].append(s)
    lines = [
        "# mcat report",
        "",
        f"{len(scored)} runs, {len(by)} setting{'s' * (len(by) > 1)}; each run scored at "
        + (f"step {step:,}" if step else "its last evaluation")
        + " (* marks a run short of that step, and a figure that pools one). Returns: mean over "
        "the split's tasks; ± is the standard error over seeds; IQM with a 95% stratified-"
        "bootstrap interval over seeds.",
        "",
    ]
    for setting in sorted(by):
        rows = by[setting]
        any_run = next(iter(rows.values()))[0]
        lines += [
            f"## {setting}",
            "",
            "| method | test | train | IQM test [95% CI] | seeds: test @ step | paper |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for method in sorted(rows):
            runs_ = sorted(rows[method], key=lambda r: r.seed)
            tests = np.array([r.test for r in runs_])
            lo, hi = stratified_bootstrap([tests], lambda g: iqm(g[0]))
            seeds = "; ".join(
                f"s{r.seed}: {r.test:.1f} @ {r.step // 1000}k{'*' * r.short}" for r in runs_
            )
            ref = paper_value(any_run.family, any_run.delay, method, paper_tables)
            paper = f"{ref[0]:.1f} ({ref[1]})" if ref else "—"
            star = "*" * any(r.short for r in runs_)  # a figure that pools an unfinished run
            lines.append(
                f"| {method} | {_mean_se(tests.tolist())}{star} | "
                f"{_mean_se([r.train for r in runs_])}{star} | "
                f"{iqm(tests):.1f} [{lo:.1f}, {hi:.1f}]{star} | {seeds} | {paper} |"
            )
        png = out.with_name(f"{out.stem}-{_slug(setting)}.png")
        _plot(setting, rows, png)
        lines += ["", f"![{setting}]({png.name})", ""]
    others = sorted({m for rows in by.values() for m in rows} - {"MCAT"})
    pairs = []
    for other in others:
        both = [rows for rows in by.values() if "MCAT" in rows and other in rows]
        if not both:
            continue
        xs = [np.array([r.test for r in rows["MCAT"]]) for rows in both]
        ys = [np.array([r.test for r in rows[other]]) for rows in both]
        lo, hi = poi_interval(xs, ys)
        star = "*" * any(r.short for rows in both for r in [*rows["MCAT"], *rows[other]])
        pairs.append(
            f"| {other} | {probability_of_improvement(xs, ys):.2f} [{lo:.2f}, {hi:.2f}]{star} "
            f"| {len(both)} |"
        )
    if pairs:
        lines += [
            "## Probability of improvement of MCAT (test return)",
            "",
            "| over | P(MCAT > other) [95% CI] | settings |",
            "| --- | --- | --- |",
            *pairs,
            "",
        ]
    text = "\n".join(lines)
    atomic_write_bytes(out, text.encode())
    return text


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").replace("--", "-")
