"""Task families: tasks really differ in dynamics, the paper's settings hold, bad values are
refused."""

import math

import numpy as np
import pytest

from mcat import MCATError
from mcat.tasks import get_family, list_families
from mcat.tasks.mujoco_families import FAMILIES, HOPPER_TORSO_RADIUS

MUJOCO_FAMILIES = [f.name for f in FAMILIES]


def _state_after_random_steps(env, steps=5, seed=0):
    """A state with non-zero velocities, to compare tasks from."""
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        env.step(rng.uniform(-1, 1, env.action_space.shape))
    u = env.unwrapped
    return u.data.qpos.copy(), u.data.qvel.copy()


def _step_from(env, qpos, qvel, action):
    env.reset(seed=0)
    env.unwrapped.set_state(qpos, qvel)
    obs, *_ = env.step(action)
    return obs


def test_builtin_families_are_registered():
    names = list_families()
    for name in [
        "halfcheetah-armature",
        "halfcheetah-mass",
        "hopper-size",
        "ant-damping",
        "ant-cripple",
        "halfcheetah-damping",
        "hopper-mass",
    ]:
        assert name in names


@pytest.mark.parametrize("name", MUJOCO_FAMILIES)
def test_splits_have_test_tasks_inside_and_outside_training_range(name):
    fam = get_family(name)
    assert len(fam.train_tasks) >= 3 and fam.test_tasks
    assert not set(fam.train_tasks) & set(fam.test_tasks)
    if name == "ant-cripple":  # categorical: the test leg is never crippled in training
        return
    lo, hi = min(fam.train_tasks), max(fam.train_tasks)
    assert any(lo < v < hi for v in fam.test_tasks), "no interpolation test task"
    assert any(v < lo or v > hi for v in fam.test_tasks), "no extrapolation test task"


@pytest.mark.parametrize("name", MUJOCO_FAMILIES)
def test_every_task_of_a_family_has_its_own_dynamics(name):
    """Same state, same action, different next state for every pair of tasks."""
    fam = get_family(name)
    envs = [fam.make_env(v, seed=0) for v in fam.all_tasks]
    qpos, qvel = _state_after_random_steps(envs[0])
    action = np.random.default_rng(1).uniform(-1, 1, envs[0].action_space.shape)
    next_obs = np.stack([_step_from(e, qpos, qvel, action) for e in envs])
    # The same task twice gives the same next state: the comparison is meaningful.
    again = _step_from(fam.make_env(fam.all_tasks[0], seed=3), qpos, qvel, action)
    np.testing.assert_array_equal(again, next_obs[0])
    for i in range(len(envs)):
        for j in range(i + 1, len(envs)):
            gap = np.abs(next_obs[i] - next_obs[j]).max()
            assert gap > 1e-4, (
                f"{name}: tasks {fam.all_tasks[i]} and {fam.all_tasks[j]} step alike ({gap})"
            )


def test_crippled_leg_actions_have_no_effect():
    fam = get_family("ant-cripple")
    env = fam.make_env(2, seed=0)
    qpos, qvel = _state_after_random_steps(env)
    action = np.random.default_rng(2).uniform(-1, 1, 8)
    base = _step_from(env, qpos, qvel, action)
    changed_crippled = action.copy()
    changed_crippled[4:6] = -changed_crippled[4:6]  # leg 2 = action components 4 and 5
    np.testing.assert_array_equal(_step_from(env, qpos, qvel, changed_crippled), base)
    changed_intact = action.copy()
    changed_intact[0:2] = -changed_intact[0:2]
    assert np.abs(_step_from(env, qpos, qvel, changed_intact) - base).max() > 1e-4


def test_crippled_leg_geoms_shrink_but_masses_stay():
    fam = get_family("ant-cripple")
    intact = fam.make_env(-1).unwrapped.model
    crippled = fam.make_env(1).unwrapped.model
    np.testing.assert_array_equal(intact.body_mass, crippled.body_mass)
    shrunk = np.flatnonzero(crippled.geom_size[:, 0] < intact.geom_size[:, 0])
    assert len(shrunk) == 2  # the thigh and shin capsules of one leg
    joints = crippled.actuator_trnid[[2, 3], 0]
    assert set(crippled.geom_bodyid[shrunk]) == set(crippled.jnt_bodyid[joints])


