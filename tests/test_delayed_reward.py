"""The delayed reward pays the dense total in lumps, exactly where it should."""

import itertools

import numpy as np
import pytest

from mcat import MCATError
from mcat.tasks import get_family


def _run_episode(env, rng):
    env.reset()
    rewards, dense, done = [], [], False
    while not done:
        _, r, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
        rewards.append(r)
        dense.append(info["dense_reward"])
        done = terminated or truncated
    return np.array(rewards), np.array(dense), terminated


def _expected_payouts(length, delay):
    steps = set(range(delay, length + 1, delay)) | {length}
    return sorted(s - 1 for s in steps)  # 0-based step indices


@pytest.mark.parametrize("delay", [1, 7, 50, 64])
def test_toy_delay_pays_dense_total_at_multiples_and_at_the_end(delay):
    env = get_family("point-gain").make_env(1.0, reward_delay=delay, seed=0)
    rewards, dense, _ = _run_episode(env, np.random.default_rng(0))
    assert len(rewards) == 50
    # toy rewards are never 0
    assert np.flatnonzero(rewards).tolist() == _expected_payouts(50, delay)
    assert rewards.sum() == pytest.approx(dense.sum(), rel=1e-12)
    # each payout is the sum of the dense rewards since the previous one
    edges = [-1, *_expected_payouts(50, delay)]
    for a, b in itertools.pairwise(edges):
        assert rewards[b] == pytest.approx(dense[a + 1 : b + 1].sum(), rel=1e-12)


def test_halfcheetah_delay_300_over_1000_steps():
    env = get_family("halfcheetah-armature").make_env(0.1, reward_delay=300, seed=1)
    rewards, dense, terminated = _run_episode(env, np.random.default_rng(1))
    assert len(rewards) == 1000 and not terminated
    assert np.flatnonzero(rewards).tolist() == [299, 599, 899, 999]
    assert rewards.sum() == pytest.approx(dense.sum(), rel=1e-9)


def test_delayed_reward_is_paid_at_termination():
    env = get_family("hopper-mass").make_env(1.0, reward_delay=1000, seed=0, style="gymnasium")
    rewards, dense, terminated = _run_episode(env, np.random.default_rng(0))
    assert terminated and len(rewards) < 1000
    assert np.flatnonzero(rewards).tolist() == [len(rewards) - 1]
    assert rewards[-1] == pytest.approx(dense.sum(), rel=1e-9)


def test_pending_reward_does_not_leak_into_next_episode():
    env = get_family("point-gain").make_env(1.0, reward_delay=20, seed=0, max_episode_steps=50)
    env.reset()
    for _ in range(10):  # abandon the episode mid-way with reward pending
        env.step(env.action_space.sample())
    rewards, dense, _ = _run_episode(env, np.random.default_rng(0))
    assert rewards.sum() == pytest.approx(dense.sum(), rel=1e-12)


def test_delay_one_is_the_dense_reward():
    env = get_family("halfcheetah-mass").make_env(
        1.0, reward_delay=1, seed=0, max_episode_steps=100
    )
    rewards, dense, _ = _run_episode(env, np.random.default_rng(0))
    np.testing.assert_array_equal(rewards, dense)


@pytest.mark.parametrize("delay", [0, -5, 2.5, True, "10", None])
def test_bad_delays_are_refused(delay):
    with pytest.raises(MCATError, match="reward delay"):
        get_family("point-gain").make_env(1.0, reward_delay=delay)
