"""Per-task view of policy transfer in one MCAT run (the figures of the README's PT trace).

    .venv/bin/python results/table34/pt_trace.py RUN_DIR [--after STEP] [--task T]

Prints, per training task, how many episodes after STEP were collected by the task's own policy
and by a transferred one, with their mean returns; with --task, also that task's episodes one by
one (step, policy, source, return, and the recent scores the rule compared).
"""

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument(
        "--after", type=int, default=0, help="only episodes that ended after this env step"
    )
    p.add_argument("--task", type=float, help="also list this task's episodes")
    a = p.parse_args()
    path = a.run_dir / "transfer.csv"
    if not path.is_file():
        sys.exit(f"error: no transfer.csv in {a.run_dir} (not an MCAT run with policy transfer?)")
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) > a.after]
    by_task = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_task[float(r["task"])][r["policy"]].append(float(r["return"]))
    for task in sorted(by_task):
        parts = [
            f"{pol} {len(v)} episodes, mean {sum(v) / len(v):.1f}"
            for pol, v in sorted(by_task[task].items())
        ]
        print(f"task {task:g}: " + "; ".join(parts))
    if a.task is not None:
        for r in rows:
            if float(r["task"]) == a.task:
                print(
                    r["step"],
                    r["policy"],
                    r["source"] or "-",
                    f"{float(r['return']):.0f}",
                    r["own_recent"] or "-",
                    r["source_recent"] or "-",
                )


if __name__ == "__main__":
    main()
