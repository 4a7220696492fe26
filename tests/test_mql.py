"""MQL (--algo mql): it learns the dense toy family, its propensity score weights training data
from a task like the new one above data from an unlike one, it adapts to new tasks only, its
logistic regression solves the regularised problem, and it resumes bit-identically and
evaluates (with adaptation) the same way in `mcat eval` (MuJoCo)."""

import dataclasses

import numpy as np
import pytest
import torch

from mcat.agents.mql import episode_windows, fit_logistic, propensity, propensity_model
from mcat.cli import main
from mcat.collect import run_episodes
from mcat.config import run_config_from_dict
from mcat.evaluation import random_policy_returns
from mcat.tasks import get_family
from mcat.train import Trainer
from toy_runs import (  # noqa: F401 (keep_torch_threads: an autouse fixture)
    cheetah_resume_config,
    keep_torch_threads,
    killed_and_resumed,
    logs,
    quiet,
)

SMALL = {"hidden": [64, 64], "batch_size": 64, "history": 10}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = run_config_from_dict(
        {
            "family": "point-gain",
            "algo": "mql",
            "steps": 2500,
            "learning_starts": 250,
            "eval_every": 2500,
            "threads": 1,
            # the meta-trained policy (MQL's adaptation is tested below)
            "agent": {**SMALL, "adaptation_episodes": 0},
        }
    )
    trainer = Trainer(cfg, tmp_path_factory.mktemp("mql") / "run", log=quiet)
    return trainer, trainer.run()


def test_mql_learns_the_toy_family(trained):
    trainer, summary = trained
    random = random_policy_returns(trainer.cfg, trainer.train_tasks + trainer.test_tasks)
    for split, tasks in (("train", trainer.train_tasks), ("test", trainer.test_tasks)):
        bar = np.mean([random[v] for v in tasks])
        assert summary[f"{split}_return"] > bar + 8, (split, summary[f"{split}_return"], bar)


def test_propensity_prefers_training_data_like_the_new_task(trained):
    """New task: gain 0.6. Training data of gains 0.5 and 0.75 (alike) get larger weights beta
    than those of gains 1.5 and 2 (unlike)."""
    trainer, _ = trained
    agent, replay = trainer.agent, trainer.replay
    rng = np.random.default_rng(0)

    def explore(obs, owner, ctx):
        return agent.act(obs, agent.window(ctx))

    seeds = [[100 + e for e in range(4)]]
    _, _, episodes = run_episodes(
        get_family("point-gain"), [0.6], seeds, explore, agent.cfg.history, record=True
    )
    snapshot = torch.cat([torch.as_tensor(episode_windows(e, 10)[0]) for e in episodes])
    w, accuracy = propensity_model(agent, snapshot, replay, rng)
    assert accuracy > 0.6
    beta = {}
    for task in range(5):  # gains 0.5, 0.75, 1, 1.5, 2
        b = replay.sample(500, context=10, tasks=np.array([task]), rng=rng)
        windows = agent.window_batch(b)
        beta[task] = float(propensity(agent.actor, w, windows, agent.cfg.beta_clip).mean())
    assert min(beta[0], beta[1]) > 1.2 * max(beta[3], beta[4]), beta


def test_training_tasks_are_scored_by_the_meta_trained_actor_and_new_tasks_adapted(trained):
    """As in the authors' main.py: adaptation on new tasks only; ``adapt_training_tasks`` adapts
    on both."""
    trainer, _ = trained
    agent, family = trainer.agent, get_family("point-gain")
    assert agent.train_tasks == trainer.train_tasks
    tasks = [trainer.train_tasks[0], trainer.test_tasks[0]]

    def explore(obs, owner, ctx):
        return agent.act(obs, agent.window(ctx))

    H = agent.cfg.history
    _, _, episodes = run_episodes(family, tasks, [[7], [8]], explore, H, record=True)
    saved = agent.cfg
    try:
        for adapt_training, expected in ((False, [True, False]), (True, [False, False])):
            agent.cfg = dataclasses.replace(
                saved, snap_iter_nums=1, main_snap_iter_nums=1, adapt_training_tasks=adapt_training
            )
            adapter = agent.adapter(tasks, trainer.replay, np.random.default_rng(0))
            adapter.observe(episodes)
            run_episodes(family, tasks, [[9], [10]], adapter.act, H)
            assert [a is agent.actor for a in adapter.actors] == expected
    finally:
        agent.cfg = saved


def test_logistic_regression_solves_its_regularised_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, generator=gen)
    y = torch.where(
        x[:, 0] + 0.5 * x[:, 1] + 0.3 * torch.randn(400, generator=gen) > 0.2, 1.0, -1.0
    )
    C = 0.5
    w = fit_logistic(x, y, C, 2000).requires_grad_(True)
    f = x.double() @ w[:-1] + w[-1]
    loss = C * torch.nn.functional.softplus(-y.double() * f).sum() + 0.5 * w[:-1].pow(2).sum()
    (grad,) = torch.autograd.grad(loss, w)
    assert grad.abs().max() < 1e-4  # a stationary point of a convex objective: its minimum
    assert float(((f > 0).double() * 2 - 1 == y.double()).double().mean()) > 0.85


def test_mql_on_halfcheetah_killed_resumes_bit_identically_and_evaluates_alike(tmp_path, capsys):
    """Real MuJoCo with a delayed reward; evaluations adapt (snapshot, propensity, weighted
    updates on the replay); `mcat eval` repeats the final evaluation exactly."""

    def cfg():
        agent = {**SMALL, "history": 5, "adaptation_episodes": 1}
        return cheetah_resume_config(
            "mql", {**agent, "main_snap_iter_nums": 4, "snap_iter_nums": 2}
        )

    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    Trainer(cfg(), whole, log=quiet).run()
    killed_and_resumed(cfg(), stopped, crash="step:520")  # mid-episode, checkpoint at 500
    assert logs(stopped) == logs(whole)
    capsys.readouterr()
    assert main(["eval", str(whole)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert len(rows) == 3 and all(
        float(r[2]) == pytest.approx(float(r[3]), abs=0.006) for r in rows
    )
