"""The evaluation protocol shared by every algorithm (mcat.evaluation): adaptation episodes before
the scored ones, with the run's reward delay and their own seeds; scored episodes that do not
depend on the algorithm or on how many adaptation episodes it asks for."""

import numpy as np
import pytest
import torch

from mcat.agents.ctd3 import CTD3Agent
from mcat.collect import space_dims
from mcat.config import run_config_from_dict
from mcat.evaluation import adaptation_seed, evaluate_agent
from mcat.tasks import get_family


class Recorder:
    """An adapter that does not adapt: it acts like the agent and keeps what it is shown."""

    def __init__(self, agent, tasks):
        self.agent, self.tasks, self.seen = agent, tasks, []

    def _act(self, obs, owner, ctx):
        return self.agent.act(obs, self.agent.context(ctx.delta, ctx.act, ctx.mask))

    explore = act = _act

    def observe(self, episodes):
        assert len(episodes) == len(self.tasks)
        self.seen.append(episodes)


class Adapting(CTD3Agent):
    """ctd3 with a (non-adapting) adapter and ``cfg.adaptation_episodes`` adaptation episodes;
    ``recorders`` holds the adapter of each task (the protocol asks for one per task)."""

    def adapter(self, tasks, replay, rng):
        (task,) = tasks
        self.recorders[task] = Recorder(self, tasks)
        return self.recorders[task]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.recorders = {}


def _setup(family, **changes):
    cfg = run_config_from_dict({"family": family, "threads": 1, **changes})
    probe = get_family(family).make_env(get_family(family).train_tasks[0])
    dims = space_dims(probe)
    probe.close()
    torch.manual_seed(0)
    plain = CTD3Agent(*dims[:2], cfg.agent, max_action=dims[2])
    adapting = Adapting(*dims[:2], cfg.agent, max_action=dims[2])
    adapting.load_state_dict(plain.state_dict())
    return cfg, plain, adapting


@pytest.mark.parametrize("episodes", [0, 2])
def test_scored_episodes_do_not_depend_on_adaptation(episodes):
    cfg, plain, adapting = _setup("point-gain", eval_episodes=2)
    adapting.cfg.adaptation_episodes = episodes  # type: ignore[attr-defined]
    tasks = [0.5, 3.0]
    # the adapters act on each task's rows apart, the plain agent on all rows at once: the same
    # episodes up to the float rounding of a matrix product's batch size
    assert evaluate_agent(adapting, cfg, tasks) == pytest.approx(
        evaluate_agent(plain, cfg, tasks), rel=1e-6
    )
    assert [len(adapting.recorders[v].seen) for v in tasks] == [episodes, episodes]


def test_adaptation_episodes_pay_the_runs_delayed_reward_on_mujoco():
    """HalfCheetah, reward delayed by 7 steps, 30-step episodes: the adapter sees the reward as
    the run is paid it (every 7 steps and at the end), episodes from their own seeds, and
    transitions that chain (s' of a step is s of the next)."""
    cfg, _, adapting = _setup(
        "halfcheetah-armature", reward_delay=7, max_episode_steps=30, eval_episodes=1
    )
    adapting.cfg.adaptation_episodes = 2  # type: ignore[attr-defined]
    tasks = [0.1, 0.7]
    scored = evaluate_agent(adapting, cfg, tasks)
    first, second = ([adapting.recorders[v].seen[e][0] for v in tasks] for e in (0, 1))
    paid = {7, 14, 21, 28, 30}
    for i, episode in enumerate(first):
        assert len(episode.rew) == 30
        steps = set(np.flatnonzero(episode.rew).tolist())
        assert {s + 1 for s in steps} <= paid and len(steps) >= 4
        assert np.array_equal(episode.obs[1:], episode.next_obs[:-1])
        # the deterministic policy from another start: another episode
        assert not np.array_equal(episode.obs[0], second[i].obs[0])
        # the adaptation episode is the one its seed gives
        env = get_family(cfg.family).make_env(
            tasks[i], seed=adaptation_seed(cfg.seed, tasks[i], 0), max_episode_steps=30
        )
        assert np.allclose(env.reset()[0], episode.obs[0])
        env.close()
    # the scored return is the dense total of another (the evaluation-seeded) episode
    assert all(abs(scored[v] - first[i].ret) > 1e-6 for i, v in enumerate(tasks))


@pytest.mark.parametrize("algo", ["pearl", "mql"])
def test_a_tasks_return_does_not_depend_on_the_tasks_beside_it(algo, tmp_path):
    """PEARL samples z and MQL its batches and noise from the evaluation's own randomness, once
    per task: scoring task 3.0 alone gives its return among others (`mcat eval --tasks 3.0`
    repeats the run's row). One generator shared in task order would give 3.0 another z."""
    from mcat.train import Trainer

    cfg = run_config_from_dict(
        {
            "family": "point-gain",
            "algo": algo,
            "steps": 300,
            "learning_starts": 100,
            "eval_every": 300,
            "threads": 1,
            "max_episode_steps": 20,
            "agent": {"hidden": [16, 16], "batch_size": 16}
            | (
                {"encoder_hidden": [16], "embedding_batch_size": 8}
                if algo == "pearl"
                else {"main_snap_iter_nums": 5, "logistic_max_iter": 50, "history": 5}
            ),
        }
    )
    trainer = Trainer(cfg, tmp_path / "run", log=lambda _m: None)
    trainer.run()
    agent, replay = trainer.agent, trainer.replay
    together = evaluate_agent(agent, cfg, [0.5, 3.0, 0.3], replay)
    alone = evaluate_agent(agent, cfg, [3.0], replay)
    assert alone[3.0] == together[3.0]
    # the z (PEARL) or adapted actor (MQL) differs between tasks: the check is not vacuous
    assert len(set(together.values())) == 3
