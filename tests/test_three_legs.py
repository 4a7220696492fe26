"""A body with other state and action spaces (paper Sec. 6 (2)): the 3-leg HalfCheetah family,
and a 2-leg policy acting on it through the state and action translators."""

import mujoco
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from mcat.errors import MCATError
from mcat.experiments.transfer import fit_forward_model
from mcat.learners.state_translator import train_joint_translators
from mcat.models import Actor
from mcat.models.reward import fit_reward_model
from mcat.policies import CrossBodyPolicy
from mcat.tasks import get_family
from mcat.tasks.mujoco_families import halfcheetah_legs_xml
from test_models import collect_random

FAMILY = {2: "halfcheetah-armature", 3: "halfcheetah-3leg"}


def body(legs, task=0.1):
    """The standard (2) or the 3-leg HalfCheetah, joint armature ``task``."""
    return get_family(FAMILY[legs]).make_env(task)


@pytest.mark.parametrize(("legs", "obs", "act"), [(2, 17, 6), (3, 23, 9)])
def test_spaces_and_mass(legs, obs, act):
    env = body(legs)
    assert env.observation_space.shape == (obs,) and env.action_space.shape == (act,)
    model = env.unwrapped.model
    assert model.body_mass.sum() == pytest.approx(14.0, rel=1e-6)  # the file's total mass
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_the_middle_leg_is_a_copy_of_the_front_leg_that_carries_weight():
    model = body(3).unwrapped.model
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
    env = body(3)
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
    env = body(3)
    env.reset(seed=0)
    model, data = env.unwrapped.model, env.unwrapped.data
    thigh = model.joint("mid_fthigh").qposadr[0]
    before = float(data.qpos[thigh])
    action = np.zeros(9)
    action[6] = 1.0
    for _ in range(5):
        env.step(action)
    assert abs(float(data.qpos[thigh]) - before) > 0.05


def test_armature_reaches_the_middle_leg_and_other_leg_counts_are_refused():
    model = body(3, task=0.4).unwrapped.model
    np.testing.assert_allclose(model.dof_armature[3:], 0.4)  # all nine actuated joints
    with pytest.raises(MCATError, match="2 or 3 legs"):
        halfcheetah_legs_xml(4)


def _random_transitions(legs, steps, seed):
    """Random-action transitions of one body (task 0.1) as float32 tensors."""
    replay, _, _ = collect_random(FAMILY[legs], [0.1], steps, seed=seed)
    n = int(replay.size[0])
    data = {k: getattr(replay, k)[0, :n] for k in ("obs", "act", "rew")}
    data["next_obs"] = replay.next_obs_at(0, np.arange(n))
    return {k: torch.as_tensor(v) for k, v in data.items()}


def test_a_two_leg_policy_acts_on_the_three_leg_cheetah_through_g_and_h():
    """The whole cross-body pipeline on the real bodies, tiny budgets: the target's F and R, G and
    H trained jointly, and the 2-leg actor driving the 3-leg cheetah through them."""
    src = _random_transitions(2, 300, seed=0)
    tgt = _random_transitions(3, 300, seed=1)
    no_z = np.zeros((300, 0), np.float32)
    F = fit_forward_model(
        tgt["obs"].numpy(), tgt["act"].numpy(), tgt["next_obs"].numpy(), no_z, 20, 64, 0
    )
    R = fit_reward_model(tgt["obs"], tgt["act"], tgt["rew"], 20, 64, 0)
    source = (src["obs"], src["act"], src["rew"], src["next_obs"])
    G, H = train_joint_translators(source, tgt["obs"], F, R, act_dim_target=9, steps=20, batch=64)
    with torch.no_grad():
        assert G(src["obs"][:5]).shape == (5, 23) and G.inverse(tgt["obs"][:5]).shape == (5, 17)
    torch.manual_seed(0)
    policy = CrossBodyPolicy(Actor(17, 6, 0), G, H)
    env = body(3)
    obs, _ = env.reset(seed=0)
    actions = []
    for _ in range(20):
        action = policy.act(obs[None])[0]
        assert action.shape == (9,) and np.all(np.abs(action) <= 1.0)
        actions.append(action)
        obs = env.step(action)[0]
    assert np.isfinite(obs).all() and np.std(actions, axis=0).max() > 0  # it reacts to the state
