"""Learning curves from run directories: mean and spread over seeds, train and test split."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from mcat.errors import MCATError
from mcat.runs import load_run_config, read_metrics
from mcat.validation import check_writable_file

PLOT_SUFFIXES = (".png", ".pdf", ".svg")  # the formats matplotlib's Agg backend writes


def run_label(run_dir: Path) -> str:
    """The group a run is plotted in: algo (with MCAT's ablations), family and delay."""
    cfg = load_run_config(run_dir)
    algo = cfg.algo
    if algo == "mcat":
        off = [
            name
            for name, on in (("PT", cfg.agent.policy_transfer), ("SIL", cfg.agent.sil))
            if not on
        ]
        algo += "".join(f" w/o {name}" for name in off)
    elif getattr(cfg.agent, "sil", False):  # a baseline with --sil
        algo += " +SIL"
    if getattr(cfg.agent, "contrastive_weight", 1.0) == 0:
        algo += " w/o contrastive"
    return f"{algo} {cfg.family} delay {cfg.reward_delay}"


def curves(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (steps, mean return over the split's tasks at each evaluation)."""
    by_split: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in read_metrics(run_dir):
        by_split[row["split"]][row["step"]].append(row["return"])
    return {
        split: (np.array(sorted(steps)), np.array([np.mean(steps[s]) for s in sorted(steps)]))
        for split, steps in by_split.items()
    }


def plot_runs(
    run_dirs: list[Path], out: Path, title: str | None = None
) -> dict[str, dict[str, int]]:
    """Plot runs grouped by (algo, family, delay): a line for the mean over seeds and a band for
    the standard error, one panel per split. Returns the number of seeds per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not run_dirs:
        raise MCATError("plot needs at least one run directory")
    out = check_writable_file(Path(out), "plot file", PLOT_SUFFIXES)
    groups: dict[str, list[dict]] = defaultdict(list)
    for d in run_dirs:
        groups[run_label(Path(d))].append(curves(Path(d)))
    splits = [s for s in ("train", "test") if any(s in c for runs in groups.values() for c in runs)]
    if not splits:
        raise MCATError("the runs have no evaluations to plot yet")
    fig, axes = plt.subplots(1, len(splits), figsize=(6 * len(splits), 4), squeeze=False)
    counts: dict[str, dict[str, int]] = {}
    for ax, split in zip(axes[0], splits, strict=True):
        for label, runs in groups.items():
            runs = [r[split] for r in runs if split in r]
            if not runs:
                continue
            steps = runs[0][0]
            for s, _ in runs[1:]:
                steps = np.intersect1d(steps, s)  # evaluation steps every seed has
            values = np.stack([v[np.isin(s, steps)] for s, v in runs])
            mean = values.mean(0)
            n = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
            (line,) = ax.plot(steps, mean, label=f"{label} ({n})")
            if len(runs) > 1:
                # the band in its line's colour (bands have a colour cycle of their own)
                err = values.std(0, ddof=1) / np.sqrt(len(runs))
                ax.fill_between(steps, mean - err, mean + err, color=line.get_color(), alpha=0.25)
            counts.setdefault(label, {})[split] = len(runs)
        ax.set_title(f"{split} tasks" + (f" - {title}" if title else ""))
        ax.set_xlabel("environment steps (all training tasks)")
        ax.set_ylabel("mean episode return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out)
    return counts


def _save(fig, out: Path) -> None:
    """To a temporary file renamed into place: a failed save leaves no half-written picture."""
    import matplotlib.pyplot as plt

    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MCATError(f"cannot write plot file {out}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def plot_paths(panels: dict[str, dict[str, np.ndarray]], out: Path, title: str = "") -> None:
    """Paths seen from above (paper Fig. 4), one panel per episode: ``panels[name]`` maps
    ``"effector"``, ``"object"`` and ``"goal"`` to [steps, 3] positions (x, y, z)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = check_writable_file(Path(out), "plot file", PLOT_SUFFIXES)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    every = [np.concatenate([v[:, :2] for v in p.values()]) for p in panels.values()]
    low, high = np.min([e.min(0) for e in every], 0), np.max([e.max(0) for e in every], 0)
    # a square window around everything (equal scales; a path that hardly moves in x would
    # otherwise leave a sliver of a panel)
    half = 0.55 * (high - low).max() + 1e-3
    centre = (low + high) / 2
    for ax, (name, p) in zip(axes[0], panels.items(), strict=True):
        hand, obj, goal = p["effector"], p["object"], p["goal"]
        ax.scatter(hand[:, 0], hand[:, 1], c=np.arange(len(hand)), cmap="viridis", s=4)
        ax.plot(hand[:, 0], hand[:, 1], color="tab:green", lw=0.6, alpha=0.5, label="end effector")
        ax.plot(obj[:, 0], obj[:, 1], color="tab:red", lw=1.5, label="object")
        ax.scatter(*obj[0, :2], color="tab:red", marker="o", s=30)
        ax.scatter(*goal[0, :2], color="black", marker="*", s=120, label="goal")
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_aspect("equal")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("x (m)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("y (m)")
    axes[0][0].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, out)
