"""Is the gripper what stops H on Meta-World? For a result folder of `mcat transfer` on a
metaworld-push family (its cached datasets and F_t): train the pair-only H as `mcat transfer
--objective l1` does (same steps, batch, learning-rate schedule, seed), but with the L1 distance
taken over every state number except the gripper's opening (now and in the previous frame, which
`mw_diagnosis.py` finds out of reach on the target), then score the transferred policy on the
target. Not the paper's objective: a diagnosis. ``--with-gripper`` keeps every number (the
plain L1 of `mcat transfer --objective l1`), for a control at any number of steps.

    .venv/bin/python results/table1/mw_masked.py RESULT_DIR [--steps 20000] [--episodes 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from mw_diagnosis import errors, load, sample

from mcat.collect import evaluate
from mcat.experiments.transfer import _batches, _lr_schedule, scripted_agent
from mcat.models.translator import ActionTranslator
from mcat.policies import TransferredPolicy
from mcat.runs import StepProgress
from mcat.tasks import get_family

GRIPPER = (3, 21)  # the opening now and in the previous frame (18 numbers later)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("result", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("runs/cache"))
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument(
        "--with-gripper", action="store_true", help="the plain L1 over every number (a control)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg, data, F = load(args.result, args.cache)
    F.requires_grad_(False)
    src = data[cfg["source"]]
    obs_dim = src["obs"].shape[1]
    keep = torch.ones(obs_dim, dtype=torch.bool)
    keep[list(GRIPPER)] = args.with_gripper
    what = "H, plain L1" if args.with_gripper else "H without the gripper"
    torch.manual_seed(cfg["seed"] + 1)
    rng = np.random.default_rng(cfg["seed"] + 1)
    H = ActionTranslator(obs_dim, 4, conditioned=False, max_action=1.0)
    opt = torch.optim.Adam(H.parameters(), lr=3e-4)
    sched = _lr_schedule(opt, args.steps)
    empty = torch.zeros(cfg["batch_size"], 0)
    progress = StepProgress(what, args.steps, print)
    for step in range(1, args.steps + 1):
        obs, act, delta = _batches(src, cfg["batch_size"], rng)
        mean, _ = F(obs, H(obs, act, empty, empty), empty)
        loss = (mean - F.target_norm(delta)).abs()[:, keep].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        progress.update(step, loss.detach())
    H.eval()
    obs, act, delta = sample(src, 2000, 0)
    with torch.no_grad():
        errors(F, what, obs, H(obs, act), delta)
    family = get_family(cfg["family"])
    agent, _ = scripted_agent(cfg["family"], family.check_task(cfg["source"]), print)
    empty = torch.zeros(1, 0)
    transferred = TransferredPolicy(agent.actor, H, empty, empty)
    target = family.check_task(cfg["target"])
    returns = evaluate(
        family,
        [target],
        transferred.context,
        transferred.act,
        history=agent.cfg.history,
        episodes=args.episodes,
        seed=cfg["seed"],
        max_episode_steps=cfg["max_episode_steps"],
        per_episode=True,
    )[target]
    print(
        f"transferred on {cfg['target']} ({what}, {args.steps:,} steps): "
        f"{np.mean(returns):.1f} (episodes {', '.join(f'{r:.0f}' for r in returns)})"
    )


if __name__ == "__main__":
    main()
