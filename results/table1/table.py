"""Table 1 from the result folders next to this file: per setting and translator, the mean over
seeds of each number (± standard error over seeds) and the ratio transferred / source on target.

    .venv/bin/python results/table1/table.py
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
KEYS = ("source_on_source", "source_on_target", "transferred_on_target")
NAMES = {"nll": "ours, NLL (Eq. 3)", "l1": "ours, L1 (authors' code)", "dcc": "Zhang et al. 2020c"}


def fmt(values: list[float]) -> str:
    v = np.asarray(values)
    return (
        f"{v.mean():.1f} ± {v.std(ddof=1) / np.sqrt(len(v)):.1f}"
        if len(v) > 1
        else f"{v.mean():.1f}"
    )


def result_groups(pattern: str) -> list[tuple[str, str, list[tuple[int, Path]]]]:
    """The files next to this script matching ``pattern`` (in folders named
    SETTING-seedS-TRANSLATOR) as (setting, translator, [(seed, file), ...]), in table order."""
    groups: dict[tuple[str, str], list[tuple[int, Path]]] = defaultdict(list)
    for file in sorted(HERE.glob(pattern)):
        match = re.match(r"(.+)-seed(\d+)-(\w+)$", file.parent.name)
        if match:
            groups[(match[1], match[3])].append((int(match[2]), file))
    order = sorted(groups, key=lambda k: (k[0], list(NAMES).index(k[1])))
    return [(setting, name, groups[setting, name]) for setting, name in order]


def main() -> None:
    print(
        "| setting | translator | seeds | source on source | source on target "
        "| transferred on target | ratio transferred / source on target (per seed) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for setting, name, files in result_groups("*/summary.json"):
        runs = [json.loads(file.read_text()) for _, file in files]
        cols = [fmt([r[k]["mean"] for r in runs]) for k in KEYS]
        seeds = ", ".join(str(r["seed"]) for r in runs)
        if any(r["source_on_target"]["mean"] == 0 for r in runs):  # Meta-World: no ratio of 0
            ratio = "n/a (the source scores 0 on the target)"
        else:
            ratios = [
                r["transferred_on_target"]["mean"] / r["source_on_target"]["mean"] for r in runs
            ]
            ratio = f"{np.mean(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})"
        print(f"| {setting} | {NAMES[name]} | {seeds} | {' | '.join(cols)} | {ratio} |")


if __name__ == "__main__":
    main()
