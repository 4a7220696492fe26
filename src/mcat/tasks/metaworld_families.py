"""Meta-World manipulation tasks (Yu et al. 2020; paper Sec. 5.1, Table 1): a Sawyer arm moves
an object to a goal. The paper's source task pushes a cylinder, its targets move a coffee mug and
a cube; "the agent gets a reward of 1.0 if the object is in the goal location. Otherwise, the
reward is 0", and the source policy is Meta-World's hand-designed one.

Family ``metaworld-push``, tasks named by their Meta-World v3 environment:

- ``push-v3``: push a cylinder to the goal (the source);
- ``coffee-push-v3``: push a coffee mug to the coffee machine;
- ``push-back-v3``: push a cube (the only v3 pushing task whose object is a box geom, a cube of
  side 0.04) back towards the robot.

Our readings, where the paper is silent:

- **fixed goals**: object and goal positions are the ones Meta-World draws from its random layout
  space with numpy's global generator seeded by ``layout_seed`` (0) when the env is built, and
  every episode starts from them (Meta-World's "frozen" random vector), the goal visible in the
  observation as in its goal-observable variants (the scripted policies read it there);
- **reward**: ``info["success"]`` of Meta-World, 1 when the object is within the task's success
  distance of the goal (0.05 for push, 0.07 for coffee-push and push-back), else 0; the dense
  Meta-World reward stays in ``info["dense_reward"]``;
- **episode length**: 500 steps, Meta-World's ``max_path_length`` (the paper's Table 1 scores,
  up to 446.1, fit a 500-step episode at 1 per step).

Meta-World 3.1.1 pins ``mujoco==3.3.0``; this project keeps MuJoCo 4 (every result here was made
with it) and installs metaworld without that pin. The one incompatibility we met: MuJoCo 4 stores
12 numbers per equality constraint (``mjNEQDATA``) where 3.x stored 11, and Meta-World writes 11
into the weld that drives its arm. :func:`_fit_mocap_welds` writes the same 11 and the 12th as
MuJoCo 4 compiles it for a weld with an explicit relative pose (0). With it the scripted policies
succeed on their tasks (tests/test_metaworld.py).
"""

from __future__ import annotations

import warnings
from typing import Any, cast

import gymnasium as gym
import numpy as np

from mcat.errors import MCATError
from mcat.tasks.family import Choice, TaskFamily, register_family

TABLE1_TASKS = ("push-v3", "coffee-push-v3", "push-back-v3")
EPISODE_STEPS = 500
_PATCHED = False


def _metaworld() -> Any:
    try:
        import metaworld
        import metaworld.policies
    except ImportError:
        raise MCATError(
            "Meta-World families need the metaworld package: bash scripts/setup.sh installs it "
            "(or pip install --no-deps metaworld==3.1.1 scipy imageio)"
        ) from None
    _fit_mocap_welds(metaworld)
    return metaworld


def _fit_mocap_welds(metaworld: Any) -> None:
    """Make Meta-World's weld reset fit MuJoCo's ``eq_data`` width (see the module docstring)."""
    global _PATCHED
    if _PATCHED:
        return
    import mujoco
    from metaworld.sawyer_xyz_env import SawyerMocapBase

    original = SawyerMocapBase.reset_mocap_welds
    weld = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0]  # what Meta-World writes

    def reset_mocap_welds(self: Any) -> None:
        model = self.model
        if model.eq_data is None or model.eq_data.shape[1] == len(weld):
            return original(self)  # the MuJoCo Meta-World was made for
        if model.nmocap > 0:
            for i in range(model.eq_data.shape[0]):
                if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                    model.eq_data[i, : len(weld)] = weld
                    model.eq_data[i, len(weld) :] = 0.0
        return None

    SawyerMocapBase.reset_mocap_welds = reset_mocap_welds  # type: ignore[method-assign]
    _PATCHED = True


class SuccessReward(gym.Wrapper):
    """Reward 1 when Meta-World reports success (the object within its success distance of the
    goal), else 0; the dense reward goes to ``info["dense_reward"]``. ``reset(seed=...)`` seeds
    Meta-World's generator, which its own reset ignores (episodes start from the fixed layout
    whatever the seed; the generator matters only to code that draws from it)."""

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
        if seed is not None:
            cast(Any, self.env.unwrapped).seed(seed)
        return self.env.reset(options=options)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info, dense_reward=float(reward))
        return obs, float(info["success"]), terminated, truncated, info


def make_metaworld_env(
    env_name: str = "push-v3",
    layout_seed: int = 0,
    render_mode: str | None = None,
    width: int = 480,
    height: int = 480,
) -> gym.Env:
    """A Meta-World v3 environment with fixed object and goal positions (drawn once with
    ``layout_seed``), the goal observed, and the success reward."""
    metaworld = _metaworld()
    classes = metaworld.env_dict.ALL_V3_ENVIRONMENTS
    if env_name not in classes:
        raise MCATError(
            f"unknown Meta-World environment {env_name!r}; v3 names look like push-v3 "
            f"({len(classes)} of them, e.g. {', '.join(list(classes)[:4])})"
        )
    state = np.random.get_state()  # Meta-World draws the layout from numpy's global generator
    np.random.seed(layout_seed)
    try:
        env = classes[env_name](render_mode=render_mode, width=width, height=height)
        env._partially_observable = False  # the goal is observed (the scripted policies read it)
        del env.sawyer_observation_space  # a cached property: recomputed with the goal's bounds
        env.observation_space = env.sawyer_observation_space
        env._freeze_rand_vec = False  # draw the layout once ...
        env._set_task_called = True
        env.reset()
        env._freeze_rand_vec = True  # ... and start every episode from it
    finally:
        np.random.set_state(state)
    return SuccessReward(env)


def scripted_policy(env_name: str) -> Any:
    """Meta-World's hand-designed policy of ``env_name``: ``policy(obs) -> action`` for one
    observation."""
    policies = _metaworld().policies.ENV_POLICY_MAP
    if env_name not in policies:
        raise MCATError(f"Meta-World has no scripted policy for {env_name!r}")
    get_action = policies[env_name]().get_action

    def policy(obs: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # "Constant(s) may be too high": its actions are clipped
            warnings.simplefilter("ignore", UserWarning)
            return get_action(obs)

    return policy


def positions(obs: np.ndarray) -> dict[str, np.ndarray]:
    """The end effector's, the object's and the goal's positions in Meta-World v3 observations
    (hand xyz, gripper, object xyz and quaternion, a second object, the previous frame's 18
    numbers, goal xyz)."""
    return {"effector": obs[:, 0:3], "object": obs[:, 4:7], "goal": obs[:, 36:39]}


METAWORLD_PUSH = register_family(
    TaskFamily(
        name="metaworld-push",
        env=make_metaworld_env,
        parameter="Meta-World v3 task (object pushed to a fixed goal)",
        train_tasks=("push-v3",),
        test_tasks=("coffee-push-v3", "push-back-v3"),
        domain=Choice(TABLE1_TASKS),
        task_env_kwargs=lambda name: {"env_name": name},
        max_episode_steps=EPISODE_STEPS,
        description="Meta-World: a cylinder (source), a coffee mug and a cube pushed to fixed "
        "goals; reward 1 per step at the goal (paper Table 1)",
        gym_name="MetaWorldPush",
        scripted_policy=scripted_policy,
        positions=positions,
    )
)
