"""The families as ordinary gymnasium environments (ids, specs that rebuild the task, check_env),
and the collector on gymnasium's vector API: the same transitions as one env per task stepped in
a loop (the collector before the vector API), in every vector mode, across a resume."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mcat.collect import Collector
from mcat.tasks import get_family, list_families
from mcat.tasks.wrappers import env_state

# check_env's notes that are about gymnasium's own MuJoCo spaces or about checking a wrapped env
# (the env a user gets), not findings about our tasks
KNOWN_NOTES = ("is different from the unwrapped version", "Box observation space m")


def _trajectory(env, seed, steps=25):
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, *env.action_space.shape))
    out = []
    for a in actions:
        obs, rew, term, trunc, _ = env.step(a.astype(np.float32))
        out.append((obs.copy(), rew, term, trunc))
        if term or trunc:
            env.reset()
    return out


def _same(a, b):
    return len(a) == len(b) and all(
        np.array_equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("name", list_families())
def test_check_env_passes_and_the_spec_rebuilds_the_task(name):
    fam = get_family(name)
    for task in fam.all_tasks:  # every task passes gymnasium's checker
        env = fam.make_env(task, reward_delay=7)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env, skip_render_check=True)
        notes = [str(w.message) for w in caught]
        assert all(any(k in n for k in KNOWN_NOTES) for n in notes), notes
    for task in (fam.train_tasks[0], fam.test_tasks[-1]):
        env = fam.make_env(task, reward_delay=7)
        spec = env.spec
        assert spec.id == fam.gym_id and spec.kwargs["task"] == task
        assert spec.kwargs["reward_delay"] == 7
        # rebuilt from the spec alone: the same task, not the underlying id's default model
        assert _same(_trajectory(gym.make(spec), 3), _trajectory(fam.make_env(task, 7), 3))
    # the other task of the family really differs (so the comparison above can fail)
    a = _trajectory(fam.make_env(fam.train_tasks[0], 7), 3)
    b = _trajectory(fam.make_env(fam.test_tasks[-1], 7), 3)
    assert not _same(a, b)


def test_gym_make_by_id_gives_the_task_with_its_delay():
    fam = get_family("halfcheetah-armature")
    env = gym.make("mcat/HalfCheetahArmature-v0", task=0.7, reward_delay=5)
    assert _same(_trajectory(env, 1), _trajectory(fam.make_env(0.7, 5), 1))
    rewards = [r for _, r, _, _ in _trajectory(env, 1, steps=10)]
    assert [r != 0 for r in rewards] == [i % 5 == 4 for i in range(10)]  # paid every 5 steps
    # the default task is the unmodified model; episode_steps cuts inside the delay
    env = gym.make("mcat/HalfCheetahArmature-v0", episode_steps=12, reward_delay=5)
    assert env.unwrapped.model.dof_armature[3] == pytest.approx(0.1)
    env.reset(seed=0)
    out = [env.step(env.action_space.sample()) for _ in range(12)]
    assert out[-1][3] and out[-1][1] != 0  # truncated, and the last two steps' reward is paid


# ------------------------------------------------------------------ the vector collector


def _reference(fam, tasks, n, seed, schedule, steps, actions, **kw):
    """The collector as it was before the vector API: one env per task, stepped in a loop; the
    task schedule is the collector's own."""
    envs = [fam.make_env(v, seed=seed * 1000 + i, **kw) for i, v in enumerate(tasks)]
    sched = Collector.__new__(Collector)
    sched.tasks, sched.n, sched.schedule = tasks, n, schedule
    sched.rng, sched._next = np.random.default_rng(seed), n % len(tasks)
    sched.slot_task = np.arange(n)
    obs = np.stack([envs[t].reset()[0] for t in sched.slot_task]).astype(np.float32)
    out = []
    for k in range(steps):
        results = [envs[t].step(a) for t, a in zip(sched.slot_task, actions[k], strict=True)]
        nxt = np.stack([r[0] for r in results]).astype(np.float32)
        rew = np.array([r[1] for r in results], dtype=np.float32)
        done = np.array([r[2] or r[3] for r in results])
        out.append((sched.slot_task.copy(), obs.copy(), nxt.copy(), rew, done))
        for i in np.flatnonzero(done):
            sched.slot_task[i] = sched._pick_next_task(int(sched.slot_task[i]))
            nxt[i] = envs[sched.slot_task[i]].reset()[0]
        obs = nxt
    return out, envs, sched