def test_hopper_size_recompiles_masses_from_geometry():
    """Torso radius 0.03 scales every capsule radius by 0.6; masses = density x capsule volume."""
    radius = 0.03
    model = get_family("hopper-size").make_env(radius).unwrapped.model
    factor = radius / HOPPER_TORSO_RADIUS
    radii = np.array([0.05, 0.05, 0.04, 0.06]) * factor
    half_lengths = np.array([0.2, 0.225, 0.25, 0.195])
    volume = math.pi * radii**2 * 2 * half_lengths + 4 / 3 * math.pi * radii**3
    np.testing.assert_allclose(model.body_mass[1:], 1000.0 * volume, rtol=1e-6)
    np.testing.assert_allclose(model.geom_size[1:, 0], radii)


def test_armature_mass_damping_change_the_model_arrays():
    hc = get_family("halfcheetah-armature").make_env(0.5).unwrapped.model
    np.testing.assert_allclose(hc.dof_armature, [0, 0, 0] + [0.5] * 6)
    default_mass = get_family("halfcheetah-mass").make_env(1.0).unwrapped.model.body_mass
    heavy = get_family("halfcheetah-mass").make_env(1.5).unwrapped.model.body_mass
    np.testing.assert_allclose(heavy, 1.5 * default_mass)
    ant = get_family("ant-damping").make_env(2.0).unwrapped.model
    np.testing.assert_allclose(ant.dof_damping, [0] * 6 + [2.0] * 8)


def test_paper_ant_observation_and_reward():
    env = get_family("ant-damping").make_env(1.0, seed=0)
    obs, _ = env.reset()
    assert obs.shape == (27,)  # qpos[2:] and qvel, no contact forces
    for _ in range(20):
        _, reward, terminated, _, info = env.step(env.action_space.sample())
        assert reward == pytest.approx(info["x_velocity"] + 0.05)
        assert not terminated
    gym_style = get_family("ant-damping").make_env(1.0, style="gymnasium")
    assert gym_style.observation_space.shape == (105,)


def test_paper_hopper_has_no_early_termination():
    fam = get_family("hopper-mass")
    lengths = {}
    for style in ("paper", "gymnasium"):
        env = fam.make_env(1.0, seed=0, style=style)
        env.reset()
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            done = terminated or truncated
            if style == "paper":
                assert not terminated
        lengths[style] = steps
    assert lengths["paper"] == 1000
    assert lengths["gymnasium"] < 1000  # a random hopper falls over


def test_seed_makes_resets_reproducible():
    fam = get_family("halfcheetah-mass")
    a, b, c = (fam.make_env(1.0, seed=s) for s in (5, 5, 6))
    oa, ob, oc = a.reset()[0], b.reset()[0], c.reset()[0]
    np.testing.assert_array_equal(oa, ob)
    assert not np.array_equal(oa, oc)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("halfcheetah-mass", -1.0, "must be (0, inf)"),
        ("hopper-mass", 0.0, "must be (0, inf)"),
        ("halfcheetah-armature", -0.1, "must be [0, inf)"),
        ("ant-cripple", 4, "one of -1, 0, 1, 2, 3"),
        ("ant-cripple", 1.5, "one of -1, 0, 1, 2, 3"),
        ("hopper-size", 0.0, "(0, 0.3]"),
        ("hopper-size", "big", "must be a number"),
        ("ant-damping", float("nan"), "must be [0, inf)"),
    ],
)
def test_invalid_task_values_are_refused(name, value, message):
    with pytest.raises(MCATError) as err:
        get_family(name).make_env(value)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_values_outside_the_lists_but_in_range_are_allowed():
    env = get_family("halfcheetah-armature").make_env(0.27)
    assert env.unwrapped.model.dof_armature[3] == pytest.approx(0.27)


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(MCATError) as err:
        get_family("halfcheetah-size")
    assert "unknown task family 'halfcheetah-size'" in str(err.value)
    assert "halfcheetah-armature" in str(err.value) and "ant-cripple" in str(err.value)


def test_unknown_style_is_refused():
    with pytest.raises(MCATError, match="unknown env style"):
        get_family("point-gain").make_env(1.0, style="dense")
