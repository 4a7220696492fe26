"""MCAT's own parts: the self-imitation losses and the policy-transfer rule."""

import pytest
import torch

from mcat.errors import MCATError
from mcat.learners.sil import sil_actor_loss, sil_critic_loss
from mcat.models import Actor, TwinCritic
from mcat.policy_transfer import OWN, PolicyTransfer, PTConfig


@pytest.fixture
def nets():
    torch.manual_seed(0)
    return Actor(3, 2, 0, (16,), 1.0), TwinCritic(3, 2, 0, (16,))


def _batch(critic, n=8):
    obs, act, z = torch.randn(n, 3), torch.rand(n, 2) * 2 - 1, torch.zeros(n, 0)
    with torch.no_grad():
        q1, q2 = critic(obs, act, z)
    return obs, act, z, q1, q2


def test_sil_losses_are_zero_where_returns_are_below_the_critic(nets):
    actor, critic = nets
    obs, act, z, q1, q2 = _batch(critic)
    below = torch.max(q1, q2) - 1.0
    valid = torch.ones(len(obs))
    assert sil_critic_loss(*critic(obs, act, z), below, valid).item() == 0.0
    assert sil_actor_loss(actor(obs, z), act, torch.min(q1, q2), below, valid).item() == 0.0


def test_sil_losses_are_positive_where_returns_are_above_and_only_those_rows_count(nets):
    actor, critic = nets
    obs, act, z, q1, q2 = _batch(critic)
    ret = torch.max(q1, q2) - 1.0
    ret[:2] = torch.max(q1, q2)[:2] + 2.0  # two transitions did better than the critic thinks
    valid = torch.ones(len(obs))
    critic_loss = sil_critic_loss(*critic(obs, act, z), ret, valid)
    expected = 0.5 * ((ret - q1).clamp_min(0) ** 2 + (ret - q2).clamp_min(0) ** 2).sum() / len(obs)
    assert critic_loss.item() > 0 and critic_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # the actor is pulled towards the stored actions of those two rows only
    actor_loss = sil_actor_loss(actor(obs, z), act, torch.min(q1, q2), ret, valid)
    with torch.no_grad():
        expected = ((actor(obs, z) - act) ** 2).sum(-1)[:2].sum() / len(obs)
    assert actor_loss.item() > 0 and actor_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    actor_loss.backward()
    assert any(p.grad.abs().sum() > 0 for p in actor.parameters())
    assert all(p.grad is None for p in critic.parameters())  # the critic only judges here
    # rows whose episode has not ended yet never count, even with a high return
    invalid = torch.zeros(len(obs))
    assert sil_critic_loss(*critic(obs, act, z), ret, invalid).item() == 0.0
    assert sil_actor_loss(actor(obs, z), act, torch.min(q1, q2), ret, invalid).item() == 0.0


