"""One context-conditioned translator for every pair of tasks (paper Sec. 5.1, Fig. 5).

1. A source policy for all listed tasks at once: context-conditioned TD3 (``ctd3``) meta-trained
   on them with dense reward. The policy of task j is pi(s, z_j), with z_j the task feature (the
   mean context of task j's data, Sec. 3.2). One multi-task policy instead of one TD3 policy per
   task is our choice (the paper's appendix with its protocol is not public): it costs one
   training for all sources, and it is the form in which MCAT uses the translator.
2. A dataset per task from that policy with action noise (as in :mod:`mcat.experiments.transfer`),
   and the task features z_j computed by the run's context encoder C on it.
3. F(s, a, z) trained on all datasets with the fixed features, then one conditioned H(s, a, z_src,
   z_tgt) trained on every ordered pair at once (:func:`mcat.learners.translator.all_pairs_loss`).
4. For every source j and target i (the diagonal too, as in Fig. 5): the return on task i of the
   source policy pi(s, z_j) and of the transferred policy H(s, pi(s, z_j), z_j, z_i); the
   improvement is 100 (transferred - source) / |source| %.

Writes DIR/pairs.csv (one row per pair), DIR/improvement.csv (the matrix, sources as rows),
DIR/improvement.png (heat-map), DIR/summary.json and DIR/config.json.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch

from mcat.agents.ctd3 import CTD3Config
from mcat.collect import Collector, evaluate
from mcat.config import RunConfig
from mcat.errors import MCATError
from mcat.experiments.transfer import (
    Cache,
    _key,
    _lr_schedule,
    _mean_se,
    check_experiment_settings,
    fit_forward_model,
    prepare_result,
)
from mcat.learners.translator import OBJECTIVES, all_pairs_loss
from mcat.models import ForwardModel
from mcat.models.nets import NORM_MIN_VAR
from mcat.models.translator import ActionTranslator
from mcat.policies import SourceAction, TransferredPolicy
from mcat.replay import MultiTaskReplay
from mcat.runs import (
    SUMMARY,
    StepProgress,
    atomic_torch_save,
    atomic_write_bytes,
    hold_run_dir,
    write_json,
)
from mcat.tasks import TaskValue, get_family, task_key
from mcat.train import Trainer, load_run_agent
from mcat.validation import check_creatable_dir


@dataclass
class MatrixConfig:
    """Settings of one transfer-matrix run."""

    family: str
    """Task family."""
    tasks: list[TaskValue] = field(default_factory=list)
    """The tasks (at least two); every ordered pair is evaluated."""
    seed: int = 0
    """Seed of the source policy, datasets, models and evaluation."""
    source_steps: int = 300_000
    """Env steps (all tasks together) of the ctd3 source policy, dense reward."""
    dataset_size: int = 50_000
    """Transitions collected on each task."""
    dataset_noise: float = 0.3
    """Std of the Gaussian action noise of the data-collecting policy."""
    model_steps: int = 20_000
    """Gradient steps of F (batch ``batch_size``)."""
    translator_steps: int = 20_000
    """Gradient steps of H; each step takes ``batch_size`` transitions of every task to every other
    task."""
    batch_size: int = 256
    """Batch size of F, and per task for H."""
    objective: str = "nll"
    """H's loss: nll (Eq. 3) or l1."""
    eval_episodes: int = 5
    """Evaluation episodes per policy and target."""
    max_episode_steps: int | None = None
    """Episode length (default: the family's)."""
    threads: int | None = None
    """Torch CPU threads."""

    def validate(self) -> None:
        family = get_family(self.family)
        self.tasks = [family.check_task(v) for v in self.tasks]
        if len(self.tasks) < 2:
            raise MCATError("transfer-matrix needs at least two tasks (--tasks A B ...)")
        if len(set(self.tasks)) != len(self.tasks):
            raise MCATError(f"--tasks lists a task twice: {self.tasks}")
        check_experiment_settings(self)
        if self.objective not in OBJECTIVES:
            raise MCATError(
                f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}"
            )


