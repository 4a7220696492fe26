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
from mcat.runs import EPISODES, METRICS, SUMMARY, CsvLog, prepare_run_dir, save_checkpoint, write_json
from mcat.tasks import get_family


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_tasks(cfg: RunConfig) -> tuple[list[float], list[float]]:
    family = get_family(cfg.family)
    train = [family.check_task(v) for v in (cfg.train_tasks or family.train_tasks)]
    test = [family.check_task(v) for v in (cfg.test_tasks or family.test_tasks)]
    return train, test


def build_agent(cfg: RunConfig, obs_dim: int, act_dim: int, max_action: float) -> CTD3Agent:
    return CTD3Agent(obs_dim, act_dim, cfg.agent, max_action=max_action, device=cfg.device)


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


def train(cfg: RunConfig, out: Path, overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
    """Run ``cfg`` and write its outputs under ``out``; returns the summary."""
    cfg.validate()
    out = Path(out)
    train_tasks, test_tasks = run_tasks(cfg)
    prepare_run_dir(out, cfg, overwrite)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    family = get_family(cfg.family)
    collector = Collector(
        family, train_tasks, cfg.agent.history, reward_delay=cfg.reward_delay, seed=cfg.seed, style=cfg.style,
        envs_per_round=cfg.envs_per_round, schedule=cfg.schedule, max_episode_steps=cfg.max_episode_steps,
    )
    T = len(train_tasks)
    episode_len = cfg.max_episode_steps or family.max_episode_steps
    capacity = min(cfg.replay_capacity, cfg.steps // T + episode_len + 2)
    replay = MultiTaskReplay(T, collector.obs_dim, collector.act_dim, capacity, gamma=cfg.agent.gamma, seed=cfg.seed)
    agent = build_agent(cfg, collector.obs_dim, collector.act_dim, collector.max_action)
    rng = np.random.default_rng(cfg.seed + 1)

    def policy(obs: np.ndarray, col: Collector) -> np.ndarray:
        if col.env_steps < cfg.learning_starts:
            return rng.uniform(-col.max_action, col.max_action, size=(col.n, col.act_dim))
        z = agent.context(col.ctx.delta, col.ctx.act, col.ctx.mask)
        return agent.act(obs, z, noise=cfg.agent.exploration_noise, rng=rng)

    from torch.utils.tensorboard import SummaryWriter

    tb = SummaryWriter(str(out / "tb"))
    metrics_log = CsvLog(out / METRICS, ["step", "task", "split", "return"])
    episodes_log = CsvLog(out / EPISODES, ["step", "task", "return", "length"])
    log(f"training {cfg.algo} on {cfg.family}: train tasks {train_tasks}, test tasks {test_tasks}, "
        f"{cfg.steps:,} env steps, reward delay {cfg.reward_delay}, seed {cfg.seed} -> {out}")

    def run_evaluation(step: int) -> tuple[dict[float, float], dict[float, float]]:
        tr = evaluate_agent(agent, cfg, train_tasks)
        te = evaluate_agent(agent, cfg, test_tasks) if test_tasks else {}
        rows = [[step, f"{v:g}", "train", r] for v, r in tr.items()] + [[step, f"{v:g}", "test", r] for v, r in te.items()]
        metrics_log.write(rows)
        for split, res in (("train", tr), ("test", te)):
            for v, r in res.items():
                tb.add_scalar(f"eval_{split}/task_{v:g}", r, step)
            if res:
                tb.add_scalar(f"eval/{split}_mean", float(np.mean(list(res.values()))), step)
        log(f"  eval @ {step:,}: train {np.mean(list(tr.values())):.1f}" + (f", test {np.mean(list(te.values())):.1f}" if te else ""))
        return tr, te

    start = last_log = time.perf_counter()
    last_log_steps = 0
    credit = 0.0
    next_eval, next_ckpt = cfg.eval_every, cfg.checkpoint_every
    metrics: dict[str, float] = {}
    last_eval: tuple[int, dict, dict] | None = None
    while collector.env_steps < cfg.steps:
        finished = collector.step(replay, policy)
        step = collector.env_steps
        if finished:
            episodes_log.write([[step, f"{train_tasks[e.task]:g}", e.ret, e.length] for e in finished])
            for e in finished:
                tb.add_scalar(f"train_episode/task_{train_tasks[e.task]:g}", e.ret, step)
        if step >= cfg.learning_starts:
            credit += collector.n * cfg.utd / T
            while credit >= 1.0:
                metrics = agent.train_step(replay)
                credit -= 1.0
        if step >= next_eval:
            last_eval = (step, *run_evaluation(step))
            next_eval += cfg.eval_every
        if step >= next_ckpt:
            save_checkpoint(out, {"agent": agent.state_dict(), "env_steps": step})
            next_ckpt += cfg.checkpoint_every
        now = time.perf_counter()
        if now - last_log >= cfg.log_interval:
            rate = (step - last_log_steps) / (now - last_log)
            recent = ", ".join(
                f"{train_tasks[t]:g}: {np.mean(collector.recent_returns[t][-3:]):.0f}" for t in sorted(collector.recent_returns)
            )
            log(f"step {step:,}/{cfg.steps:,} ({100 * step / cfg.steps:.0f}%) | {rate:.0f} steps/s | "
                f"ETA {_fmt_duration((cfg.steps - step) / max(rate, 1e-9))} | recent returns {recent or '-'}")
            for k, v in metrics.items():
                tb.add_scalar(k, v, step)
            tb.add_scalar("perf/steps_per_s", rate, step)
            last_log, last_log_steps = now, step
    step = collector.env_steps
    if last_eval is None or last_eval[0] != step:
        last_eval = (step, *run_evaluation(step))
    save_checkpoint(out, {"agent": agent.state_dict(), "env_steps": step})
    wall = time.perf_counter() - start
    summary = summarize(cfg, step, last_eval[1], last_eval[2])
    summary.update(wall_time_s=wall, env_steps_per_s=step / wall)
    write_json(out / SUMMARY, summary)
    tb.close()
    metrics_log.close()
    episodes_log.close()
    return summary
