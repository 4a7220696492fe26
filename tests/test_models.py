"""Context encoder, forward model, contrastive loss and TD3 target: behaviour that can fail."""

import numpy as np
import pytest
import torch

from mcat.agents.ctd3 import CTD3Agent, CTD3Config
from mcat.analysis import context_accuracy, forward_nll, train_context_free_model
from mcat.learners.dynamics import contrastive_loss
from mcat.learners.td3 import soft_update, td3_target
from mcat.models import RunningNorm
from mcat.replay import MultiTaskReplay
from mcat.tasks import get_family


def collect_random(family_name, tasks, steps, seed=0, capacity=None, **make_kwargs):
    fam = get_family(family_name)
    envs = [fam.make_env(v, seed=seed + i, **make_kwargs) for i, v in enumerate(tasks)]
    obs_dim, act_dim = envs[0].observation_space.shape[0], envs[0].action_space.shape[0]
    replay = MultiTaskReplay(len(envs), obs_dim, act_dim, capacity or steps + 2, seed=seed)
    rng = np.random.default_rng(seed)
    obs = np.stack([e.reset()[0] for e in envs])
    for _ in range(steps):
        act = rng.uniform(-1, 1, (len(envs), act_dim))
        out = [e.step(a) for e, a in zip(envs, act, strict=True)]
        nxt = np.stack([o[0] for o in out])
        replay.add(obs, act, [o[1] for o in out], nxt, [o[2] for o in out], [o[3] for o in out])
        obs = np.stack(
            [e.reset()[0] if (o[2] or o[3]) else n for e, o, n in zip(envs, out, nxt, strict=True)]
        )
    return replay, obs_dim, act_dim


def test_running_norm_matches_numpy_statistics():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 4)).astype(np.float32)
    mask = rng.random(1000) < 0.7
    norm = RunningNorm(4)
    for chunk, m in zip(np.array_split(data, 7), np.array_split(mask, 7), strict=True):
        norm.update(torch.from_numpy(chunk), torch.from_numpy(m.astype(np.float32)))
    np.testing.assert_allclose(norm.mean.numpy(), data[mask].mean(0), rtol=1e-4)
    np.testing.assert_allclose(norm.var.numpy(), data[mask].var(0), rtol=1e-3)


def test_running_norm_drops_a_feature_that_never_varies():
    """Fitted where feature 1 only jitters (a Meta-World cube's orientation: variance 1e-9), a
    point that moves by 0.1 there (a source task's cylinder tilting) is normalised to 0 there, not
    to ~3,000, and denormalised to the feature's mean; a varying feature keeps its own scale."""
    rng = np.random.default_rng(0)
    data = np.stack([rng.normal(0.0, 0.2, 5000), 0.7 + rng.normal(0.0, 3e-5, 5000)], 1)
    norm = RunningNorm(2)
    norm.update(torch.as_tensor(data, dtype=torch.float32))
    z = norm(torch.tensor([[0.2, 0.8]]))[0]
    assert float(z[0]) == pytest.approx(0.2 / data[:, 0].std(), rel=1e-2)
    assert float(z[1]) == 0.0
    back = norm.denormalize(torch.tensor([[1.0, 5.0]]))[0]
    assert float(back[0]) == pytest.approx(data[:, 0].mean() + data[:, 0].std(), abs=1e-3)
    assert float(back[1]) == pytest.approx(0.7, abs=1e-5)


def test_contrastive_loss_by_hand():
    z = torch.tensor([[[0.0, 0.0], [0.0, 1.0]], [[3.0, 0.0], [0.5, 0.0]]])  # 2 tasks x 2 contexts
    # same-task squared distances: 1 (task 0) and 6.25 (task 1), each counted twice -> mean 3.625
    # cross-task distances: 3, 0.5, sqrt(10), sqrt(1.25);
    # hinge (margin 1) squared: 0, 0.25, 0, (1-1.118)->0
    expected = 3.625 + (0.25 * 2) / 8
    assert float(contrastive_loss(z, margin=1.0)) == pytest.approx(expected, rel=1e-5)


def test_td3_target_by_hand():
    actor = lambda obs, z: torch.full((obs.shape[0], 1), 0.9)  # noqa: E731
    critic = lambda obs, a, z: (2 * a[:, 0] + 1, a[:, 0] + 1.5)  # noqa: E731
    obs = torch.zeros(3, 2)
    z = torch.zeros(3, 1)
    rew = torch.tensor([1.0, 1.0, 0.5])
    done = torch.tensor([0.0, 1.0, 0.0])
    noise = torch.tensor([[0.7], [0.7], [-0.2]])
    y = td3_target(
        critic,
        actor,
        obs,
        z,
        rew,
        done,
        gamma=0.9,
        policy_noise=0.2,
        noise_clip=0.5,
        max_action=1.0,
        noise=noise,
    )
    # sample 0: a = clip(0.9 + clip(0.7, 0.5)) = 1.0 -> min(3.0, 2.5) = 2.5 -> 1 + 0.9 * 2.5
    # sample 1: terminal -> r; sample 2: a = 0.7 -> min(2.4, 2.2) -> 0.5 + 0.9 * 2.2
    np.testing.assert_allclose(y.numpy(), [3.25, 1.0, 2.48], rtol=1e-6)


def test_soft_update_moves_targets_by_tau():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = b.weight.detach().clone()
    soft_update(b, a, 0.25)
    np.testing.assert_allclose(
        b.weight.detach().numpy(), (0.75 * before + 0.25 * a.weight.detach()).numpy(), rtol=1e-6
    )


