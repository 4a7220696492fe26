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

import functools
import warnings
from typing import Any, cast

import gymnasium as gym
import numpy as np

from mcat.errors import MCATError
from mcat.tasks.family import Box, Choice, TaskFamily, register_family

TABLE1_TASKS = ("push-v3", "coffee-push-v3", "push-back-v3")
EPISODE_STEPS = 500
REACH_STEPS = 200  # the scripted reach gets there in about 40 steps
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
    goal: tuple[float, ...] | None = None,
    goal_observed: bool = True,
    object_position: tuple[float, ...] | None = None,
    hand_position: tuple[float, ...] | None = None,
) -> gym.Env:
    """A Meta-World v3 environment with fixed object and goal positions (drawn once with
    ``layout_seed``; ``goal``, ``object_position`` and ``hand_position`` replace the drawn or
    default ones), the goal observed or not (zeros in its place, Meta-World's "goal hidden"), and
    the success reward."""
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
        env._partially_observable = not goal_observed  # the scripted policies read the goal
        if goal is not None:  # a goal outside the task's own goal space widens it: Meta-World
            low, high = env.goal_space.low, env.goal_space.high  # clips observations to it
            goal_at = np.asarray(goal, dtype=np.float64)
            if (goal_at < low).any() or (goal_at > high).any():
                env.goal_space = gym.spaces.Box(
                    np.minimum(low, goal_at), np.maximum(high, goal_at), dtype=np.float64
                )
        del env.sawyer_observation_space  # a cached property: recomputed with the goal's bounds
        env.observation_space = env.sawyer_observation_space
        env._freeze_rand_vec = False  # draw the layout once ...
        env._set_task_called = True
        env.reset()
        env._freeze_rand_vec = True  # ... and start every episode from it
        vec = env._last_rand_vec.copy()  # the object's position first, the goal's last
        if object_position is not None:
            vec[:3] = object_position
        if goal is not None:
            vec[-3:] = goal
        if hand_position is not None:
            env.hand_init_pos = np.asarray(hand_position, dtype=np.float64)
        if goal is not None or object_position is not None or hand_position is not None:
            env._last_rand_vec = vec
            env.reset()
    finally:
        np.random.set_state(state)
    return SuccessReward(env)


class InverseDistanceReward(gym.Wrapper):
    """Reward ``scale / (scale + d)`` with d the distance from the end effector to the goal: 1
    at the goal, 1/2 at ``scale`` from it (paper Sec. 6 (1): "inversely proportional to its
    distance from the goal location"; the offset keeps it finite at the goal)."""

    def __init__(self, env: gym.Env, scale: float = 0.05):
        super().__init__(env)
        self.scale = scale

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        base = cast(Any, self.env.unwrapped)
        distance = float(np.linalg.norm(base.tcp_center - base._target_pos))
        info = dict(info, dense_reward=info.get("dense_reward", float(reward)), distance=distance)
        return obs, self.scale / (self.scale + distance), terminated, truncated, info


@functools.cache
def layout(env_name: str, layout_seed: int = 0) -> dict[str, tuple[float, ...]]:
    """The layout ``env_name`` draws with ``layout_seed``: the hand's start, the object's start
    and the goal (computed once per process: building the env takes a fraction of a second)."""
    env = cast(Any, make_metaworld_env(env_name, layout_seed=layout_seed).unwrapped)
    vec = env._last_rand_vec
    return {
        "hand": tuple(float(v) for v in env.hand_init_pos),
        "object": tuple(float(v) for v in vec[:3]),
        "goal": tuple(float(v) for v in vec[-3:]),
    }


def make_aligned_push_env(
    env_name: str = "push-v3", layout_seed: int = 0, **kwargs: Any
) -> gym.Env:
    """A ``metaworld-push`` task laid out as the source: the hand starts where push-v3's does
    and the object and the goal sit at the cylinder's and its goal's (x, y), each at its own
    height (the mug stands on the table, the cube and the cylinder 2 cm up). Family
    ``metaworld-push-aligned``."""
    if env_name == "push-v3":  # the source itself: exactly metaworld-push's
        return make_metaworld_env(env_name, layout_seed=layout_seed, **kwargs)
    src, own = layout("push-v3", layout_seed), layout(env_name, layout_seed)
    return make_metaworld_env(
        env_name,
        layout_seed=layout_seed,
        object_position=(*src["object"][:2], own["object"][2]),
        goal=(*src["goal"][:2], own["goal"][2]),
        hand_position=src["hand"],
        **kwargs,
    )


