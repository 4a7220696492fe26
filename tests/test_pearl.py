"""PEARL (--algo pearl): it learns the dense toy family, its posterior tells tasks apart, it
collects with prior and posterior z as the authors' schedule does, and it resumes
bit-identically (toy and MuJoCo)."""

import numpy as np
import pytest
import torch

from mcat.agents.pearl import kl_to_prior
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

SMALL = {
    "hidden": [64, 64],
    "encoder_hidden": [64, 64],
    "batch_size": 64,
    "embedding_batch_size": 32,
    "prior_episodes": 1,
    "posterior_episodes": 1,
}


def toy_pearl(**changes):
    data = {
        "family": "point-gain",
        "algo": "pearl",
        "steps": 2500,
        "learning_starts": 250,
        "eval_every": 1250,
        "checkpoint_every": 1000,
        "threads": 1,
        "agent": dict(SMALL),
    }
    data.update(changes)
    return run_config_from_dict(data)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pearl") / "run"
    trainer = Trainer(toy_pearl(), out, log=quiet)
    summary = trainer.run()
    return trainer, summary, out


def test_pearl_learns_the_toy_family(trained):
    trainer, summary, _ = trained
    cfg = trainer.cfg
    random = random_policy_returns(cfg, trainer.train_tasks + trainer.test_tasks)
    for split, tasks in (("train", trainer.train_tasks), ("test", trainer.test_tasks)):
        bar = np.mean([random[v] for v in tasks])
        assert summary[f"{split}_return"] > bar + 8, (split, summary[f"{split}_return"], bar)


def test_posterior_tells_tasks_apart_and_its_kl_is_positive(trained):
    """Posterior means from two context batches of one task lie closer together than those of
    two different tasks (averaged over the five training tasks and their pairs)."""
    trainer, _, _ = trained
    agent, replay = trainer.agent, trainer.replay
    rng = np.random.default_rng(5)
    T = len(trainer.train_tasks)
    means = {}
    with torch.no_grad():
        for task in range(T):
            for draw in range(2):
                ctx = torch.as_tensor(agent._context_batch(replay, [task], rng))
                mean, var = agent.encoder(ctx)
                means[task, draw] = mean[0]
                kl = float(kl_to_prior(mean, var))
                assert np.isfinite(kl) and kl > 0
    dist = lambda a, b: float((means[a] - means[b]).norm())  # noqa: E731
    within = np.mean([dist((t, 0), (t, 1)) for t in range(T)])
    between = np.mean([dist((a, 0), (b, 0)) for a in range(T) for b in range(a + 1, T)])
    assert between > 2 * within, (between, within)


def test_collection_alternates_prior_and_posterior_episodes(trained):
    trainer, _, _ = trained
    agent, replay = trainer.agent, trainer.replay
    done = replay.current_episode  # completed episodes per task
    for t in range(replay.num_tasks):
        # the cycle is 1 prior + 1 posterior episode: the odd episodes since learning started
        assert set(agent.posterior_ids[t]) <= {e for e in range(int(done[t]) + 1) if e % 2}
        assert agent.posterior_ids[t]
        slots = agent._encoder_slots(replay, t)
        (episode,) = set(replay.episode[t, slots].tolist())
        assert episode % 2 == 0 and episode < done[t]  # the latest completed prior episode


def test_pearl_on_halfcheetah_killed_resumes_bit_identically(tmp_path):
    """Real MuJoCo, delayed reward, posterior episodes and adaptation at evaluation."""

    def cfg():
        return cheetah_resume_config("pearl", {**SMALL, "adaptation_episodes": 1})

    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    Trainer(cfg(), whole, log=quiet).run()
    killed_and_resumed(cfg(), stopped, crash="step:520")  # mid-episode, checkpoint at 500
    assert logs(stopped) == logs(whole)
    trainer = Trainer.resume(stopped, log=quiet)  # the finished run's state
    assert all(trainer.agent.posterior_ids[t] for t in range(2))
    trainer.close()
