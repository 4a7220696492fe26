"""The ``mcat`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

from mcat import __version__
from mcat.errors import MCATError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fmt_values(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def cmd_families(args: argparse.Namespace) -> int:
    from mcat.tasks import get_family, list_families

    names = [args.name] if args.name else list_families()
    families = [get_family(n) for n in names]
    if args.json:
        rows = [
            {
                "name": f.name,
                "env": f.env if isinstance(f.env, str) else f"{f.env.__module__}.{f.env.__qualname__}",
                "parameter": f.parameter,
                "domain": str(f.domain),
                "default": f.default_task,
                "train": list(f.train_tasks),
                "test": list(f.test_tasks),
                "max_episode_steps": f.max_episode_steps,
                "description": f.description,
            }
            for f in families
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for f in families:
        env = f.env if isinstance(f.env, str) else f.env.__name__
        print(f"{f.name}  [{env}, {f.max_episode_steps} steps]  {f.description}")
        print(f"    parameter: {f.parameter}; valid: {f.domain}; default: {f.default_task}")
        print(f"    train: {_fmt_values(f.train_tasks)}")
        print(f"    test:  {_fmt_values(f.test_tasks)}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    """Run a random (or zero) policy on one task and report returns and reward payouts."""
    from mcat.tasks import check_reward_delay, get_family

    family = get_family(args.family)
    task = family.check_task(args.task) if args.task is not None else family.train_tasks[0]
    delay = check_reward_delay(args.reward_delay)
    if args.episodes < 1:
        raise MCATError(f"--episodes must be >= 1, got {args.episodes}")
    env = family.make_env(task, reward_delay=delay, seed=args.seed, style=args.style)
    print(f"{family.name} task {task:g} ({family.parameter}), reward delay {delay}, {args.policy} policy")
    for episode in range(args.episodes):
        env.reset()
        total = dense = 0.0
        payouts = steps = 0
        done = False
        while not done:
            action = env.action_space.sample() if args.policy == "random" else np.zeros(env.action_space.shape)
            _, reward, terminated, truncated, info = env.step(action)
            total += reward
            dense += info["dense_reward"]
            payouts += reward != 0.0
            steps += 1
            done = terminated or truncated
        print(f"  episode {episode}: return {total:9.2f} (dense sum {dense:9.2f}), {steps} steps, {payouts} reward payouts")
    env.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mcat", description="MCAT: meta-RL with an action translator on sparse-reward tasks.")
    parser.add_argument("--version", action="version", version=f"mcat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("families", help="list the task families with their train and test tasks")
    p.add_argument("name", nargs="?", help="show only this family")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_families)

    p = sub.add_parser("rollout", help="run a random policy on one task (checks a family works)")
    p.add_argument("family")
    p.add_argument("--task", help="parameter value of the task (default: the first training task)")
    p.add_argument("--reward-delay", type=int, default=1, help="pay the summed reward every D steps (default 1)")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--policy", choices=("random", "zero"), default="random")
    p.add_argument("--style", choices=("paper", "gymnasium"), default="paper", help="reward/observation/termination style")
    p.set_defaults(func=cmd_rollout)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MCATError as exc:
        print(f"mcat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mcat: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
