"""Policy transfer between bodies with other state and action spaces (paper Sec. 6 (2)), e.g. the
2-leg HalfCheetah to the 3-leg one: ``mcat transfer SOURCE_FAMILY --source S --target-family
TARGET_FAMILY --target T``.

The steps follow the fixed-dataset protocol of :mod:`mcat.experiments.transfer`, with what a
second body needs (the paper's appendix E, which has the details, is not public):

1. The source policy: TD3 on the source task with dense reward (as in Table 1).
2. Datasets of the source body (the source policy with Gaussian action noise) and of the target
   body. The source policy cannot act on the target body, so the target's data come from a
   *target data policy*: TD3 trained briefly on the target (``target_policy_steps``, with the same
   noise: a mediocre policy, as the paper's datasets are made), or uniformly random actions when
   ``target_policy_steps`` is 0 (the protocol of Zhang et al. 2020c, whose data are "randomly
   collected"). Rewards are kept (dense).
3. The target's forward model F_t and reward model R_t, on the target data.
4. The state translator G and the action translator H: ours trained jointly
   (:mod:`mcat.learners.state_translator`), or Zhang et al.'s state and action maps
   (:class:`mcat.learners.dcc.CrossBodyDCC`).
5. Evaluation on seeded episodes: the source policy on the source body; on the target body the
   random policy, the target data policy (no noise) and the transferred policy
   H(t, pi_src(G_inv(t))).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from mcat.collect import evaluate, space_dims
from mcat.errors import MCATError
from mcat.experiments.transfer import (
    Cache,
    TransferConfig,
    _key,
    _mean_se,
    dataset,
    draw_paths,
    scripted_agent,
    source_agent,
    target_model,
    td3_policy,
    train_dcc,
    translator_checkpoint,
)
from mcat.learners.dcc import CrossBodyDCC
from mcat.learners.state_translator import JointTranslatorConfig, train_joint_translators
from mcat.models import ForwardModel
from mcat.models.nets import NORM_MIN_VAR
from mcat.models.reward import RewardModel, fit_reward_model
from mcat.models.state_translator import StateTranslator
from mcat.models.translator import ActionTranslator
from mcat.policies import CrossBodyPolicy
from mcat.runs import SUMMARY, StepProgress, atomic_torch_save, write_json
from mcat.tasks import TaskValue, get_family
from mcat.train import load_run_agent


def body_dims(family: str, task: TaskValue) -> tuple[int, int, float]:
    """(state size, action size, action bound) of a family's bodies."""
    env = get_family(family).make_env(task)
    try:
        return space_dims(env)
    finally:
        env.close()


def check_cross_body(cfg: TransferConfig) -> None:
    """The cross-body settings, with a one-line error where they make no sense."""
    src = body_dims(cfg.family, cfg.source)
    tgt = body_dims(cfg.target_family_name, cfg.target)
    if cfg.target_family is not None and src[:2] == tgt[:2]:
        raise MCATError(
            f"--target-family: {cfg.family} and {cfg.target_family} share their state and action "
            f"spaces ({src[0]} states, {src[1]} actions), so no state translator is needed; "
            "transfer between two tasks of one family instead (drop --target-family)"
        )
    if cfg.objective != "nll":
        raise MCATError(
            "--objective l1 is for the action translator alone; between bodies G and H are "
            "trained jointly with the NLL of Eq. 3 (drop --objective)"
        )


def reward_model(
    cfg: TransferConfig, cache: Cache, data: dict, data_meta: dict, log
) -> RewardModel:
    """The target's reward model R_t (cached), trained as long as F_t."""
    meta = {
        "kind": "reward-model",
        "norm_min_var": NORM_MIN_VAR,  # models normalised with another threshold differ
        "family": cfg.target_family_name,
        "task": cfg.target,
        "steps": cfg.model_steps,
        "batch": cfg.batch_size,
        "seed": cfg.seed,
        "data": _key(data_meta),
    }
    obs, act = torch.as_tensor(data["obs"]), torch.as_tensor(data["act"])

    def fit() -> RewardModel:
        log(f"training the target reward model ({cfg.model_steps:,} steps)")
        rew = torch.as_tensor(data["rew"])
        return fit_reward_model(obs, act, rew, cfg.model_steps, cfg.batch_size, cfg.seed)

    empty = lambda: RewardModel(obs.shape[1], act.shape[1])  # noqa: E731
    return cast(
        RewardModel, cache.model("reward", meta, "the target reward model", empty, fit, log)
    )


def _tensors(data: dict) -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(data[k]) for k in ("obs", "act", "rew", "next_obs"))


