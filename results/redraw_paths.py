"""Redraw the paths (paper Fig. 4: paths.png and paths.npz) of finished `mcat transfer` results
from their saved translators, without training anything (the episodes are the seeded ones the
transfer drew). Used once for the first result of results/reward_goals, drawn before the plot
took the hidden goal from the task.

    .venv/bin/python results/redraw_paths.py RESULT_DIR... [--cache runs/cache]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcat.config import dataclass_from_dict
from mcat.experiments.transfer import TransferConfig, draw_paths, load_transfer_result
from mcat.tasks import get_family

parser = argparse.ArgumentParser()
parser.add_argument("results", nargs="+", type=Path)
parser.add_argument("--cache", type=Path, default=Path("runs/cache"))
args = parser.parse_args()
for folder in args.results:
    cfg = dataclass_from_dict(TransferConfig, json.loads((folder / "config.json").read_text()))
    cfg.validate()
    agent, transferred = load_transfer_result(folder, cfg, args.cache)
    print(folder, draw_paths(cfg, get_family(cfg.family), agent, transferred, folder))