REACH_OBJECT = (0.0, 0.6, 0.02)  # the puck of reach-v3 (unused) where no goal is within 0.15 of it


def make_reach_env(goal: tuple[float, ...] = (0.0, 0.85, 0.175), **kwargs: Any) -> gym.Env:
    """Meta-World reach-v3 with its goal at ``goal``, hidden from the observation, and the
    inverse-distance reward (family ``metaworld-reach``)."""
    env = make_metaworld_env(
        "reach-v3", goal=goal, goal_observed=False, object_position=REACH_OBJECT, **kwargs
    )
    return InverseDistanceReward(env)


def scripted_reach_policy(goal: tuple[float, ...]) -> Any:
    """Meta-World's reach policy told the goal (which the observation hides): it moves the end
    effector to ``goal`` whatever the task's own goal is."""
    reach = scripted_policy("reach-v3")
    where = np.asarray(goal, dtype=np.float64)

    def policy(obs: np.ndarray) -> np.ndarray:
        told = np.array(obs, dtype=np.float64)
        told[-3:] = where
        return reach(told)

    return policy


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


def positions(obs: np.ndarray, task: Any) -> dict[str, np.ndarray]:
    """The end effector's, the object's and the goal's positions in Meta-World v3 observations
    (hand xyz, gripper, object xyz and quaternion, a second object, the previous frame's 18
    numbers, goal xyz)."""
    return {"effector": obs[:, 0:3], "object": obs[:, 4:7], "goal": obs[:, 36:39]}


def reach_positions(obs: np.ndarray, goal: Any) -> dict[str, np.ndarray]:
    """As :func:`positions`, the goal being the task (the observation hides it); the object is
    reach-v3's idle puck."""
    return positions(obs, goal) | {
        "goal": np.tile(np.asarray(goal, dtype=np.float32), (len(obs), 1))
    }


METAWORLD_REACH = register_family(
    TaskFamily(
        name="metaworld-reach",
        env=make_reach_env,
        parameter="goal position (x, y, z) of Meta-World reach-v3, hidden from the policy",
        train_tasks=((0.0, 0.85, 0.175),),
        test_tasks=((0.1, 0.85, 0.175), (0.0, 0.9, 0.3), (-0.1, 0.8, 0.1)),
        domain=Box((-0.1, 0.8, 0.05), (0.1, 0.9, 0.3)),  # reach-v3's goal space
        task_env_kwargs=lambda goal: {"goal": goal},
        max_episode_steps=REACH_STEPS,
        description="Meta-World reach with the goal as the task and reward decreasing with the "
        "distance to it (paper Sec. 6 (1))",
        gym_name="MetaWorldReach",
        scripted_policy=scripted_reach_policy,
        positions=reach_positions,
    )
)


def _push_family(name: str, env: Any, description: str, gym_name: str) -> TaskFamily:
    """A Table 1 family: push-v3 the source, the mug and the cube the targets."""
    return register_family(
        TaskFamily(
            name=name,
            env=env,
            parameter="Meta-World v3 task (object pushed to a fixed goal)",
            train_tasks=("push-v3",),
            test_tasks=("coffee-push-v3", "push-back-v3"),
            domain=Choice(TABLE1_TASKS),
            task_env_kwargs=lambda task: {"env_name": task},
            max_episode_steps=EPISODE_STEPS,
            description=description,
            gym_name=gym_name,
            scripted_policy=scripted_policy,
            positions=positions,
        )
    )


METAWORLD_PUSH = _push_family(
    "metaworld-push",
    make_metaworld_env,
    "Meta-World: a cylinder (source), a coffee mug and a cube pushed to fixed goals; reward 1 "
    "per step at the goal (paper Table 1)",
    "MetaWorldPush",
)
METAWORLD_PUSH_ALIGNED = _push_family(
    "metaworld-push-aligned",
    make_aligned_push_env,
    "metaworld-push with the mug and the cube started where the cylinder is, pushed to the "
    "cylinder's goal, the hand starting where push-v3's does",
    "MetaWorldPushAligned",
)