class _Recorder:
    """Stands in for the replay: keeps what the collector adds, step by step."""

    def __init__(self):
        self.rows = []

    def add(self, obs, act, rew, next_obs, terminated, truncated, tasks):
        self.rows.append(
            (tasks.copy(), obs.copy(), next_obs.copy(), rew.copy(), terminated | truncated)
        )


def _collect(col, steps, actions, start=0):
    rec = _Recorder()
    for k in range(start, start + steps):
        col.step(rec, lambda o, c, a=actions[k]: a)
    return rec.rows


def _equal(a, b):
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        for u, v in zip(x, y, strict=True):
            assert np.array_equal(u, v), f"step {k} differs"


CASES = [
    # family, tasks, slots, schedule, kwargs: lockstep, round-robin and sampled schedules; the
    # Hopper in gymnasium style ends episodes early, at different steps in different slots
    ("point-gain", (0.5, 1.0, 2.0, 3.0), 4, "round-robin", {"max_episode_steps": 7}),
    ("point-gain", (0.5, 1.0, 2.0, 3.0), 2, "round-robin", {"max_episode_steps": 7}),
    ("point-gain", (0.5, 1.0, 2.0, 3.0), 3, "sample", {"max_episode_steps": 5}),
    ("hopper-mass", (0.5, 1.0, 1.5), 2, "round-robin", {"style": "gymnasium"}),
]