def train_translators(
    cfg: TransferConfig,
    source_data: dict,
    target_data: dict,
    F: ForwardModel,
    R: RewardModel,
    max_action: float,
    log,
    out: Path | None = None,
) -> tuple[StateTranslator, ActionTranslator]:
    """G and H between the bodies: ours (joint, Sec. 6) or Zhang et al.'s (with P and the
    discriminators). With ``out`` the training can be stopped and continued."""
    src, tgt = _tensors(source_data), _tensors(target_data)
    steps, saved = cfg.translator_steps, translator_checkpoint(cfg, out, log)
    if cfg.translator == "dcc":
        torch.manual_seed(cfg.seed + 1)
        rng = np.random.default_rng(cfg.seed + 1)
        dcc = CrossBodyDCC(src[0], tgt[0], src[1].shape[1], tgt[1].shape[1], max_action)

        def draw() -> tuple[tuple, tuple]:
            i = torch.as_tensor(rng.integers(0, len(src[0]), cfg.batch_size))
            j = torch.as_tensor(rng.integers(0, len(tgt[0]), cfg.batch_size))
            return (src[0][i], src[1][i], src[3][i]), (tgt[0][j], tgt[1][j], tgt[3][j])

        what = "Zhang et al.'s state and action maps"
        train_dcc(dcc, F, draw, steps, saved, rng, what, "G, H", log)
        return dcc.G, dcc.H
    log(f"training the state translator G and the action translator H jointly ({steps:,} steps)")
    progress = StepProgress("G, H", steps, log)

    def resume(objects: dict[str, Any]) -> int:
        progress.first = saved.resume(objects)
        return progress.first

    def report(step: int, _G: Any, _H: Any, metrics: dict[str, float]) -> None:
        progress.update(step, metrics["dynamics"])
        saved.done(step)

    G, H = train_joint_translators(
        (src[0], src[1], src[2], src[3]),
        tgt[0],
        F,
        R,
        act_dim_target=tgt[1].shape[1],
        steps=steps,
        batch=cfg.batch_size,
        seed=cfg.seed + 1,
        cfg=JointTranslatorConfig(
            distribution_weight=cfg.distribution_weight,
            action_distribution_weight=cfg.action_distribution_weight,
            residual=cfg.residual_state_translator,
        ),
        every=1,
        max_action=max_action,
        report=report,
        resume=resume,
        target_actions=tgt[1],
    )
    return G, H


class _RandomPolicy:
    """Uniformly random actions (the target body's floor), seeded."""

    def __init__(self, act_dim: int, bound: float, seed: int):
        self.act_dim, self.bound, self.rng = act_dim, bound, np.random.default_rng(seed)

    def context(self, delta: np.ndarray, act: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        return torch.zeros(len(delta), 0)

    def act(self, obs: np.ndarray, _z: Any = None) -> np.ndarray:
        return self.rng.uniform(-self.bound, self.bound, (len(obs), self.act_dim)).astype(
            np.float32
        )


def run_cross_body(cfg: TransferConfig, cache: Cache, out: Path, log) -> dict:
    """Steps 1-5 of the module docstring; writes the translators and the summary to ``out``."""
    start = time.perf_counter()
    target_family = cfg.target_family_name
    run_dir, agent, policy_meta = source_agent(cfg, cache, log)
    target_agent, target_meta, target_run = None, None, None
    if cfg.target_family is None and not cfg.target_data_policy:  # one body, other rewards:
        target_agent, target_meta = agent, policy_meta  # the source policy collects there too
    elif cfg.target_data_policy and cfg.target_policy == "scripted":
        target_agent, target_meta = scripted_agent(
            cfg.family, cfg.target, log, role="target data policy"
        )
    elif cfg.target_policy_steps:
        target_run, target_meta = td3_policy(
            cfg,
            cache,
            target_family,
            cfg.target,
            cfg.target,
            cfg.target_policy_steps,
            log,
            role="target data policy",
        )
        _, target_agent, _ = load_run_agent(target_run)
    source_data, _ = dataset(cfg, cache, agent, policy_meta, cfg.source, log, rewards=True)
    target_data, data_meta = dataset(
        cfg, cache, target_agent, target_meta, cfg.target, log, target_family, rewards=True
    )
    F = target_model(cfg, cache, target_data, data_meta, log, family=target_family)
    R = reward_model(cfg, cache, target_data, data_meta, log)
    G, H = train_translators(cfg, source_data, target_data, F, R, agent.max_action, log, out)
    G.eval()
    H.eval()
    transferred = CrossBodyPolicy(agent.actor, G, H)
    _, tgt_act_dim, bound = body_dims(target_family, cfg.target)

    def episodes(policy, family: str, task: TaskValue, history: int) -> dict:
        returns = evaluate(
            get_family(family),
            [task],
            policy.context,
            policy.act,
            history=history,
            episodes=cfg.eval_episodes,
            seed=cfg.seed,
            max_episode_steps=cfg.max_episode_steps,
            per_episode=True,
        )[task]
        return _mean_se(returns)

    history = agent.cfg.history
    random = _RandomPolicy(tgt_act_dim, bound, cfg.seed)
    summary: dict[str, Any] = {
        "family": cfg.family,
        "target_family": cfg.target_family,
        "source": cfg.source,
        "target": cfg.target,
        "seed": cfg.seed,
        "translator": cfg.translator,
        "source_on_source": episodes(agent, cfg.family, cfg.source, history),
        "random_on_target": episodes(random, target_family, cfg.target, history),
    }
    if cfg.target_family is None:  # the same body: the source policy acts on the target as is
        summary["source_on_target"] = episodes(agent, target_family, cfg.target, history)
    if target_agent is not None and target_agent is not agent:
        summary["data_policy_on_target"] = episodes(
            target_agent, target_family, cfg.target, target_agent.cfg.history
        )
    summary["transferred_on_target"] = episodes(transferred, target_family, cfg.target, history)
    summary["wall_time_s"] = time.perf_counter() - start
    summary["source_run"] = None if run_dir is None else str(run_dir)
    summary["target_policy_run"] = None if target_run is None else str(target_run)
    family = get_family(cfg.family)
    if cfg.target_family is None and family.positions is not None:
        summary["paths"] = draw_paths(cfg, family, agent, transferred, out)
    atomic_torch_save(G.state_dict(), out / "state_translator.pt")
    atomic_torch_save(H.state_dict(), out / "translator.pt")
    write_json(out / SUMMARY, summary)
    translator_checkpoint(cfg, out, log).remove()
    for key, value in summary.items():
        if isinstance(value, dict):
            log(f"  {key:22s} {value['mean']:9.1f} ± {value['se']:.1f}")
    return summary
