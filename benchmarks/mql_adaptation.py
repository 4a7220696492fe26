"""Does MQL's adaptation help? One saved MQL run's newest checkpoint evaluated on its test tasks
with several adaptation settings (the same scored episodes for all, see mcat.evaluation).

    .venv/bin/python benchmarks/mql_adaptation.py RUN_DIR [K,SNAP,MAIN ...] [--episodes N]

Each K,SNAP,MAIN is adaptation episodes, snapshot iterations and weighted iterations on the
training data (default: 0,0,0 and the run's own settings); K = 0 is the meta-trained policy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mcat.evaluation import evaluate_agent
from mcat.train import load_run_agent, load_run_replay, run_tasks


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("variants", nargs="*", help="K,SNAP,MAIN")
    p.add_argument("--episodes", type=int, default=1, help="scored episodes per task")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg, agent, state = load_run_agent(args.run_dir)
    replay = load_run_replay(cfg, state)
    _, test = run_tasks(cfg)
    cfg.eval_episodes = args.episodes
    c = agent.cfg
    own = f"{c.adaptation_episodes},{c.snap_iter_nums},{c.main_snap_iter_nums}"
    print(f"{args.run_dir}: checkpoint at {state['env_steps']:,} env steps, test tasks {test}")
    for variant in args.variants or ["0,0,0", own]:
        c.adaptation_episodes, c.snap_iter_nums, c.main_snap_iter_nums = map(
            int, variant.split(",")
        )
        t0 = time.perf_counter()
        returns = evaluate_agent(agent, cfg, test, replay)
        per_task = ", ".join(f"{v:g}: {r:.1f}" for v, r in returns.items())
        print(
            f"  adaptation {variant:>10}: test mean {np.mean(list(returns.values())):8.1f} "
            f"({per_task}) in {time.perf_counter() - t0:.0f} s"
        )


if __name__ == "__main__":
    main()
