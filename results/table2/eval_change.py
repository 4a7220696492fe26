"""The evaluation before and after 2026-11-28 (one adapter per task, each with its own generator)
on the same checkpoint: the mean test and train returns and the time of each, twice in turn.

    .venv/bin/python results/table2/eval_change.py \
        results/table2/runs/halfcheetah-armature-pearl-seed1

The old protocol is read from git (commit 50d840a, the last before the change) into a module of
its own; both evaluate all the run's tasks (train and test) in one call, as a training run does.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcat.evaluation import evaluate_agent
from mcat.train import load_run_agent, run_tasks

BEFORE = "50d840a"


def old_protocol():
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:src/mcat/evaluation.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "evaluation_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("evaluation_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate_agent


def main(run: str) -> None:
    cfg, agent, _ = load_run_agent(Path(run))
    train, test = run_tasks(cfg)
    before = old_protocol()
    print(f"{run}: {cfg.algo}, {len(train) + len(test)} tasks, {cfg.eval_episodes} episodes each")
    for name, evaluate in (("before", before), ("after", evaluate_agent)) * 2:
        start = time.perf_counter()
        returns = evaluate(agent, cfg, train + test)
        took = time.perf_counter() - start
        te, tr = (sum(returns[v] for v in tasks) / len(tasks) for tasks in (test, train))
        print(f"  {name:6}  test {te:8.1f}  train {tr:8.1f}  {took:5.1f} s")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: eval_change.py RUN_DIR (a run without adaptation replay: not MQL)")
    main(sys.argv[1])
