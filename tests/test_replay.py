"""Replay windows match a slow reference, never cross episodes, and memory stays near raw size."""

import numpy as np
import pytest

from mcat import MCATError
from mcat.replay import MultiTaskReplay, discounted_returns
from mcat.replay.store import with_every_next_obs
from mcat.tasks import get_family

OBS, ACT = 3, 2


class ReferenceLog:
    """Every transition ever written, per task, in write order (the slow, obvious model)."""

    def __init__(self, num_tasks):
        # (episode, obs, act, rew, next_obs, term, ended)
        self.rows = [[] for _ in range(num_tasks)]
        self.episode = [0] * num_tasks

    def add(self, task, obs, act, rew, next_obs, term, trunc):
        self.rows[task].append([self.episode[task], obs, act, rew, next_obs, term, term or trunc])
        if term or trunc:
            self.episode[task] += 1

    def expected(self, task, slot, capacity, K, M, gamma):
        rows = self.rows[task]
        n = len(rows)
        # the write that last filled this slot
        w = max(i for i in range(slot, n, capacity))
        oldest = max(0, n - capacity)
        ep = rows[w][0]

        def same_episode(v):
            return oldest <= v < n and rows[v][0] == ep

        def pair(v):
            if not same_episode(v):
                return np.zeros(OBS), np.zeros(OBS), np.zeros(ACT), 0.0
            r = rows[v]
            return r[1], r[4] - r[1], r[2], 1.0

        ctx = [pair(w - k) for k in range(K, -1, -1)]  # steps w-K..w
        fut = [pair(w + m) for m in range(M)]
        end = w
        while not rows[end][6] and end + 1 < n:
            end += 1
        ended = rows[end][6]
        ret = 0.0
        if ended:
            for v in range(end, w - 1, -1):
                ret = rows[v][3] + gamma * ret
        return dict(
            obs=rows[w][1],
            rew=rows[w][3],
            done=float(rows[w][5]),
            mc_return=ret,
            mc_valid=float(ended),
            ctx_delta=np.array([c[1] for c in ctx]),
            ctx_act=np.array([c[2] for c in ctx]),
            ctx_mask=np.array([c[3] for c in ctx]),
            fut_obs=np.array([f[0] for f in fut]),
            fut_delta=np.array([f[1] for f in fut]),
            fut_act=np.array([f[2] for f in fut]),
            fut_mask=np.array([f[3] for f in fut]),
        )


def _fill_random(replay, log, steps, rng, max_len=12, chained=False):
    """Random transitions; ``chained``: as a collector writes them, each step's s the s' of the
    step before in its episode (else every s is drawn anew: the replay keeps every s' apart)."""
    T = replay.num_tasks
    remaining = rng.integers(1, max_len, size=T)
    carry = {}
    for _ in range(steps):
        tasks = np.flatnonzero(rng.random(T) < 0.7)  # tasks advance unevenly
        if not tasks.size:
            continue
        n = len(tasks)
        obs = rng.normal(size=(n, OBS)).astype(np.float32)
        if chained:
            for k, t in enumerate(tasks):
                obs[k] = carry.get(t, obs[k])
        act = rng.uniform(-1, 1, size=(n, ACT)).astype(np.float32)
        rew = rng.normal(size=n).astype(np.float32)
        nxt = rng.normal(size=(n, OBS)).astype(np.float32)
        remaining[tasks] -= 1
        end = remaining[tasks] == 0
        term = end & (rng.random(n) < 0.5)
        trunc = end & ~term
        replay.add(obs, act, rew, nxt, term, trunc, tasks=tasks)
        for k, t in enumerate(tasks):
            log.add(t, obs[k], act[k], rew[k], nxt[k], bool(term[k]), bool(trunc[k]))
            carry[t] = nxt[k]
            if end[k]:
                del carry[t]
        remaining[tasks[end]] = rng.integers(1, max_len, size=int(end.sum()))