SMALL_F = {"model_hidden": 64, "model_layers": 2}  # a forward model at a fifth of the cost


def _train_dynamics(replay, obs_dim, act_dim, steps, seed=0, **cfg):
    torch.manual_seed(seed)
    agent = CTD3Agent(obs_dim, act_dim, CTD3Config(model_batch_size=64, **cfg))
    agent.update_models(replay, steps)
    return agent


@pytest.mark.slow  # about 45 s of one core; the HalfCheetah context check runs in the fast suite
def test_context_separates_toy_tasks_and_forward_model_beats_context_free():
    """point-gain: s' = s + 0.1 gain a; a history of (s'-s, a) pairs reveals the gain."""
    tasks = get_family("point-gain").train_tasks
    replay, o, a = collect_random("point-gain", tasks, 600)
    agent = _train_dynamics(replay, o, a, steps=300)
    acc = context_accuracy(agent.encoder, replay)
    assert acc > 0.9, acc  # chance: 0.2
    baseline = train_context_free_model(replay, o, a, steps=300)
    with_context = forward_nll(agent.forward_model, agent.encoder, replay)
    without = forward_nll(baseline, None, replay)
    assert with_context < without - 0.5, (with_context, without)


def test_contrastive_loss_pulls_same_task_contexts_together():
    tasks = get_family("point-gain").train_tasks
    replay, o, a = collect_random("point-gain", tasks, 400)
    spreads = {}
    for weight in (0.0, 1.0):
        # 100 steps and a small F (2 x 64; the encoder at its default): within/between spread
        # 0.10 with the loss vs 0.31 without, measured with one thread (with the paper's F,
        # 4 x 200: 0.13 vs 0.56, at five times the cost)
        agent = _train_dynamics(replay, o, a, steps=100, contrastive_weight=weight, **SMALL_F)
        with torch.no_grad():
            b = replay.sample(128, context=10, rng=np.random.default_rng(3))
            z = agent.encoder(*(torch.as_tensor(x) for x in (b.ctx_delta, b.ctx_act, b.ctx_mask)))
            within = z.var(1).sum(-1).mean()  # spread of a task's contexts
            between = z.mean(1).var(0).sum()  # spread of the task features
        spreads[weight] = float(within / between)
    assert spreads[1.0] < spreads[0.0], spreads


def test_context_on_halfcheetah_armature_is_informative():
    """Real environment, short budget: contexts of 3 armatures are told apart above chance."""
    fam = get_family("halfcheetah-armature")
    replay, o, a = collect_random(
        "halfcheetah-armature", (0.1, 0.3, 0.5), 1500, max_episode_steps=250
    )
    agent = _train_dynamics(replay, o, a, steps=150, **SMALL_F)  # 0.96 (0.96 with 4 x 200)
    acc = context_accuracy(agent.encoder, replay, segments=256)
    assert acc > 0.6, acc  # chance: 1/3
    assert fam is not None


@pytest.mark.parametrize("schedule", ["round-robin", "sample"])
def test_collector_with_fewer_envs_visits_every_task(schedule):
    from mcat.collect import Collector

    fam = get_family("point-gain")
    col = Collector(
        fam,
        fam.train_tasks,
        history=3,
        seed=0,
        envs_per_round=2,
        schedule=schedule,
        max_episode_steps=10,
    )
    replay = MultiTaskReplay(5, 2, 2, capacity=200)
    seen = []
    for _ in range(60):  # 12 episodes per env
        for ep in col.step(replay, lambda obs, c: np.zeros((c.n, 2))):
            seen.append(ep.task)
        assert len(set(col.slot_task.tolist())) == 2  # never two envs on one task
    assert col.env_steps == 120 and len(seen) == 12
    assert set(seen) == set(range(5))
    assert replay.size.sum() == 120
    if schedule == "round-robin":  # each task gets its turn in order
        assert sorted(np.bincount(seen, minlength=5)) in ([2, 2, 2, 3, 3], [2, 2, 3, 3, 2])


def test_context_history_matches_replay_windows():
    """The acting-time context equals the replay's context window for the same step."""
    from mcat.collect import Collector

    fam = get_family("point-gain")
    col = Collector(fam, fam.train_tasks[:2], history=4, seed=1, max_episode_steps=9)
    replay = MultiTaskReplay(2, 2, 2, capacity=100, seed=0)
    rng = np.random.default_rng(0)
    snapshots = []
    for _ in range(20):
        snapshots.append(
            (col.ctx.delta.copy(), col.ctx.act.copy(), col.ctx.mask.copy(), replay.ptr.copy())
        )
        col.step(replay, lambda obs, c: rng.uniform(-1, 1, (c.n, 2)))
    for delta, act, mask, ptr in snapshots:
        for task in range(2):
            # the slot written right after the snapshot holds the step the context was for
            batch = replay.sample(
                1, context=4, tasks=[task], rng=_FixedSlot(ptr[task], replay.size[task])
            )
            np.testing.assert_allclose(batch.ctx_delta[0, 0], delta[task], atol=1e-6)
            np.testing.assert_allclose(batch.ctx_act[0, 0], act[task], atol=1e-6)
            np.testing.assert_array_equal(batch.ctx_mask[0, 0], mask[task])


class _FixedSlot:
    """A stand-in generator whose draw selects one given slot."""

    def __init__(self, slot, size):
        self.u = (slot + 0.5) / size

    def random(self, shape):
        return np.full(shape, self.u)
