"""Distral (--algo distral): it learns the dense toy family, its distillation brings pi_0 to the
task policies and puts it among them, test tasks are played by pi_0 and training tasks by their
own policies, and it resumes bit-identically on MuJoCo."""

import copy

import numpy as np
import pytest
import torch

from mcat.agents.distral import gaussian_head, gaussian_kl
from mcat.config import run_config_from_dict
from mcat.evaluation import random_policy_returns
from mcat.train import Trainer
from toy_runs import (  # noqa: F401 (keep_torch_threads: an autouse fixture)
    cheetah_resume_config,
    keep_torch_threads,
    killed_and_resumed,
    logs,
    quiet,
)

SMALL = {"hidden": [64, 64], "batch_size": 64}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = run_config_from_dict(
        {
            "family": "point-gain",
            "algo": "distral",
            "steps": 2500,
            "learning_starts": 250,
            "eval_every": 2500,
            "checkpoint_every": 2500,
            "threads": 1,
            "agent": SMALL,
        }
    )
    trainer = Trainer(cfg, tmp_path_factory.mktemp("distral") / "run", log=quiet)
    untrained_pi0 = copy.deepcopy(trainer.agent.distilled)
    summary = trainer.run()
    return trainer, summary, untrained_pi0


def test_distral_learns_the_toy_family(trained):
    trainer, summary, _ = trained
    random = random_policy_returns(trainer.cfg, trainer.train_tasks + trainer.test_tasks)
    for split, tasks in (("train", trainer.train_tasks), ("test", trainer.test_tasks)):
        bar = np.mean([random[v] for v in tasks])
        assert summary[f"{split}_return"] > bar + 8, (split, summary[f"{split}_return"], bar)


def _heads(trainer, pi0=None):
    """Pre-tanh (mean, log std) of the five task policies [5, N, A] and of pi_0 [N, A] at 1,000
    states of the training data."""
    agent, replay = trainer.agent, trainer.replay
    obs = replay.obs[:, : int(replay.size.min())].reshape(-1, replay.obs.shape[-1])
    pick = np.random.default_rng(3).choice(len(obs), 1000, replace=False)
    s = torch.as_tensor(obs[pick], dtype=torch.float32)
    with torch.no_grad():
        tasks = gaussian_head(agent.policies(s.expand(5, -1, -1)), agent.act_dim)
        mean0, log_std0 = gaussian_head((pi0 or agent.distilled)(s[None])[0], agent.act_dim)
    return tasks, (mean0, log_std0)


def test_distillation_brings_pi0_to_the_task_policies(trained):
    """KL(pi_i || pi_0) at the task policies' states: far below what it is for pi_0 as it was
    before training (the same task policies)."""
    trainer, _, untrained = trained
    (mean, log_std), trained0 = _heads(trainer)
    _, before0 = _heads(trainer, untrained)
    kl_after = float(gaussian_kl(mean, log_std, *trained0).mean())
    kl_before = float(gaussian_kl(mean, log_std, *before0).mean())
    assert kl_after < 0.2 * kl_before, (kl_after, kl_before)


def test_pi0_acts_between_the_task_policies(trained):
    """Where the task policies' mean actions differ, pi_0's lies between theirs, nearer their
    centre than the task policies themselves are."""
    trainer, _, _ = trained
    (mean, _), (mean0, _) = _heads(trainer)
    low, high = mean.min(0).values, mean.max(0).values
    differ = (high - low) > 0.1
    assert differ.float().mean() > 0.1  # the task policies do differ
    between = ((mean0 >= low) & (mean0 <= high))[differ].float().mean()
    assert between > 0.85, float(between)
    centre = mean.mean(0)
    assert (mean0 - centre).abs().mean() < 0.75 * (mean - centre).abs().mean()


def test_evaluation_plays_training_tasks_with_their_policy_and_test_tasks_with_pi0(trained):
    trainer, _, _ = trained
    agent = trainer.agent
    adapter = agent.adapter([1.0, 0.6, 0.5], None, np.random.default_rng(0))
    obs = np.array([[0.2, 0.3]] * 3)
    got = adapter.act(obs, np.array([0, 1, 2]), None)
    assert np.allclose(got[0], agent.task_act(obs[:1], np.array([2]))[0])  # 1.0 is task 2
    assert np.allclose(got[1], agent.act(obs[1:2], None)[0])  # 0.6: not a training task
    assert np.allclose(got[2], agent.task_act(obs[:1], np.array([0]))[0])


def test_distral_on_halfcheetah_killed_resumes_bit_identically(tmp_path):
    def cfg():
        return cheetah_resume_config("distral", dict(SMALL))

    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    Trainer(cfg(), whole, log=quiet).run()
    killed_and_resumed(cfg(), stopped, crash="step:520")  # mid-episode, checkpoint at 500
    assert logs(stopped) == logs(whole)