def test_sil_critic_step_raises_q_towards_achieved_returns(nets):
    _, critic = nets
    obs, act, z, q1, _ = _batch(critic)
    ret = torch.max(q1, _) + 5.0
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _step in range(50):
        loss = sil_critic_loss(*critic(obs, act, z), ret, torch.ones(len(obs)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        new_q1, _ = critic(obs, act, z)
    assert (new_q1 > q1 + 2.5).all()


def test_policy_transfer_rule():
    pt = PolicyTransfer(3, PTConfig(window=2, stale_after=6))
    assert pt.choose(0) == OWN  # nothing known yet: the learned policy is the baseline
    pt.record(0, OWN, 10.0)
    pt.record(1, OWN, 50.0)
    pt.record(2, OWN, 30.0)
    assert pt.choose(1) == OWN  # the best task has no candidate source
    assert pt.choose(0) == 1  # both 1 and 2 beat task 0; the best learned task is tried first
    pt.record(0, 1, 5.0)  # ... and does worse than the learned policy
    assert pt.choose(0) == 2  # the other candidate gets its first trial
    pt.record(0, 2, 40.0)
    assert pt.choose(0) == 2  # it beats the learned policy: keep collecting with it
    pt.record(0, 2, 20.0)  # mean of the last two: 30 > 10, still better
    assert pt.choose(0) == 2
    pt.record(0, 2, 0.0)
    pt.record(0, 2, 0.0)  # mean 0 < 10 and source 1 scored 5: back to the learned policy
    assert pt.choose(0) == OWN
    assert pt.choose(2) == 1  # on task 2, task 1 is the only candidate


def test_policy_transfer_drops_stale_results_and_retries():
    pt = PolicyTransfer(2, PTConfig(window=1, stale_after=3))
    pt.record(1, OWN, 100.0)
    pt.record(0, OWN, 10.0)
    pt.record(0, 1, 0.0)  # transfer tried once, it was bad
    assert pt.choose(0) == OWN
    pt.record(0, OWN, 10.0)
    pt.record(0, OWN, 10.0)
    assert pt.choose(0) == OWN  # the failed trial is still among the last 3 episodes
    pt.record(0, OWN, 10.0)  # now it is not: stale
    assert pt.score(0, 1) is None and pt.choose(0) == 1  # tried again
    # state round trip
    other = PolicyTransfer(2, PTConfig(window=1, stale_after=3))
    other.load_state_dict(pt.state_dict())
    assert other.choose(0) == 1 and other.score(0, OWN) == pt.score(0, OWN)


def test_policy_transfer_needs_two_tasks_and_sane_knobs():
    with pytest.raises(MCATError, match="at least two training tasks"):
        PolicyTransfer(1)
    with pytest.raises(MCATError, match="stale_after >= window"):
        PolicyTransfer(2, PTConfig(window=5, stale_after=2))


def test_mcat_agent_follows_its_model_block_with_a_translator_block_and_adds_sil_to_td3():
    """The agent's C+F block is followed by an H block (the learning of that H is checked in
    test_translator.py, from the C+F trained there), the transferred actions the collector would
    use come out of act_transferred, and the TD3 step gets the SIL terms."""
    import numpy as np

    from mcat.agents.mcat import MCATAgent, MCATConfig
    from test_models import collect_random
    from test_translator import GAINS

    torch.manual_seed(0)
    replay, o, a = collect_random("point-gain", GAINS, 200)
    agent = MCATAgent(o, a, MCATConfig(model_batch_size=16, translator_warmup_steps=7))
    agent.update_models(replay, 5)  # the warm-up: 5 C+F steps, then 7 H steps
    assert agent.model_steps_done == 5 and agent.translator_steps_done == 7
    assert agent.features is not None and agent.features.shape == (3, agent.cfg.z_dim)
    obs = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    moved = agent.act_transferred(obs, np.array([0, 1, 2, 0]), np.array([1, 2, 0, 2]))
    with torch.no_grad():
        s = torch.as_tensor(obs)
        z = agent.features
        expected = agent.translator(s[:1], agent.actor(s[:1], z[:1]), z[:1], z[1:2])
    assert moved.shape == (4, 2) and np.allclose(moved[0], expected.numpy()[0], atol=1e-6)
    # SIL: the TD3 step samples the Monte-Carlo returns and adds the SIL terms
    assert agent.rl_extra_fields == ("mc_return", "mc_valid")
    b = {"mc_return": torch.full((1, 4), 1e3), "mc_valid": torch.ones(1, 4)}
    act = torch.zeros(4, 2)
    q1, q2 = agent.critic(s, act, torch.zeros(4, agent.cfg.z_dim))
    assert agent.critic_extra_loss(b, q1, q2).item() > 0
    assert agent.actor_extra_loss(b, act + 0.5, act, torch.min(q1, q2).detach()).item() > 0
    agent.cfg.sil = False
    assert (
        agent.critic_extra_loss(b, q1, q2) is None
        and agent.actor_extra_loss(b, act + 0.5, act, q1) is None
    )
