"""Markdown tables of the Fig. 5 matrices in results/fig5/*/summary.json (used for README.md).

.venv/bin/python results/fig5/table.py              # the tables
.venv/bin/python results/fig5/table.py --heatmaps   # also redraw each improvement.png
                                                    # from its results
"""

import json
import sys
from pathlib import Path

import numpy as np

from mcat.experiments.transfer_matrix import MatrixConfig, heatmap, heatmap_title

HERE = Path(__file__).parent


def cells(summary: dict) -> dict:
    """(source, target) -> that pair's row of the summary."""
    return {(p["source"], p["target"]): p for p in summary["pairs"]}


def matrix_table(summary: dict) -> str:
    tasks = summary["tasks"]
    cell = cells(summary)
    lines = [
        "| source \\ target | " + " | ".join(f"{t:g}" for t in tasks) + " |",
        "| --- " * (len(tasks) + 1) + "|",
    ]
    for s in tasks:
        row = []
        for t in tasks:
            p = cell[(s, t)]
            row.append(
                f"{p['improvement_pct']:+.0f}% "
                f"({p['source_on_target']:.0f} -> {p['transferred_on_target']:.0f})"
            )
        lines.append(f"| {s:g} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    for path in sorted(HERE.glob("*/summary.json")):
        s = json.loads(path.read_text())
        off = [p for p in s["pairs"] if p["source"] != p["target"]]
        ratio = sum(p["transferred_on_target"] for p in off) / sum(
            p["source_on_target"] for p in off
        )
        if "--heatmaps" in sys.argv[1:]:
            tasks = s["tasks"]
            cell = cells(s)
            matrix = np.array([[cell[(a, b)]["improvement_pct"] for b in tasks] for a in tasks])
            cfg = MatrixConfig(**json.loads((path.parent / "config.json").read_text()))
            heatmap(matrix, tasks, path.parent / "improvement.png", heatmap_title(cfg))
        print(
            f"### {path.parent.name} (objective {s['objective']}, seed {s['seed']}, "
            f"{s['wall_time_s'] / 60:.0f} min)\n"
        )
        print(matrix_table(s))
        print(
            "\nOff the diagonal: "
            f"mean improvement {s['mean_improvement_off_diagonal_pct']:+.1f}%, positive on "
            f"{s['positive_pairs_off_diagonal']}/{s['pairs_off_diagonal']} pairs, "
            "ratio of summed returns "
            f"transferred / source {ratio:.2f}."
        )
        se = sorted(
            p[k] for p in s["pairs"] for k in ("source_on_target_se", "transferred_on_target_se")
        )
        print(
            f"Standard errors of the cells' returns: {se[0]:.1f}-{se[-1]:.1f}, "
            f"median {se[len(se) // 2]:.1f}.\n"
        )


if __name__ == "__main__":
    main()