def source_policy(cfg: MatrixConfig, cache: Cache, log) -> tuple[Path, dict]:
    meta = {
        "kind": "matrix-source-policy",
        "family": cfg.family,
        "tasks": cfg.tasks,
        "steps": cfg.source_steps,
        "seed": cfg.seed,
        "max_episode_steps": cfg.max_episode_steps,
        "agent": dataclasses.asdict(CTD3Config()),
    }
    with cache.product("source", meta, "the source policy", log) as (folder, ready):
        if ready:
            log(f"reusing the source policy in {folder}")
            return folder / "run", meta
        log(
            f"training the source policy (ctd3 on tasks {cfg.tasks}, "
            f"{cfg.source_steps:,} steps, dense reward) in {folder}"
        )
        run = RunConfig(
            family=cfg.family,
            algo="ctd3",
            steps=cfg.source_steps,
            seed=cfg.seed,
            train_tasks=cfg.tasks,
            test_tasks=[],
            max_episode_steps=cfg.max_episode_steps,
            threads=cfg.threads,
            eval_every=max(cfg.source_steps // 10, 1),
            checkpoint_every=max(cfg.source_steps // 10, 1),
            learning_starts=min(10_000, cfg.source_steps // 4),
            agent=CTD3Config(),
        )
        Trainer.start_or_resume(run, folder / "run", log=log).run()
        cache.finish(folder, meta)
        return folder / "run", meta


def datasets(
    cfg: MatrixConfig, cache: Cache, agent, policy_meta: dict, log
) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays [tasks, N, ...] of every task's transitions, and the task features [tasks, z]."""
    meta = {
        "kind": "matrix-datasets",
        "family": cfg.family,
        "tasks": cfg.tasks,
        "size": cfg.dataset_size,
        "noise": cfg.dataset_noise,
        "seed": cfg.seed,
        "policy": _key(policy_meta),
        "max_episode_steps": cfg.max_episode_steps,
    }
    with cache.product("data", meta, "the datasets", log) as (folder, ready):
        file = folder / "data.npz"
        if ready:
            log(f"reusing the datasets in {folder}")
            with np.load(file) as data:
                return {k: data[k] for k in data.files}, meta
        T = len(cfg.tasks)
        log(
            f"collecting {cfg.dataset_size:,} transitions on each of {T} tasks "
            f"(policy + noise {cfg.dataset_noise})"
        )
        col = Collector(
            get_family(cfg.family),
            cfg.tasks,
            history=agent.cfg.history,
            seed=cfg.seed + 7919,
            max_episode_steps=cfg.max_episode_steps,
        )
        replay = MultiTaskReplay(T, col.obs_dim, col.act_dim, cfg.dataset_size + 1, seed=cfg.seed)
        rng = np.random.default_rng(cfg.seed + 7919)
        while (
            replay.size.min() < cfg.dataset_size
        ):  # lockstep: every task gets one transition per step
            col.step(
                replay,
                lambda obs, c: agent.act(
                    obs, agent.context(c.ctx.delta, c.ctx.act, c.ctx.mask), cfg.dataset_noise, rng
                ),
            )
        n = cfg.dataset_size
        with torch.no_grad():
            features = agent.task_features(replay).cpu().numpy()
        data = {
            "obs": replay.obs[:, :n],
            "act": replay.act[:, :n],
            "next_obs": replay.next_obs_at(np.arange(replay.num_tasks)[:, None], np.arange(n)),
            "features": features,
        }
        buffer = io.BytesIO()
        np.savez(buffer, **data)
        atomic_write_bytes(file, buffer.getvalue())
        cache.finish(folder, meta)
        return data, meta


def forward_model(
    cfg: MatrixConfig, cache: Cache, data: dict, data_meta: dict, log
) -> ForwardModel:
    meta = {
        "kind": "matrix-forward-model",
        "norm_min_var": NORM_MIN_VAR,  # models normalised with another threshold differ
        "steps": cfg.model_steps,
        "batch": cfg.batch_size,
        "seed": cfg.seed,
        "data": _key(data_meta),
    }
    T, N, obs_dim = data["obs"].shape
    act_dim, z_dim = data["act"].shape[2], data["features"].shape[1]

    def fit() -> ForwardModel:
        log(f"training the forward model F(s, a, z) on all tasks ({cfg.model_steps:,} steps)")
        flat = lambda x: x.reshape(T * N, -1)  # noqa: E731
        z = np.repeat(data["features"], N, axis=0).astype(np.float32)
        return fit_forward_model(
            flat(data["obs"]),
            flat(data["act"]),
            flat(data["next_obs"]),
            z,
            cfg.model_steps,
            cfg.batch_size,
            cfg.seed,
        )

    empty = lambda: ForwardModel(obs_dim, act_dim, z_dim)  # noqa: E731
    return cast(ForwardModel, cache.model("model", meta, "the forward model", empty, fit, log))


def train_translator(
    cfg: MatrixConfig, data: dict, model: ForwardModel, max_action: float, log
) -> ActionTranslator:
    """One conditioned H for every ordered pair (Eq. 3 averaged over the pairs)."""
    T, N, obs_dim = data["obs"].shape
    torch.manual_seed(cfg.seed + 1)
    rng = np.random.default_rng(cfg.seed + 1)
    H = ActionTranslator(
        obs_dim,
        data["act"].shape[2],
        data["features"].shape[1],
        conditioned=True,
        max_action=max_action,
    )
    opt = torch.optim.Adam(H.parameters(), lr=3e-4)
    sched = _lr_schedule(opt, cfg.translator_steps)
    obs, act = torch.as_tensor(data["obs"]), torch.as_tensor(data["act"])
    delta = torch.as_tensor(data["next_obs"]) - obs
    features = torch.as_tensor(data["features"])
    rows = torch.arange(T)[:, None]
    log(
        f"training the translator H on {T * (T - 1)} ordered pairs "
        f"({cfg.translator_steps:,} steps, objective {cfg.objective})"
    )
    progress = StepProgress("H", cfg.translator_steps, log)
    for step in range(1, cfg.translator_steps + 1):
        idx = torch.as_tensor(rng.integers(0, N, (T, cfg.batch_size)))
        loss = all_pairs_loss(
            H, model, obs[rows, idx], act[rows, idx], delta[rows, idx], features, cfg.objective
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        progress.update(step, loss.detach())
    return H


def improvement(source: float, transferred: float) -> float:
    """Improvement of the transferred over the source policy, % of the source's return magnitude."""
    return 100.0 * (transferred - source) / max(abs(source), 1e-8)


def heatmap(matrix: np.ndarray, tasks: list[TaskValue], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [task_key(v) for v in tasks]
    fig, ax = plt.subplots(figsize=(1.1 * len(tasks) + 2.5, 1.0 * len(tasks) + 1.5))
    bound = max(float(np.abs(matrix).max()), 1e-8)
    im = ax.imshow(matrix, cmap="RdBu", vmin=-bound, vmax=bound)
    ax.set_xticks(range(len(tasks)), labels)
    ax.set_yticks(range(len(tasks)), labels)
    ax.set_xlabel("target task")
    ax.set_ylabel("source task")
    for (i, j), v in np.ndenumerate(
        matrix
    ):  # white on the dark cells, so every number stays readable
        ax.text(
            j,
            i,
            f"{v:.0f}%",
            ha="center",
            va="center",
            fontsize=9,
            color="white" if abs(v) > 0.6 * bound else "black",
        )
    fig.colorbar(im, ax=ax, label="improvement of transferred over source policy (%)")
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def heatmap_title(cfg: MatrixConfig) -> str:
    return (
        f"{cfg.family}, objective {cfg.objective}, "
        f"source {cfg.source_steps:,} steps, seed {cfg.seed}"
    )


def run_matrix(
    cfg: MatrixConfig, out: Path, cache_dir: Path, overwrite: bool = False, log=print
) -> dict:
    cfg.validate()
    check_creatable_dir(Path(out), "--out")  # both checked before either is made
    check_creatable_dir(Path(cache_dir), "--cache")
    with hold_run_dir(Path(out)):  # another process writing this result is refused
        return _run_matrix(cfg, Path(out), Cache(cache_dir), overwrite, log)


def _run_matrix(cfg: MatrixConfig, out: Path, cache: Cache, overwrite: bool, log) -> dict:
    out = prepare_result(cfg, out, overwrite, "transfer-matrix")
    start = time.perf_counter()
    run_dir, policy_meta = source_policy(cfg, cache, log)
    _, agent, _ = load_run_agent(run_dir)
    data, data_meta = datasets(cfg, cache, agent, policy_meta, log)
    model = forward_model(cfg, cache, data, data_meta, log)
    H = train_translator(cfg, data, model, agent.max_action, log)
    family, tasks = get_family(cfg.family), cfg.tasks
    features = torch.as_tensor(data["features"])

    def episodes(policy, targets):
        return evaluate(
            family,
            targets,
            policy.context,
            policy.act,
            history=agent.cfg.history,
            episodes=cfg.eval_episodes,
            seed=cfg.seed,
            max_episode_steps=cfg.max_episode_steps,
            per_episode=True,
        )

    log(f"evaluating {len(tasks)} source policies and {len(tasks) ** 2} transferred policies")
    rows, matrix = [], np.zeros((len(tasks), len(tasks)))
    identity = SourceAction(agent.max_action)  # the source policy itself, pi(s, z_src)
    for j, src in enumerate(tasks):
        plain = episodes(TransferredPolicy(agent.actor, identity, features[j], features[j]), tasks)
        for i, tgt in enumerate(tasks):
            moved = episodes(TransferredPolicy(agent.actor, H, features[j], features[i]), [tgt])[
                tgt
            ]
            s, t = _mean_se(plain[tgt]), _mean_se(moved)
            matrix[j, i] = improvement(s["mean"], t["mean"])
            rows.append(
                {
                    "source": src,
                    "target": tgt,
                    "source_on_target": s["mean"],
                    "source_on_target_se": s["se"],
                    "transferred_on_target": t["mean"],
                    "transferred_on_target_se": t["se"],
                    "improvement_pct": matrix[j, i],
                }
            )
            log(
                f"  {task_key(src)} -> {task_key(tgt)}: source {s['mean']:9.1f}  "
                f"transferred {t['mean']:9.1f}  ({matrix[j, i]:+.1f}%)"
            )
    _write_csv(out / "pairs.csv", list(rows[0]), [list(r.values()) for r in rows])
    _write_csv(
        out / "improvement.csv",
        ["source \\ target"] + [task_key(v) for v in tasks],
        [[task_key(src)] + [round(float(x), 2) for x in matrix[j]] for j, src in enumerate(tasks)],
    )
    heatmap(matrix, tasks, out / "improvement.png", heatmap_title(cfg))
    off_diagonal = matrix[~np.eye(len(tasks), dtype=bool)]
    summary = {
        "family": cfg.family,
        "tasks": tasks,
        "seed": cfg.seed,
        "objective": cfg.objective,
        "pairs": rows,
        "mean_improvement_off_diagonal_pct": float(off_diagonal.mean()),
        "positive_pairs_off_diagonal": int((off_diagonal > 0).sum()),
        "pairs_off_diagonal": int(off_diagonal.size),
        "wall_time_s": time.perf_counter() - start,
    }
    atomic_torch_save(H.state_dict(), out / "translator.pt")
    write_json(out / SUMMARY, summary)
    log(
        f"mean improvement off the diagonal {summary['mean_improvement_off_diagonal_pct']:+.1f}%, "
        f"positive on {summary['positive_pairs_off_diagonal']}/"
        f"{summary['pairs_off_diagonal']} pairs -> {out}"
    )
    return summary


def _write_csv(path: Path, header: list, rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())