@pytest.mark.parametrize("mode", ["sync", "async", "worker"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_vector_collector_equals_one_env_per_task(case, mode):
    name, tasks, n, schedule, kw = CASES[case]
    fam, steps = get_family(name), 60
    act_dim = fam.make_env(tasks[0]).action_space.shape[0]
    actions = np.random.default_rng(5).uniform(-1, 1, (steps, n, act_dim)).astype(np.float32)
    expected, _, _ = _reference(fam, tasks, n, 2, schedule, steps, actions, **kw)
    assert any(x[4].any() for x in expected)  # episodes end, tasks change slots
    col = Collector(
        fam, tasks, 3, seed=2, envs_per_round=n, schedule=schedule, vector_envs=mode, **kw
    )
    try:
        _equal(_collect(col, steps, actions), expected)
    finally:
        col.close()


@pytest.mark.parametrize("mode", ["sync", "async", "worker"])
def test_vector_collector_resumes_exactly_mid_episode(mode):
    fam, tasks = get_family("hopper-mass"), (0.5, 1.0, 1.5)
    kw = {"style": "gymnasium", "envs_per_round": 2, "vector_envs": mode}
    actions = np.random.default_rng(1).uniform(-1, 1, (80, 2, 3)).astype(np.float32)
    whole = Collector(fam, tasks, 3, seed=4, **kw)
    first = Collector(fam, tasks, 3, seed=4, **kw)
    resumed = Collector(fam, tasks, 3, seed=4, **kw)
    try:
        expected = _collect(whole, 80, actions)
        _collect(first, 45, actions)
        resumed.load_state_dict(first.state_dict())
        assert any(x[4].any() for x in expected[:45]) and any(x[4].any() for x in expected[45:])
        _equal(_collect(resumed, 35, actions, start=45), expected[45:])
    finally:
        for col in (whole, first, resumed):
            col.close()


def test_a_checkpoint_with_one_env_per_task_resumes_in_slots():
    """Checkpoints written before the vector API kept one env per task: a run with fewer slots
    than tasks continues from one exactly."""
    fam, tasks = get_family("point-gain"), (0.5, 1.0, 2.0, 3.0)
    actions = np.random.default_rng(2).uniform(-1, 1, (50, 2, 2)).astype(np.float32)
    expected, _, _ = _reference(fam, tasks, 2, 0, "round-robin", 50, actions, max_episode_steps=6)
    _, envs, sched = _reference(fam, tasks, 2, 0, "round-robin", 20, actions, max_episode_steps=6)
    col = Collector(fam, tasks, 3, envs_per_round=2, max_episode_steps=6)
    state = col.state_dict()
    state = {k: v for k, v in state.items() if k not in ("slots", "task_rng")}
    state.update(
        envs=[env_state(env) for env in envs],
        slot_task=sched.slot_task.copy(),
        next=sched._next,
        obs=np.stack([expected[19][2][i] for i in range(2)]),
    )
    # the observation after a reset is the reset's, not the step's
    for i in np.flatnonzero(expected[19][4]):
        state["obs"][i] = expected[20][1][i]
    col.load_state_dict(state)
    _equal(_collect(col, 30, actions, start=20), expected[20:])


def test_the_readme_sb3_example_trains_on_the_task():
    """The README's Stable-Baselines3 example, run as written with a shorter budget."""
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = next(
        b.split("\n", 1)[1]
        for b in readme.split("```")[1::2]
        if b.startswith("python") and "stable_baselines3" in b
    )
    short = block.replace("total_timesteps=20_000", "total_timesteps=300").replace(
        "learning_starts=1_000", "learning_starts=100"
    )
    assert short != block
    scope: dict = {}
    exec(short.replace("verbose=1", "verbose=0"), scope)
    model = scope["model"]
    assert model.num_timesteps == 300
    trained_on = model.get_env().envs[0].unwrapped
    assert trained_on.model.dof_armature[3] == pytest.approx(0.3)  # the task, not the default


def test_a_users_family_gets_a_gym_id():
    from mcat.tasks import TaskFamily, register_family
    from mcat.tasks.toy import POINT_GAIN

    fam = TaskFamily(
        name="my-point_gain",
        env=POINT_GAIN.env,
        parameter="gain",
        train_tasks=(1.0, 2.0),
        test_tasks=(4.0,),
        domain=POINT_GAIN.domain,
        apply=POINT_GAIN.apply,
        max_episode_steps=9,
    )
    register_family(fam, overwrite=True)
    assert fam.gym_id == "mcat/MyPointGain-v0"
    env = gym.make(fam.gym_id, task=4.0, reward_delay=3)
    assert env.unwrapped.gain == 4.0 and env.spec.kwargs["task"] == 4.0
    assert _same(_trajectory(env, 0, steps=9), _trajectory(fam.make_env(4.0, 3), 0, steps=9))
    with pytest.raises(Exception, match="gym_name"):
        TaskFamily(**{**fam.__dict__, "gym_name": "bad/name"})
    # an id taken by another family refuses the new one, which stays unregistered
    from mcat.tasks import list_families

    with pytest.raises(Exception, match="is already taken by 'point-gain'"):
        register_family(TaskFamily(**{**fam.__dict__, "name": "clash", "gym_name": "PointGain"}))
    assert "clash" not in list_families()


def test_float32_observations_are_not_aliased():
    """An env whose observations are already float32: the collector keeps its own copies (the
    vector env reuses one buffer for every step's observations)."""
    from mcat.tasks import TaskFamily, register_family
    from mcat.tasks.toy import POINT_GAIN

    def as_float32(env, gain):
        POINT_GAIN.apply(env, gain)
        space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        return gym.wrappers.TransformObservation(env, lambda o: o.astype(np.float32), space)

    fam = register_family(
        TaskFamily(
            name="test-point-gain-float32",
            env=POINT_GAIN.env,
            parameter="gain",
            train_tasks=(0.5, 2.0),
            test_tasks=(),
            domain=POINT_GAIN.domain,
            apply=as_float32,
            max_episode_steps=6,
        ),
        overwrite=True,
    )
    actions = np.random.default_rng(3).uniform(-1, 1, (20, 2, 2)).astype(np.float32)
    expected, _, _ = _reference(fam, fam.train_tasks, 2, 0, "round-robin", 20, actions)
    col = Collector(fam, fam.train_tasks, 3)
    rows = _collect(col, 20, actions)
    assert not np.array_equal(rows[3][1], rows[3][2])  # obs and next obs differ
    _equal(rows, expected)


def test_training_logs_are_the_same_in_both_modes_and_across_a_mode_change(tmp_path):
    from mcat.train import Trainer
    from toy_runs import logs, quiet, toy_config

    def cfg(mode):
        return toy_config(steps=600, envs_per_round=3, schedule="sample", vector_envs=mode)

    Trainer(cfg("sync"), tmp_path / "sync", log=quiet).run()
    Trainer(cfg("async"), tmp_path / "async", log=quiet).run()
    assert logs(tmp_path / "async") == logs(tmp_path / "sync")
    # stopped in sync mode, continued in a worker process: the same run, the same logs
    assert Trainer(cfg("sync"), tmp_path / "both", log=quiet).run(stop_at=300) is None
    Trainer.start_or_resume(cfg("worker"), tmp_path / "both", log=quiet).run()
    assert logs(tmp_path / "both") == logs(tmp_path / "sync")
