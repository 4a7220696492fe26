"""How does the scripted push policy do on a Meta-World target when every action it takes is
scaled down? A translator that only scaled the actions would score this (the policy and the
layouts are deterministic, so one episode per setting says it).

    .venv/bin/python results/table1/mw_scaled.py [--family metaworld-push-aligned]
        [--scales 1 0.5 0.3 0.2]
"""

from __future__ import annotations

import argparse

import torch

from mcat.collect import evaluate
from mcat.experiments.transfer import scripted_agent
from mcat.tasks import get_family


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", default="metaworld-push-aligned")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5, 0.3, 0.2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    family = get_family(args.family)
    agent, _ = scripted_agent(args.family, "push-v3", lambda _: None)
    for target in ("coffee-push-v3", "push-back-v3"):
        for k in args.scales:

            def act(obs, z=None, noise=0.0, rng=None, k=k):
                return k * agent.act(obs, z)

            ret = evaluate(family, [target], agent.context, act, history=agent.cfg.history)
            print(f"push policy on {target}, actions x {k:g}: {ret[target]:.1f}", flush=True)


if __name__ == "__main__":
    main()
