"""The table of a folder of joint G-and-H transfer results (results/cross_body: other bodies;
results/reward_goals: other rewards): per setting and translator, the mean over seeds of each
score in the summaries (± standard error over seeds), with the seeds.

    .venv/bin/python results/cross_body/table.py results/cross_body
    .venv/bin/python results/cross_body/table.py results/reward_goals
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

SCORES = (
    "source_on_source",
    "random_on_target",
    "data_policy_on_target",
    "source_on_target",
    "transferred_on_target",
)
NAMES = {"mcat": "ours (G, H jointly)", "dcc": "Zhang et al. 2020c (state and action maps)"}


def fmt(values: list[float]) -> str:
    v = np.asarray(values)
    if len(v) == 1:
        return f"{v[0]:.1f}"
    return f"{v.mean():.1f} ± {v.std(ddof=1) / np.sqrt(len(v)):.1f}"


def main(folder: Path) -> None:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for file in sorted(folder.glob("*/summary.json")):
        match = re.match(r"(.+)-seed(\d+)-(\w+)$", file.parent.name)
        if match:
            groups[(match[1], match[3])].append(json.loads(file.read_text()))
    scores = [k for k in SCORES if any(k in r for runs in groups.values() for r in runs)]
    print(
        "| setting | translator | seeds | " + " | ".join(k.replace("_", " ") for k in scores) + " |"
    )
    print("| --- | --- | --- | " + " | ".join("---" for _ in scores) + " |")
    for (setting, name), runs in sorted(groups.items()):
        cols = [fmt([r[k]["mean"] for r in runs]) if k in runs[0] else "" for k in scores]
        seeds = ", ".join(str(r["seed"]) for r in runs)
        print(f"| {setting} | {NAMES[name]} | {seeds} | " + " | ".join(cols) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