@pytest.mark.parametrize("chained", [True, False])
@pytest.mark.parametrize("steps", [5, 30, 200])  # partly filled, about full, wrapped many times
def test_windows_match_slow_reference(steps, chained):
    rng = np.random.default_rng(steps)
    K, M, C, gamma = 4, 3, 25, 0.9
    replay = MultiTaskReplay(3, OBS, ACT, capacity=C, gamma=gamma, seed=1)
    log = ReferenceLog(3)
    _fill_random(replay, log, steps, rng, chained=chained)
    # s' stored once: apart only each ended episode's last one still in the ring (chained) or
    # every one (not chained, beside the running episode's newest)
    for t in range(3):
        ring = replay.episode[t, : replay.size[t]]
        ended = len(set(ring.tolist()) - {int(replay.current_episode[t])})
        apart = ended if chained else replay.size[t] - (ring == replay.current_episode[t]).any()
        assert replay.last_count[t] == apart
    # an old checkpoint, which saved every s', loads to the same store
    state = with_every_next_obs(replay.state_dict())
    for key in ("last_obs", "last_head", "last_count"):
        del state[key]
    del state["arrays"]["last_ref"]
    loaded = MultiTaskReplay(3, OBS, ACT, capacity=C, gamma=gamma, seed=1)
    loaded.load_state_dict(state)
    tasks = np.flatnonzero(replay.size > 0)
    for t in tasks:
        slots = np.arange(C)
        np.testing.assert_array_equal(loaded.next_obs_at(t, slots), replay.next_obs_at(t, slots))
    assert (loaded.last_count == replay.last_count).all()
    batch = replay.sample(64, context=K, future=M, tasks=tasks)
    for ti, task in enumerate(tasks):
        for b in range(64):
            exp = log.expected(task, batch.slot[ti, b], C, K, M, gamma)
            np.testing.assert_allclose(batch.obs[ti, b], exp["obs"])
            assert batch.rew[ti, b] == pytest.approx(exp["rew"])
            assert batch.done[ti, b] == exp["done"]
            assert batch.mc_valid[ti, b] == exp["mc_valid"]
            assert batch.mc_return[ti, b] == pytest.approx(exp["mc_return"], rel=1e-5, abs=1e-5)
            np.testing.assert_allclose(batch.ctx_delta[ti, b], exp["ctx_delta"][:-1], rtol=1e-6)
            np.testing.assert_allclose(batch.ctx_act[ti, b], exp["ctx_act"][:-1])
            np.testing.assert_array_equal(batch.ctx_mask[ti, b], exp["ctx_mask"][:-1])
            np.testing.assert_allclose(batch.next_ctx_delta[ti, b], exp["ctx_delta"][1:], rtol=1e-6)
            np.testing.assert_allclose(batch.next_ctx_act[ti, b], exp["ctx_act"][1:])
            np.testing.assert_array_equal(batch.next_ctx_mask[ti, b], exp["ctx_mask"][1:])
            np.testing.assert_allclose(batch.fut_obs[ti, b], exp["fut_obs"])
            np.testing.assert_allclose(batch.fut_delta[ti, b], exp["fut_delta"], rtol=1e-6)
            np.testing.assert_allclose(batch.fut_act[ti, b], exp["fut_act"])
            np.testing.assert_array_equal(batch.fut_mask[ti, b], exp["fut_mask"])


