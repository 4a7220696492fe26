"""A graded reading of the Meta-World rows, whose sparse reward is 0 for every policy that never
gets the object to its goal: from each result's `paths.npz` (the first scored episode of each
policy, `mcat transfer`'s Fig. 4 data), the object's distance to the goal at the start, at its
closest and at the end, for the source policy on the target and the transferred policy on the
target; per setting and translator, the mean over seeds (and each seed's closest approach).

    .venv/bin/python results/table1/mw_distances.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from table import NAMES, result_groups

EPISODES = {"1": "source on target", "2": "transferred on target"}  # paths.npz's prefixes


def distances(file: Path, episode: str) -> tuple[float, float, float]:
    """The object's distance to the goal (m): at the start, the least, at the end."""
    with np.load(file) as paths:
        d = np.linalg.norm(paths[f"{episode}_object"] - paths[f"{episode}_goal"], axis=1)
    return float(d[0]), float(d.min()), float(d[-1])


def main() -> None:
    print(
        "| setting | translator | seeds | start | source on target: closest / end "
        "| transferred on target: closest / end | transferred closest, per seed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for setting, name, files in result_groups("metaworld-*/paths.npz"):
        runs = [(seed, {e: distances(file, e) for e in EPISODES}) for seed, file in files]
        mean = {(e, i): np.mean([per[e][i] for _, per in runs]) for e in EPISODES for i in range(3)}
        seeds = ", ".join(str(s) for s, _ in runs)
        each = ", ".join(f"s{s}: {per['2'][1]:.3f}" for s, per in runs)
        print(
            f"| {setting} | {NAMES[name]} | {seeds} | {mean['1', 0]:.3f} "
            f"| {mean['1', 1]:.3f} / {mean['1', 2]:.3f} "
            f"| {mean['2', 1]:.3f} / {mean['2', 2]:.3f} | {each} |"
        )


if __name__ == "__main__":
    main()
