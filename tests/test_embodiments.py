"""Bodies with other state and action spaces (paper Sec. 6 (2)): the 3-leg HalfCheetah."""

import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mcat.errors import MCATError
from mcat.tasks.embodiments import halfcheetah_legs_xml, make_embodiment_env


@pytest.mark.parametrize(
    ("name", "obs", "act"), [("halfcheetah-2leg", 17, 6), ("halfcheetah-3leg", 23, 9)]
)
def test_spaces_and_mass(name, obs, act):
    env = make_embodiment_env(name)
    assert env.observation_space.shape == (obs,) and env.action_space.shape == (act,)
    model = env.unwrapped.model
    assert model.body_mass.sum() == pytest.approx(14.0, rel=1e-6)  # the file's total mass
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_the_middle_leg_is_a_copy_of_the_front_leg_that_carries_weight():
    model = make_embodiment_env("halfcheetah-3leg").unwrapped.model
    names = [model.actuator(i).name for i in range(model.nu)]
    assert names[6:] == ["mid_fthigh", "mid_fshin", "mid_ffoot"]
    np.testing.assert_array_equal(model.actuator_gear[6:, 0], model.actuator_gear[3:6, 0])
    for part in ("fthigh", "fshin", "ffoot"):
        front, middle = model.joint(part), model.joint("mid_" + part)
        np.testing.assert_array_equal(middle.range, front.range)
        np.testing.assert_array_equal(middle.damping, front.damping)
        assert model.body("mid_" + part).mass == pytest.approx(model.body(part).mass)
    # the thigh hangs from the torso's middle
    assert model.body("mid_fthigh").pos[0] == pytest.approx(0.0)
    # standing still, the middle foot touches the floor
    env = make_embodiment_env("halfcheetah-3leg")
    env.reset(seed=0)
    for _ in range(50):
        env.step(np.zeros(9))
    data = env.unwrapped.data
    foot = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "mid_ffoot")
    touching = {int(c.geom1) for c in data.contact[: data.ncon]} | {
        int(c.geom2) for c in data.contact[: data.ncon]
    }
    assert foot in touching


def test_its_actions_move_its_joints_only_through_the_body():
    """The middle leg's motors turn the middle leg's joints."""
    env = make_embodiment_env("halfcheetah-3leg")
    env.reset(seed=0)
    model, data = env.unwrapped.model, env.unwrapped.data
    thigh = model.joint("mid_fthigh").qposadr[0]
    before = float(data.qpos[thigh])
    action = np.zeros(9)
    action[6] = 1.0
    for _ in range(5):
        env.step(action)
    assert abs(float(data.qpos[thigh]) - before) > 0.05


def test_bad_bodies_are_one_line_errors():
    with pytest.raises(MCATError, match="unknown body 'halfcheetah-4leg'"):
        make_embodiment_env("halfcheetah-4leg")
    with pytest.raises(MCATError, match="2 or 3 legs"):
        halfcheetah_legs_xml(4)