@pytest.mark.parametrize("steps", [30, 200])  # not yet wrapped, wrapped many times
def test_a_store_loaded_into_a_larger_capacity_keeps_its_windows(steps):
    """A run given a larger budget loads its replay into a larger store (mcat.train.extend_run):
    unwrapped rings stay as they are, so the store is the one a larger capacity would have
    filled; wrapped ones are laid out oldest first; every window stays right as it fills on."""
    K, M, C, C2, gamma = 4, 3, 25, 40, 0.9
    small = MultiTaskReplay(3, OBS, ACT, capacity=C, gamma=gamma, seed=1)
    log = ReferenceLog(3)
    _fill_random(small, log, steps, np.random.default_rng(steps))
    wrapped = small.ptr != small.size
    assert wrapped.any() == (steps == 200)
    grown = MultiTaskReplay(3, OBS, ACT, capacity=C2, gamma=gamma, seed=1)
    grown.load_state_dict(small.state_dict())
    if steps == 30:
        large = MultiTaskReplay(3, OBS, ACT, capacity=C2, gamma=gamma, seed=1)
        _fill_random(large, ReferenceLog(3), steps, np.random.default_rng(steps))
        for name in large._ARRAYS:
            np.testing.assert_array_equal(getattr(grown, name), getattr(large, name))
    for t in range(3):  # what the small ring had overwritten is gone from the log too
        del log.rows[t][: len(log.rows[t]) - int(small.size[t])]
    _fill_random(grown, log, 30, np.random.default_rng(7))
    batch = grown.sample(64, context=K, future=M)
    for t in range(3):
        for b in range(64):
            exp = log.expected(t, batch.slot[t, b], C2, K, M, gamma)
            np.testing.assert_allclose(batch.obs[t, b], exp["obs"])
            assert batch.mc_valid[t, b] == exp["mc_valid"]
            assert batch.mc_return[t, b] == pytest.approx(exp["mc_return"], rel=1e-5, abs=1e-5)
            np.testing.assert_array_equal(batch.ctx_mask[t, b], exp["ctx_mask"][:-1])
            np.testing.assert_allclose(batch.ctx_delta[t, b], exp["ctx_delta"][:-1], rtol=1e-6)
            np.testing.assert_array_equal(batch.fut_mask[t, b], exp["fut_mask"])
            np.testing.assert_allclose(batch.fut_obs[t, b], exp["fut_obs"])
    smaller = MultiTaskReplay(3, OBS, ACT, capacity=C - 1, gamma=gamma, seed=1)
    with pytest.raises(MCATError, match="saved replay has shape"):
        smaller.load_state_dict(small.state_dict())
    empty = MultiTaskReplay(3, OBS, ACT, capacity=C2, gamma=gamma, seed=2)
    empty.load_state_dict(small.state_dict(contents=False))  # checkpoint_replay: false
    assert len(empty) == 0 and empty.rng.random() == small.rng.random()


def test_windows_never_cross_episode_boundaries():
    """Episodes of known lengths: every valid window step is from the sampled step's episode."""
    replay = MultiTaskReplay(2, 1, 1, capacity=256, seed=0)  # no wrap: every episode start is kept
    step_in_episode = np.zeros(2)
    episode = np.zeros(2)
    lengths = [3, 7, 1, 10, 5, 2, 9, 4, 8, 6, 3, 11] * 4
    left = np.array([lengths[0], lengths[1]])
    k = 2
    for _ in range(150):
        # obs encodes (episode, step): windows that cross an episode show a different episode
        obs = (episode * 1000 + step_in_episode)[:, None]
        left -= 1
        end = left == 0
        replay.add(obs, np.ones((2, 1)), np.zeros(2), obs + 1, np.zeros(2, bool), end)
        step_in_episode += 1
        for t in np.flatnonzero(end):
            episode[t] += 1
            step_in_episode[t] = 0
            left[t] = lengths[k % len(lengths)]
            k += 1
    batch = replay.sample(512, context=6, future=6)
    ep = np.floor(batch.obs[..., 0] / 1000)
    step = batch.obs[..., 0] % 1000
    for window, mask, offsets in ((batch.fut_obs, batch.fut_mask, np.arange(6)),):
        same = np.floor(window[..., 0] / 1000) == ep[..., None]
        assert np.all(same[mask == 1])
        np.testing.assert_array_equal(
            window[..., 0][mask == 1], (step[..., None] + offsets + ep[..., None] * 1000)[mask == 1]
        )
    # context: the k-th previous step exists exactly when the sampled step is at least k into its
    # episode
    np.testing.assert_array_equal(
        batch.ctx_mask, (step[..., None] >= np.arange(6, 0, -1)).astype(np.float32)
    )
    np.testing.assert_array_equal(batch.ctx_act[batch.ctx_mask == 0], 0.0)
    # future: exists while the episode goes on (and has been written)
    assert batch.fut_mask[..., 0].all()


