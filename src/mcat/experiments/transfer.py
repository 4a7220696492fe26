"""The fixed-dataset transfer experiment (paper Sec. 5.1, Table 1): one source task, one target.

1. A good source policy: TD3 (no context) trained on the source task with dense reward.
2. Datasets of ``dataset_size`` transitions on the source and on the target task, collected by a
   *mediocre* version of that policy: its actions with Gaussian noise of std ``dataset_noise``
   (our reading of "mediocre policies"; the paper does not say how they were made).
3. A forward model F trained on the target data only (no context: one target task).
4. The pair-only action translator H(s, a) trained on the source data with F frozen (Eq. 3).
5. Evaluation on seeded episodes: source policy on source, source policy on target, transferred
   policy H(s, pi(s)) on target.

Every product is cached under ``cache`` by a hash of everything it depends on, with a metadata
file that is checked when it is reused; a later run with the same settings reuses it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from mcat.agents.ctd3 import TD3Config
from mcat.collect import Collector, eval_seed, evaluate, row_policy, run_episodes
from mcat.config import RunConfig
from mcat.errors import MCATError
from mcat.learners.dcc import DCCTranslator
from mcat.learners.translator import translator_loss
from mcat.models import ForwardModel
from mcat.models.nets import NORM_MIN_VAR
from mcat.models.translator import ActionTranslator
from mcat.policies import ScriptedPolicy, TransferredPolicy
from mcat.replay import MultiTaskReplay
from mcat.runs import (
    SUMMARY,
    LoopCheckpoint,
    StepProgress,
    atomic_torch_save,
    atomic_write_bytes,
    hold_run_dir,
    write_json,
)
from mcat.tasks import TaskValue, get_family, task_key
from mcat.train import Trainer, load_run_agent
from mcat.validation import check_creatable_dir, check_int, check_number, check_seed, check_threads

if TYPE_CHECKING:  # the matrix module imports this one
    from mcat.experiments.transfer_matrix import MatrixConfig

TRANSLATORS = ("mcat", "dcc")
POLICY_KINDS = ("td3", "scripted")  # a source policy or a target data policy


@dataclass
class TransferConfig:
    """Settings of one fixed-dataset transfer run (defaults: the paper's where it gives them)."""

    family: str
    """Task family of both tasks."""
    source: TaskValue
    """Source task (the paper keeps the default physics here)."""
    target: TaskValue
    """Target task (of ``target_family`` when that is given)."""
    seed: int = 0
    """Seed of the source policy, datasets, models and evaluation."""
    source_steps: int = 60_000
    """TD3 env steps to pretrain the source policy on dense reward. 60k gives a policy of the
    paper's strength on HalfCheetah (about 2,300 on the source; the paper's scores 2,355 on the
    target); a much stronger one (300k: about 7,000) saturates its actions, leaving H little room
    (results/table1/README.md)."""
    dataset_size: int = 100_000
    """Transitions collected on each of source and target (paper: 100k)."""
    dataset_noise: float = 0.3
    """Std of the Gaussian noise added to the source policy's actions to collect data."""
    model_steps: int = 20_000
    """Gradient steps of the target forward model F."""
    translator_steps: int = 20_000
    """Gradient steps of the translator H (lr 3e-4, x1/6 at 50% and x1/30 at 75%, as 3e-4 -> 5e-5
    -> 1e-5 in the authors' code)."""
    batch_size: int = 256
    """Batch size of F and H."""
    objective: str = "nll"
    """H's loss: nll (Eq. 3) or l1 (distance of F's mean, the authors' Table-1 code)."""
    translator: str = "mcat"
    """Which translator: mcat (ours, Eq. 3) or dcc (the Zhang et al. 2020c baseline,
    :mod:`mcat.learners.dcc`)."""
    eval_episodes: int = 10
    """Evaluation episodes for each of the three numbers."""
    max_episode_steps: int | None = None
    """Episode length (default: the family's)."""
    threads: int | None = None
    """Torch CPU threads."""
    target_family: str | None = None
    """A target family whose bodies have other state and action spaces (paper Sec. 6 (2), e.g.
    halfcheetah-3leg from halfcheetah-armature): a state translator is then learned jointly with
    H (:mod:`mcat.experiments.cross_body`). None: the target is a task of ``family``."""
    source_policy: str | None = None
    """td3 (trained on the source task with dense reward, ``source_steps``: Table 1 on MuJoCo)
    or scripted (the family's hand-designed policy: Table 1 on Meta-World); None: scripted
    where the family has one, else td3."""
    target_policy_steps: int = 20_000
    """TD3 env steps of the target data policy (cross-body, or ``target_data_policy``), which
    collects the target's dataset with ``dataset_noise`` (the source policy cannot act on another
    body); 0 collects it with uniformly random actions (Zhang et al. 2020c's protocol)."""
    target_data_policy: bool = False
    """With ``state_translator``: the target's dataset comes from a target data policy
    (``target_policy``) instead of the source policy. Where rewards differ, the source
    policy's data may never visit the target's high rewards, which R_t then cannot know
    (results/reward_goals/README.md)."""
    target_policy: str = "td3"
    """With ``target_data_policy``, which target data policy: td3 (trained on the target with
    dense reward, ``target_policy_steps``) or scripted (the family's hand-designed policy told
    the target task, e.g. Meta-World's reach told the target's goal: data that visit the
    target's high rewards, though the transferred policy never sees that policy)."""
    distribution_weight: float = 1.0
    """Joint G and H only: weight of the term that makes G(s) distributed like the target's
    states (:class:`mcat.learners.state_translator.JointTranslatorConfig`)."""
    residual_state_translator: bool = False
    """With ``state_translator`` (tasks of one state space): G as the identity plus a learned
    change (:class:`mcat.models.state_translator.StateTranslator`)."""
    action_distribution_weight: float = 0.0
    """Joint G and H only: weight of the term that keeps H's actions distributed like the target
    data's actions (0: left out, the default; see
    :class:`mcat.learners.state_translator.JointTranslatorConfig`)."""
    state_translator: bool = False
    """Learn a state translator G jointly with H between two tasks of ``family`` (paper Sec. 6
    (1): tasks whose rewards differ, e.g. reaching other goals), as between bodies
    (:mod:`mcat.experiments.cross_body`); always so with ``target_family``."""

    def validate(self) -> None:
        family = get_family(self.family)
        if self.state_translator and self.target_family is not None:
            raise MCATError(
                "--state-translator is for two tasks of one family; with --target-family a "
                "state translator is always learned (drop --state-translator)"
            )
        self.source = family.check_task(self.source)
        self.target = get_family(self.target_family or self.family).check_task(self.target)
        if self.target_family is None and self.source == self.target:
            raise MCATError(
                f"source and target are the same task ({task_key(self.source)}); "
                "choose two different tasks"
            )
        if self.target_data_policy and not self.state_translator:
            raise MCATError("target_data_policy is for state_translator (within one family)")
        if self.target_family is not None or self.target_data_policy:
            check_int("target_policy_steps", self.target_policy_steps, 0)
        if self.target_policy not in POLICY_KINDS:
            raise MCATError(f"target_policy must be td3 or scripted, got {self.target_policy!r}")
        if self.target_policy == "scripted":
            if not self.target_data_policy:
                raise MCATError("target_policy scripted is for target_data_policy")
            if family.scripted_policy is None:
                raise MCATError(
                    f"{self.family} has no scripted policy; its target data policy is TD3 "
                    "(drop --target-policy)"
                )
        check_number("distribution_weight", self.distribution_weight, 0.0)
        check_number("action_distribution_weight", self.action_distribution_weight, 0.0)
        if self.residual_state_translator and not self.state_translator:
            raise MCATError(
                "--residual-state-translator is for --state-translator (two tasks of one family)"
            )
        if self.source_policy not in (None, *POLICY_KINDS):
            raise MCATError(f"source_policy must be td3 or scripted, got {self.source_policy!r}")
        if self.source_policy == "scripted" and family.scripted_policy is None:
            raise MCATError(
                f"{self.family} has no scripted policy; train the source with TD3 "
                "(--source-policy td3)"
            )
        if self.scripted_source and self.target_family is not None:
            raise MCATError("a transfer to another body needs a TD3 source (--source-policy td3)")
        check_experiment_settings(self)
        if self.objective not in ("nll", "l1"):
            raise MCATError(f"objective must be nll or l1, got {self.objective!r}")
        if self.translator not in TRANSLATORS:
            raise MCATError(
                f"unknown translator {self.translator!r}; available: {', '.join(TRANSLATORS)}"
            )
        if self.joint:
            from mcat.experiments.cross_body import check_cross_body  # it imports this module

            check_cross_body(self)

    @property
    def joint(self) -> bool:
        """Whether G is learned with H (another body, or ``state_translator``)."""
        return self.target_family is not None or self.state_translator

    @property
    def target_family_name(self) -> str:
        """The target task's family."""
        return self.target_family or self.family

    @property
    def scripted_source(self) -> bool:
        """Whether the source policy is the family's scripted one (see ``source_policy``)."""
        if self.source_policy is not None:
            return self.source_policy == "scripted"
        return get_family(self.family).scripted_policy is not None


def check_experiment_settings(cfg: TransferConfig | MatrixConfig) -> None:
    """The budgets, seed, threads, noise and episode length that both transfer experiments share."""
    for name in (
        "source_steps",
        "dataset_size",
        "model_steps",
        "translator_steps",
        "batch_size",
        "eval_episodes",
    ):
        check_int(name, getattr(cfg, name), 1)
    check_seed(cfg.seed)
    check_threads(cfg.threads)
    check_number("dataset_noise", cfg.dataset_noise, 0.0)
    if cfg.max_episode_steps is not None:
        check_int("max_episode_steps", cfg.max_episode_steps, 1)


def _key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Cache:
    """Content-addressed products, each with a metadata file checked on reuse."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise MCATError(f"--cache {self.root} exists and is not a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MCATError(f"cannot create --cache {self.root}: {exc.strerror or exc}") from None

    def path(self, kind: str, key: str) -> Path:
        folder = self.root / kind / key
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    @contextlib.contextmanager
    def making(folder: Path, what: str, log) -> Iterator[None]:
        """Held while the product in ``folder`` is looked up or made (check, make, finish inside):
        another process needing the same product (two transfers sharing a cache, the lanes of
        results/queue.sh) waits for it and then reuses it, instead of making it a second time.
        An exclusive ``flock`` on ``folder/.lock``; the kernel drops it when its holder dies, and
        the waiter then finds no product and makes it itself. Products never nest their holds
        (each is finished before the next is made), so two processes cannot deadlock."""
        try:
            import fcntl
        except ImportError:  # no flock (Windows): unguarded
            yield
            return
        with open(folder / ".lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                log(f"waiting for another process making {what} in {folder}")
                fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    @contextlib.contextmanager
    def product(self, kind: str, meta: dict, what: str, log) -> Iterator[tuple[Path, bool]]:
        """The folder of the product ``meta`` identifies under ``kind`` and whether it is
        finished, held (:meth:`making`) while the caller reuses it or makes and finishes it."""
        folder = self.path(kind, _key(meta))
        with self.making(folder, what, log):
            yield folder, self.check(folder, meta)

    @staticmethod
    def check(folder: Path, meta: dict) -> bool:
        """True when ``folder`` holds a finished product made with ``meta``; a product made with
        other settings (a different family, say) is an error, never silently used or replaced."""
        file = folder / "meta.json"
        if not file.exists():
            return False
        saved = json.loads(file.read_text())
        if saved != json.loads(json.dumps(meta, default=str)):
            raise MCATError(
                f"cached product {folder} was made with other settings ({saved}); "
                "remove it or use another --cache"
            )
        return True

    @staticmethod
    def finish(folder: Path, meta: dict) -> None:
        write_json(folder / "meta.json", meta)

    def model(
        self,
        kind: str,
        meta: dict,
        what: str,
        empty: Callable[[], nn.Module],
        fit: Callable[[], nn.Module],
        log,
    ) -> nn.Module:
        """The network ``meta`` identifies, under ``kind``: loaded into ``empty()`` when the cache
        holds it, else made by ``fit()`` and stored. ``what`` names it in the log."""
        with self.product(kind, meta, what, log) as (folder, ready):
            if ready:
                log(f"reusing {what} in {folder}")
                model = empty()
                model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
                return model
            model = fit()
            atomic_torch_save(model.state_dict(), folder / "model.pt")
            self.finish(folder, meta)
            return model


def _policy_meta(cfg: TransferConfig, family: str, task: TaskValue, steps: int) -> dict:
    """What a TD3 policy trained on one task depends on (the source policy, or a cross-body
    target's data policy)."""
    return {
        "kind": "source-policy",
        "family": family,
        "task": task,
        "steps": steps,
        "seed": cfg.seed,
        "max_episode_steps": cfg.max_episode_steps,
        "agent": dataclasses.asdict(TD3Config()),
    }


def cached_source_policy(cfg: TransferConfig, cache_dir: Path) -> Path | None:
    """The run folder of the source policy of ``cfg`` in ``cache_dir``, or None when the cache
    does not hold it (made with these settings); nothing is trained or created."""
    meta = _policy_meta(cfg, cfg.family, cfg.source, cfg.source_steps)
    folder = Path(cache_dir) / "source" / _key(meta)
    return folder / "run" if Cache.check(folder, meta) else None


def source_policy(cfg: TransferConfig, cache: Cache, log) -> tuple[Path, dict]:
    """The source policy: TD3 on the source task (evaluated on the target task as it trains)."""
    return td3_policy(cfg, cache, cfg.family, cfg.source, cfg.target, cfg.source_steps, log)


def td3_policy(
    cfg: TransferConfig,
    cache: Cache,
    family: str,
    task: TaskValue,
    eval_task: TaskValue,
    steps: int,
    log,
    role: str = "source policy",
) -> tuple[Path, dict]:
    """The run folder of TD3 trained for ``steps`` env steps on ``task`` of ``family`` with
    dense reward (trained, or resumed, when the cache does not hold it) and its metadata."""
    meta = _policy_meta(cfg, family, task, steps)
    with cache.product("source", meta, f"the {role}", log) as (folder, ready):
        if not ready:
            what = f"TD3, {family} task {task_key(task)}, {steps:,} steps"
            log(f"training the {role} ({what}) in {folder}")
            run = RunConfig(
                family=family,
                algo="td3",
                steps=steps,
                seed=cfg.seed,
                train_tasks=[task],
                test_tasks=[eval_task],
                max_episode_steps=cfg.max_episode_steps,
                threads=cfg.threads,
                eval_every=max(steps // 10, 1),
                checkpoint_every=max(steps // 4, 1),
                learning_starts=min(10_000, steps // 4),
                agent=TD3Config(),
            )
            Trainer.start_or_resume(run, folder / "run", log=log).run()
            cache.finish(folder, meta)
        else:
            log(f"reusing the {role} in {folder}")
        return folder / "run", meta


def source_agent(cfg: TransferConfig, cache: Cache, log) -> tuple[Path | None, Any, dict]:
    """The source policy (its run folder, None for a scripted one), ready to act, and the
    metadata that identifies it."""
    if cfg.scripted_source:
        return None, *scripted_agent(cfg.family, cfg.source, log)
    run_dir, meta = source_policy(cfg, cache, log)
    _, agent, _ = load_run_agent(run_dir)
    return run_dir, agent, meta


def scripted_agent(
    family_name: str, task: TaskValue, log, role: str = "source policy"
) -> tuple[ScriptedPolicy, dict]:
    """The family's scripted policy told ``task``, ready to act, and its metadata."""
    family = get_family(family_name)
    assert family.scripted_policy is not None  # the configs' validate checked
    log(f"{role}: the scripted policy of {family_name} task {task_key(task)}")
    policy = ScriptedPolicy(family.scripted_policy(task))
    return policy, {"kind": "scripted-policy", "family": family_name, "task": task}


def dataset(
    cfg: TransferConfig,
    cache: Cache,
    agent,
    policy_meta: dict | None,
    task: TaskValue,
    log,
    family: str | None = None,
    rewards: bool = False,
) -> tuple[dict[str, np.ndarray], dict]:
    """The transitions of one task (of ``family``, default the config's) and the metadata that
    identifies them: collected by ``agent`` with Gaussian action noise, or by uniformly random
    actions when ``agent`` is None. ``rewards`` keeps the (dense) rewards too."""
    family = family or cfg.family
    meta = {
        "kind": "dataset",
        "family": family,
        "task": task,
        "size": cfg.dataset_size,
        "noise": cfg.dataset_noise,
        "seed": cfg.seed,
        "policy": "random" if policy_meta is None else _key(policy_meta),
        "max_episode_steps": cfg.max_episode_steps,
    }
    if rewards:  # only then: the datasets of Table 1 keep their keys
        meta["rewards"] = True
    what = f"the dataset of {family} task {task_key(task)}"
    with cache.product("data", meta, what, log) as (folder, ready):
        file = folder / "data.npz"
        if ready:
            log(f"reusing the dataset of {family} task {task_key(task)} in {folder}")
            with np.load(file) as data:
                return {k: data[k] for k in data.files}, meta
        by = "random actions" if agent is None else f"policy + noise {cfg.dataset_noise}"
        log(f"collecting {cfg.dataset_size:,} transitions on {family} task {task_key(task)} ({by})")
        col = Collector(
            get_family(family),
            [task],
            history=1 if agent is None else agent.cfg.history,
            seed=cfg.seed + 7919,
            max_episode_steps=cfg.max_episode_steps,
        )
        replay = MultiTaskReplay(1, col.obs_dim, col.act_dim, cfg.dataset_size + 1)
        rng = np.random.default_rng(cfg.seed + 7919)

        def act(obs, c):
            if agent is None:
                return rng.uniform(-col.max_action, col.max_action, size=(len(obs), col.act_dim))
            return agent.act(
                obs, agent.context(c.ctx.delta, c.ctx.act, c.ctx.mask), cfg.dataset_noise, rng
            )

        progress = StepProgress("transitions", cfg.dataset_size, log)
        while col.env_steps < cfg.dataset_size:
            col.step(replay, act)
            progress.update(min(col.env_steps, cfg.dataset_size))
        n = int(replay.size[0])
        data = {
            "obs": replay.obs[0, :n],
            "act": replay.act[0, :n],
            "next_obs": replay.next_obs_at(0, np.arange(n)),
        }
        if rewards:
            data["rew"] = replay.rew[0, :n]
        buffer = io.BytesIO()
        np.savez(buffer, **data)
        atomic_write_bytes(file, buffer.getvalue())
        cache.finish(folder, meta)
        return data, meta


def _batches(data: dict[str, np.ndarray], batch: int, rng: np.random.Generator):
    idx = rng.integers(0, len(data["obs"]), batch)
    obs = torch.as_tensor(data["obs"][idx])
    return obs, torch.as_tensor(data["act"][idx]), torch.as_tensor(data["next_obs"][idx]) - obs


def fit_forward_model(
    obs: np.ndarray,
    act: np.ndarray,
    next_obs: np.ndarray,
    z: np.ndarray,
    steps: int,
    batch: int,
    seed: int,
    log=None,
) -> ForwardModel:
    """F(s, a, z) trained by Eq. 1's NLL on fixed transitions; ``z`` holds each transition's task
    feature (0 columns for a single task). Normalisers come from the whole dataset, then stay
    fixed. ``log`` gets a progress line every tenth of the steps."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ForwardModel(obs.shape[1], act.shape[1], z.shape[1])
    opt = torch.optim.Adam(model.param_groups(), lr=1e-3)
    obs_t, act_t, z_t = torch.as_tensor(obs), torch.as_tensor(act), torch.as_tensor(z)
    delta_t = torch.as_tensor(next_obs) - obs_t
    model.update_normalizers(obs_t, act_t, delta_t, torch.ones(len(obs_t)))
    progress = StepProgress("F", steps, log) if log is not None else None
    for step in range(1, steps + 1):
        idx = torch.as_tensor(rng.integers(0, len(obs_t), batch))
        loss = model.nll(obs_t[idx], act_t[idx], z_t[idx], delta_t[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress.update(step, loss.detach())
    return model


def target_model(
    cfg: TransferConfig, cache: Cache, data: dict, data_meta: dict, log, family: str | None = None
) -> ForwardModel:
    """The target's forward model F (of ``family``, default the config's), cached."""
    meta = {
        "kind": "forward-model",
        "norm_min_var": NORM_MIN_VAR,  # models normalised with another threshold differ
        "family": family or cfg.family,
        "task": cfg.target,
        "steps": cfg.model_steps,
        "batch": cfg.batch_size,
        "seed": cfg.seed,
        "data": _key(data_meta),
    }
    obs_dim, act_dim = data["obs"].shape[1], data["act"].shape[1]

    def fit() -> ForwardModel:
        log(f"training the target forward model ({cfg.model_steps:,} steps)")
        no_z = np.zeros((len(data["obs"]), 0), dtype=np.float32)
        return fit_forward_model(
            data["obs"],
            data["act"],
            data["next_obs"],
            no_z,
            cfg.model_steps,
            cfg.batch_size,
            cfg.seed,
            log,
        )

    empty = lambda: ForwardModel(obs_dim, act_dim, 0)  # noqa: E731
    return cast(
        ForwardModel, cache.model("model", meta, "the target forward model", empty, fit, log)
    )


def _lr_schedule(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.MultiStepLR:
    """3e-4 -> 5e-5 at half the steps -> ~1e-5 at three quarters (the authors' decay)."""
    return torch.optim.lr_scheduler.MultiStepLR(opt, [steps // 2, 3 * steps // 4], gamma=1 / 6)


PROGRESS = "translator-progress.pt"  # a result folder's resumable translator training


def translator_checkpoint(cfg: TransferConfig, out: Path | None, log) -> LoopCheckpoint:
    """The resumable state of a result's translator training (every tenth of the steps, at
    most 1,000, in ``out``; kept until the result's summary is written)."""
    path = None if out is None else Path(out) / PROGRESS
    steps = cfg.translator_steps
    every = max(1, min(1000, steps // 10))
    return LoopCheckpoint(
        path, dataclasses.asdict(cfg), "the translator training", steps, every, log
    )


def train_translator(
    cfg: TransferConfig,
    data: dict,
    target_data: dict,
    model: ForwardModel,
    max_action: float,
    log,
    out: Path | None = None,
) -> ActionTranslator:
    """The pair-only H from source to target: ours (Eq. 3, source data only) or the Zhang et al.
    baseline (which also uses the target data for its cycle and adversarial terms). With ``out``
    the training can be stopped and continued (:func:`translator_checkpoint`)."""
    obs_dim, act_dim = data["obs"].shape[1], data["act"].shape[1]
    torch.manual_seed(cfg.seed + 1)
    rng = np.random.default_rng(cfg.seed + 1)
    steps, saved = cfg.translator_steps, translator_checkpoint(cfg, out, log)
    if cfg.translator == "dcc":
        dcc = DCCTranslator(obs_dim, act_dim, max_action)

        def draw() -> tuple[tuple, tuple]:
            b = cfg.batch_size
            return _batches(data, b, rng), _batches(target_data, b, rng)

        train_dcc(dcc, model, draw, steps, saved, rng, "the Zhang et al. translator", "H", log)
        return dcc.H
    H = ActionTranslator(obs_dim, act_dim, conditioned=False, max_action=max_action)
    opt = torch.optim.Adam(H.parameters(), lr=3e-4)
    sched = _lr_schedule(opt, steps)
    empty = torch.zeros(cfg.batch_size, 0)
    log(f"training the translator H ({steps:,} steps, objective {cfg.objective})")
    progress = StepProgress("H", steps, log)
    start = progress.first = saved.resume({"H": H, "opt": opt, "sched": sched, "rng": rng})
    for step in range(start + 1, steps + 1):
        obs, act, delta = _batches(data, cfg.batch_size, rng)
        loss = translator_loss(H, model, obs, act, delta, empty, empty, cfg.objective)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        progress.update(step, loss.detach())
        saved.done(step)
    return H


def train_dcc(
    dcc: DCCTranslator,
    model: ForwardModel,
    draw: Callable[[], tuple[tuple, tuple]],
    steps: int,
    saved: LoopCheckpoint,
    rng: np.random.Generator,
    what: str,
    maps: str,
    log,
) -> None:
    """The loop of the Zhang et al. baseline, between tasks or between bodies: ``steps`` of
    ``dcc.step`` on the source and target batches ``draw`` returns (drawn with ``rng``), the
    learning-rate schedule of H, progress and the resumable checkpoint ``saved``."""
    sched = _lr_schedule(dcc.opt, steps)
    log(f"training {what} ({steps:,} steps)")
    progress = StepProgress(f"{maps} (Zhang et al.)", steps, log)
    start = progress.first = saved.resume({**dcc.stateful(), "sched": sched, "rng": rng})
    for step in range(start + 1, steps + 1):
        terms = dcc.step(model, *draw())
        sched.step()
        progress.update(step, terms["dynamics"])
        saved.done(step)


def _mean_se(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
    return {"mean": float(v.mean()), "se": se, "episodes": v.tolist()}


def prepare_result(cfg, out: Path, overwrite: bool, what: str) -> Path:
    """The result folder of a validated experiment config, already made and held by
    :func:`hold_run_dir` (which refuses a path that is not a directory): a finished result is
    kept unless ``overwrite``; the folder gets the config; torch gets the config's thread count."""
    out = Path(out)
    if (out / SUMMARY).exists() and not overwrite:
        raise MCATError(
            f"{out} already holds a {what} result; pass --overwrite or choose another --out"
        )
    write_json(out / "config.json", dataclasses.asdict(cfg))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return out


def draw_paths(cfg: TransferConfig, family, agent, transferred, out: Path) -> str:
    """Paper Fig. 4: the paths of the first scored episode of the source policy on the source,
    the source policy on the target and the transferred policy on the target, seen from above
    (``paths.png``; the positions in ``paths.npz``). Returns the picture's file name."""
    from mcat.plot import plot_paths

    assert family.positions is not None
    panels = {}
    for name, policy, task in (
        (f"source policy on {task_key(cfg.source)}", agent, cfg.source),
        (f"source policy on {task_key(cfg.target)}", agent, cfg.target),
        (f"transferred policy on {task_key(cfg.target)}", transferred, cfg.target),
    ):
        _, _, episodes = run_episodes(
            family,
            [task],
            [[eval_seed(cfg.seed, task, 0)]],
            row_policy(policy.context, policy.act),
            agent.cfg.history,
            max_episode_steps=cfg.max_episode_steps,
            record=True,
        )
        assert episodes is not None
        e = episodes[0]
        panels[name] = family.positions(np.concatenate([e.obs[:1], e.next_obs]), task)
    buffer = io.BytesIO()
    np.savez(buffer, **{f"{i}_{k}": v for i, p in enumerate(panels.values()) for k, v in p.items()})
    atomic_write_bytes(out / "paths.npz", buffer.getvalue())
    title = f"{cfg.family}: {task_key(cfg.source)} -> {task_key(cfg.target)} ({cfg.translator})"
    plot_paths(panels, out / "paths.png", title)
    return "paths.png"


def load_transfer_result(folder: Path, cfg: TransferConfig, cache_dir: Path) -> tuple[Any, Any]:
    """The source policy and the transferred policy of the `mcat transfer` result in ``folder``
    (made with ``cfg``): the source is the family's scripted policy, or the TD3 run the summary
    names (else the one ``cache_dir`` holds)."""
    from mcat.experiments.cross_body import body_dims
    from mcat.models.state_translator import StateTranslator
    from mcat.policies import CrossBodyPolicy
    from mcat.runs import load_checkpoint_file

    family = get_family(cfg.family)
    agent: Any
    if cfg.scripted_source and family.scripted_policy is not None:
        agent = ScriptedPolicy(family.scripted_policy(cfg.source))
    else:
        summary = folder / SUMMARY
        recorded = json.loads(summary.read_text()).get("source_run") if summary.is_file() else None
        source_run = Path(recorded) if recorded and Path(recorded).is_dir() else None
        source_run = source_run or cached_source_policy(cfg, cache_dir)
        if source_run is None:
            raise MCATError(
                f"the source policy of {folder} is not in --cache {cache_dir}; pass the --cache "
                "its mcat transfer used (running that command again retrains it there)"
            )
        agent = load_run_agent(source_run)[1]
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    src_obs, src_act, _ = body_dims(cfg.family, cfg.source)
    tgt_obs, tgt_act, _ = body_dims(cfg.target_family_name, cfg.target)
    H = ActionTranslator(
        tgt_obs, src_act, conditioned=False, max_action=agent.max_action, out_dim=tgt_act
    )
    H.load_state_dict(load_checkpoint_file(folder / "translator.pt"))
    H.eval()
    if not cfg.joint:
        empty = torch.zeros(1, 0)
        return agent, TransferredPolicy(agent.actor, H, empty, empty)
    G = StateTranslator(src_obs, tgt_obs, residual=cfg.residual_state_translator)
    G.load_state_dict(load_checkpoint_file(folder / "state_translator.pt"))
    G.eval()
    return agent, CrossBodyPolicy(agent.actor, G, H)


def run_transfer(
    cfg: TransferConfig, out: Path, cache_dir: Path, overwrite: bool = False, log=print
) -> dict:
    cfg.validate()
    check_creatable_dir(Path(out), "--out")  # both checked before either is made
    check_creatable_dir(Path(cache_dir), "--cache")
    with hold_run_dir(Path(out)):  # another process writing this result is refused
        return _run_transfer(cfg, Path(out), Cache(cache_dir), overwrite, log)


def _run_transfer(cfg: TransferConfig, out: Path, cache: Cache, overwrite: bool, log) -> dict:
    out = prepare_result(cfg, out, overwrite, "transfer")
    if cfg.joint:
        from mcat.experiments.cross_body import run_cross_body

        return run_cross_body(cfg, cache, out, log)
    start = time.perf_counter()
    run_dir, agent, policy_meta = source_agent(cfg, cache, log)
    source_data, _ = dataset(cfg, cache, agent, policy_meta, cfg.source, log)
    target_data, target_meta = dataset(cfg, cache, agent, policy_meta, cfg.target, log)
    model = target_model(cfg, cache, target_data, target_meta, log)
    H = train_translator(cfg, source_data, target_data, model, agent.max_action, log, out)
    family = get_family(cfg.family)
    empty = torch.zeros(1, 0)
    transferred = TransferredPolicy(agent.actor, H, empty, empty)

    def episodes(policy, task):
        return evaluate(
            family,
            [task],
            policy.context,
            policy.act,
            history=agent.cfg.history,
            episodes=cfg.eval_episodes,
            seed=cfg.seed,
            max_episode_steps=cfg.max_episode_steps,
            per_episode=True,
        )[task]

    summary: dict[str, Any] = {
        "family": cfg.family,
        "source": cfg.source,
        "target": cfg.target,
        "seed": cfg.seed,
        "translator": cfg.translator,
        "source_on_source": _mean_se(episodes(agent, cfg.source)),
        "source_on_target": _mean_se(episodes(agent, cfg.target)),
        "transferred_on_target": _mean_se(episodes(transferred, cfg.target)),
        "wall_time_s": time.perf_counter() - start,
        # the source policy's run folder (for mcat video; none for a scripted source)
        "source_run": None if run_dir is None else str(run_dir),
    }
    atomic_torch_save(H.state_dict(), out / "translator.pt")
    if family.positions is not None:
        summary["paths"] = draw_paths(cfg, family, agent, transferred, out)
    write_json(out / SUMMARY, summary)
    translator_checkpoint(cfg, out, log).remove()
    for key in ("source_on_source", "source_on_target", "transferred_on_target"):
        log(f"  {key:22s} {summary[key]['mean']:9.1f} ± {summary[key]['se']:.1f}")
    return summary
