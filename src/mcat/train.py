"""Meta-training loop: collect from the training tasks, train, evaluate on train and test tasks,
and write everything a run produces (see :mod:`mcat.runs`)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mcat.agents.ctd3 import CTD3Agent
from mcat.collect import Collector, evaluate
from mcat.config import RunConfig
from mcat.replay import MultiTaskReplay
from mcat.errors import MCATError
from mcat.runs import (
    EPISODES, METRICS, SUMMARY, CsvLog, load_checkpoint, load_run_config, prepare_run_dir, save_checkpoint, write_json,
)
from mcat.tasks import get_family


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_tasks(cfg: RunConfig) -> tuple[list[float], list[float]]:
    family = get_family(cfg.family)
    train = [family.check_task(v) for v in (cfg.train_tasks or family.train_tasks)]
    # an explicit empty list means "no test tasks" (single-task runs)
    test = [family.check_task(v) for v in (family.test_tasks if cfg.test_tasks is None else cfg.test_tasks)]
    return train, test


def build_agent(cfg: RunConfig, obs_dim: int, act_dim: int, max_action: float) -> CTD3Agent:
    return CTD3Agent(obs_dim, act_dim, cfg.agent, max_action=max_action, device=cfg.device)


def load_run_agent(run_dir: Path, policy_only: bool = True) -> tuple[RunConfig, CTD3Agent, dict]:
    """The agent of a saved run (its config, networks from the latest checkpoint, and the
    checkpoint itself); a checkpoint that does not fit the config is a one-line error."""
    cfg = load_run_config(run_dir)
    state = load_checkpoint(run_dir)
    family = get_family(cfg.family)
    probe = family.make_env((cfg.train_tasks or family.train_tasks)[0], style=cfg.style)
    agent = build_agent(cfg, probe.observation_space.shape[0], probe.action_space.shape[0], float(probe.action_space.high[0]))
    probe.close()
    try:
        agent.load_state_dict(state["agent"], policy_only=policy_only)
    except (KeyError, RuntimeError) as exc:
        raise MCATError(f"checkpoint in {run_dir} does not fit its config: {str(exc).splitlines()[0]}") from None
    return cfg, agent, state


def evaluate_agent(agent: CTD3Agent, cfg: RunConfig, tasks: list[float]) -> dict[float, float]:
    """The evaluation every run and `mcat eval` use: same seeds, so the same returns."""
    return evaluate(
        get_family(cfg.family), tasks, agent.context, agent.act, cfg.agent.history,
        episodes=cfg.eval_episodes, seed=cfg.seed, style=cfg.style, max_episode_steps=cfg.max_episode_steps,
    )


def summarize(cfg: RunConfig, step: int, train: dict[float, float], test: dict[float, float]) -> dict:
    per_task = {f"{v:g}": {"split": "train", "return": r} for v, r in train.items()}
    per_task.update({f"{v:g}": {"split": "test", "return": r} for v, r in test.items()})
    return {
        "algo": cfg.algo,
        "family": cfg.family,
        "steps": step,
        "seed": cfg.seed,
        "reward_delay": cfg.reward_delay,
        "train_return": float(np.mean(list(train.values()))),
        "test_return": float(np.mean(list(test.values()))) if test else None,
        "per_task": per_task,
    }


def _fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Trainer:
    """One run: set-up, the collect-and-learn iteration, evaluation and the files it writes.

    ``run()`` goes to the end; ``iterate()`` does one collection step in every running
    environment and the gradient steps it earns (benchmarks time exactly this)."""

    def __init__(self, cfg: RunConfig, out: Path, overwrite: bool = False, log: Callable[[str], None] = print):
        cfg.validate()
        self.cfg, self.out, self.log = cfg, Path(out), log
        self.train_tasks, self.test_tasks = run_tasks(cfg)
        prepare_run_dir(self.out, cfg, overwrite)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        family = get_family(cfg.family)
        self.collector = Collector(
            family, self.train_tasks, cfg.agent.history, reward_delay=cfg.reward_delay, seed=cfg.seed, style=cfg.style,
            envs_per_round=cfg.envs_per_round, schedule=cfg.schedule, max_episode_steps=cfg.max_episode_steps,
        )
        T = len(self.train_tasks)
        episode_len = cfg.max_episode_steps or family.max_episode_steps
        capacity = min(cfg.replay_capacity, cfg.steps // T + episode_len + 2)
        col = self.collector
        self.replay = MultiTaskReplay(T, col.obs_dim, col.act_dim, capacity, gamma=cfg.agent.gamma, seed=cfg.seed)
        self.agent = build_agent(cfg, col.obs_dim, col.act_dim, col.max_action)
        self.rng = np.random.default_rng(cfg.seed + 1)
        self.credit = 0.0  # gradient steps earned and not yet done
        self.metrics: dict[str, float] = {}
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(self.out / "tb"))
        self.metrics_log = CsvLog(self.out / METRICS, ["step", "task", "split", "return"])
        self.episodes_log = CsvLog(self.out / EPISODES, ["step", "task", "return", "length"])

    @property
    def env_steps(self) -> int:
        return self.collector.env_steps

    def policy(self, obs: np.ndarray, col: Collector) -> np.ndarray:
        if col.env_steps < self.cfg.learning_starts:
            return self.rng.uniform(-col.max_action, col.max_action, size=(col.n, col.act_dim))
        z = self.agent.context(col.ctx.delta, col.ctx.act, col.ctx.mask)
        return self.agent.act(obs, z, noise=self.cfg.agent.exploration_noise, rng=self.rng)

    def iterate(self) -> None:
        cfg, T = self.cfg, len(self.train_tasks)
        finished = self.collector.step(self.replay, self.policy)
        step = self.env_steps
        if finished:
            self.episodes_log.write([[step, f"{self.train_tasks[e.task]:g}", e.ret, e.length] for e in finished])
            for e in finished:
                self.tb.add_scalar(f"train_episode/task_{self.train_tasks[e.task]:g}", e.ret, step)
        if step >= cfg.learning_starts:
            self.credit += self.collector.n * cfg.utd / T
            while self.credit >= 1.0:
                self.metrics = self.agent.train_step(self.replay)
                self.credit -= 1.0

    def evaluate(self) -> tuple[dict[float, float], dict[float, float]]:
        step = self.env_steps
        # one lockstep evaluation for both splits (seeds depend on the task value, not the call)
        returns = evaluate_agent(self.agent, self.cfg, self.train_tasks + self.test_tasks)
        tr = {v: returns[v] for v in self.train_tasks}
        te = {v: returns[v] for v in self.test_tasks}
        rows = [[step, f"{v:g}", "train", r] for v, r in tr.items()] + [[step, f"{v:g}", "test", r] for v, r in te.items()]
        self.metrics_log.write(rows)
        for split, res in (("train", tr), ("test", te)):
            for v, r in res.items():
                self.tb.add_scalar(f"eval_{split}/task_{v:g}", r, step)
            if res:
                self.tb.add_scalar(f"eval/{split}_mean", float(np.mean(list(res.values()))), step)
        test = f", test {np.mean(list(te.values())):.1f}" if te else ""
        self.log(f"  eval @ {step:,}: train {np.mean(list(tr.values())):.1f}{test}")
        return tr, te

    def checkpoint(self) -> None:
        save_checkpoint(self.out, {"agent": self.agent.state_dict(), "env_steps": self.env_steps})

    def _progress(self, rate: float) -> None:
        cfg, col, step = self.cfg, self.collector, self.env_steps
        recent = ", ".join(f"{self.train_tasks[t]:g}: {np.mean(col.recent_returns[t][-3:]):.0f}" for t in sorted(col.recent_returns))
        self.log(f"step {step:,}/{cfg.steps:,} ({100 * step / cfg.steps:.0f}%) | {rate:.0f} steps/s | "
                 f"ETA {_fmt_duration((cfg.steps - step) / max(rate, 1e-9))} | recent returns {recent or '-'}")
        for k, v in self.metrics.items():
            self.tb.add_scalar(k, v, step)
        self.tb.add_scalar("perf/steps_per_s", rate, step)

    def run(self) -> dict:
        """Train to ``cfg.steps``, evaluating and checkpointing on schedule; returns the summary."""
        cfg = self.cfg
        self.log(f"training {cfg.algo} on {cfg.family}: train tasks {self.train_tasks}, test tasks {self.test_tasks}, "
                 f"{cfg.steps:,} env steps, reward delay {cfg.reward_delay}, seed {cfg.seed} -> {self.out}")
        start = last_log = time.perf_counter()
        last_log_steps = 0
        next_eval, next_ckpt = cfg.eval_every, cfg.checkpoint_every
        last_eval: tuple[int, dict, dict] | None = None
        while self.env_steps < cfg.steps:
            self.iterate()
            step = self.env_steps
            if step >= next_eval:
                last_eval = (step, *self.evaluate())
                next_eval += cfg.eval_every
            if step >= next_ckpt:
                self.checkpoint()
                next_ckpt += cfg.checkpoint_every
            now = time.perf_counter()
            if now - last_log >= cfg.log_interval:
                self._progress((step - last_log_steps) / (now - last_log))
                last_log, last_log_steps = now, step
        step = self.env_steps
        if last_eval is None or last_eval[0] != step:
            last_eval = (step, *self.evaluate())
        self.checkpoint()
        wall = time.perf_counter() - start
        summary = summarize(cfg, step, last_eval[1], last_eval[2])
        summary.update(wall_time_s=wall, env_steps_per_s=step / wall)
        write_json(self.out / SUMMARY, summary)
        self.close()
        return summary

    def close(self) -> None:
        self.tb.close()
        self.metrics_log.close()
        self.episodes_log.close()


def train(cfg: RunConfig, out: Path, overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
    """Run ``cfg`` and write its outputs under ``out``; returns the summary."""
    return Trainer(cfg, out, overwrite, log).run()