def test_real_env_windows_chain_states():
    """On HalfCheetah data, windows are consecutive steps: s_{t+1} = s_t + delta_t inside an
    episode."""
    fam = get_family("halfcheetah-armature")
    tasks = fam.train_tasks[:2]
    envs = [
        fam.make_env(v, reward_delay=50, seed=i, max_episode_steps=120) for i, v in enumerate(tasks)
    ]
    obs = np.stack([e.reset()[0] for e in envs])
    replay = MultiTaskReplay(2, 17, 6, capacity=500, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(400):
        act = rng.uniform(-1, 1, (2, 6))
        out = [e.step(a) for e, a in zip(envs, act, strict=True)]
        nxt = np.stack([o[0] for o in out])
        term = np.array([o[2] for o in out])
        trunc = np.array([o[3] for o in out])
        replay.add(obs, act, [o[1] for o in out], nxt, term, trunc)
        obs = np.stack(
            [e.reset()[0] if (o[2] or o[3]) else n for e, o, n in zip(envs, out, nxt, strict=True)]
        )
    b = replay.sample(128, context=10, future=10)
    np.testing.assert_array_equal(b.fut_obs[:, :, 0], b.obs)
    both = (b.fut_mask[..., 1:] * b.fut_mask[..., :-1]) == 1
    recon = b.fut_obs[..., :-1, :] + b.fut_delta[..., :-1, :]
    np.testing.assert_allclose(recon[both], b.fut_obs[..., 1:, :][both], atol=1e-5)
    np.testing.assert_allclose(b.next_ctx_delta[:, :, -1], b.next_obs - b.obs, atol=1e-5)
    np.testing.assert_array_equal(b.next_ctx_act[:, :, -1], b.act)
    # delayed reward: only every 50th step (or the 120th) pays, and every episode has ended once
    assert (b.rew != 0).mean() < 0.1
    assert b.mc_valid.mean() > 0.5


def test_memory_per_transition_is_under_one_and_a_half_raw():
    for obs_dim, act_dim in ((17, 6), (11, 3), (27, 8), (2, 2)):
        replay = MultiTaskReplay(5, obs_dim, act_dim, capacity=1000)
        ratio = replay.bytes_per_transition() / replay.raw_transition_bytes()
        assert ratio < 1.5, (obs_dim, act_dim, ratio)
        if obs_dim > 2:  # s' stored once: less than a bare (s, a, r, s', done)
            assert ratio < 0.75, (obs_dim, act_dim, ratio)


def test_discounted_returns():
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 0.0, 2.0]), 0.5), [1.5, 1.0, 2.0])


def test_bad_use_is_refused():
    replay = MultiTaskReplay(2, OBS, ACT, capacity=5)
    with pytest.raises(MCATError, match="no stored transitions"):
        replay.sample(4)
    z = np.zeros((2, OBS))
    with pytest.raises(MCATError, match="same task twice"):
        replay.add(z, np.zeros((2, ACT)), np.zeros(2), z, [0, 0], [0, 0], tasks=[1, 1])
    for bad in ([0, 2], [-1, 0]):
        with pytest.raises(MCATError, match=r"task index outside 0\.\.1"):
            replay.add(z, np.zeros((2, ACT)), np.zeros(2), z, [0, 0], [0, 0], tasks=bad)
    for _ in range(3):
        replay.add(z, np.zeros((2, ACT)), np.zeros(2), z, [0, 0], [0, 0])
    before = replay.obs.copy()
    with pytest.raises(MCATError, match="reached the replay capacity"):
        replay.add(z + 1, np.zeros((2, ACT)), np.zeros(2), z, [0, 0], [0, 0])
        replay.add(z + 1, np.zeros((2, ACT)), np.zeros(2), z, [0, 0], [0, 0])
    assert len(replay) == 8 and np.array_equal(replay.obs[:, :3], before[:, :3])
    with pytest.raises(MCATError, match="capacity must be a positive integer"):
        MultiTaskReplay(2, OBS, ACT, capacity=0)
    with pytest.raises(MCATError, match="batch size"):
        replay.sample(0)
