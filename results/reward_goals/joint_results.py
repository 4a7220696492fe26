"""What the reach analysis scripts here (h_saturation.py, g_symmetry.py) read from each result
folder of ours (G and H jointly) named on their command line: its config, the cache that
`results/reward_goals/run.sh` filled, the source policy and the transferred policy. Folders of
other translators are passed over.

    for r in joint_results():   # parses RESULTS... [--cache DIR]
        ... r.cfg, r.cache, r.agent, r.meta, r.policy.G, r.policy.translator
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mcat.config import dataclass_from_dict
from mcat.experiments.transfer import Cache, TransferConfig, load_transfer_result, source_agent


def quiet(_message: str) -> None:
    pass


@dataclass
class JointResult:
    folder: Path
    cfg: TransferConfig
    cache: Cache
    agent: Any  # the source policy
    meta: dict  # its cache metadata, which the datasets are keyed by
    policy: Any  # the transferred policy (CrossBodyPolicy: .G, .translator)


def joint_results() -> Iterator[JointResult]:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("runs/cache"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for folder in args.results:
        cfg = dataclass_from_dict(TransferConfig, json.loads((folder / "config.json").read_text()))
        cfg.validate()
        if not cfg.joint or cfg.translator != "mcat":
            continue
        cache = Cache(args.cache)
        _, agent, meta = source_agent(cfg, cache, quiet)
        _, policy = load_transfer_result(folder, cfg, args.cache)
        yield JointResult(folder, cfg, cache, agent, meta, policy)
