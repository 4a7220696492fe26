"""Wrappers that turn a gymnasium environment into one of the paper's tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

import gymnasium as gym
import numpy as np
from gymnasium.utils import RecordConstructorArgs


class DelayedReward(gym.Wrapper, RecordConstructorArgs):
    """Sparse reward by delay (paper Sec. 5.2, after Oh et al. 2018): the dense reward is summed
    and paid out every ``delay`` steps of the episode and at its end (termination or truncation);
    every other step pays 0. The episode's total reward is unchanged.

    ``info["dense_reward"]`` carries the undelayed reward of the step, for analysis only.
    ``delay=1`` is the dense task.
    """

    def __init__(self, env: gym.Env, delay: int):
        RecordConstructorArgs.__init__(self, delay=delay)  # so that env.spec can rebuild it
        gym.Wrapper.__init__(self, env)
        if int(delay) != delay or delay < 1:
            raise ValueError(f"reward delay must be an integer >= 1, got {delay!r}")
        self.delay = int(delay)
        self._pending = 0.0
        self._t = 0

    def reset(self, **kwargs: Any):
        self._pending = 0.0
        self._t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        self._pending += float(reward)
        info["dense_reward"] = float(reward)
        if terminated or truncated or self._t % self.delay == 0:
            reward, self._pending = self._pending, 0.0
        else:
            reward = 0.0
        return obs, reward, terminated, truncated, info


class CrippleActions(gym.ActionWrapper, RecordConstructorArgs):
    """Forces the given action components to 0 (the motors of a crippled leg)."""

    def __init__(self, env: gym.Env, dims: Sequence[int]):
        RecordConstructorArgs.__init__(self, dims=[int(d) for d in dims])
        gym.ActionWrapper.__init__(self, env)
        self.dims = np.asarray(dims, dtype=np.int64)

    def action(self, action):
        action = np.array(action, dtype=self.action_space.dtype, copy=True)
        action[..., self.dims] = 0.0
        return action


# ---------------------------------------------------------------------- checkpointing
# An environment's state is captured layer by layer, outermost wrapper first, so that a fresh
# env built the same way continues bit for bit: each layer's plain attributes (numbers, flags,
# NumPy arrays: TimeLimit's elapsed steps, DelayedReward's pending reward, a toy env's position),
# the base env's random generator and, for MuJoCo envs, MuJoCo's full integration state
# (time, qpos, qvel, act, warm start, controls, applied forces: mj_getState) with the arrays MuJoCo
# derived in the last step (a reward may read them before the next step). A layer with other
# state defines ``get_checkpoint_state()`` and ``set_checkpoint_state(state)``.

_SCALARS = (bool, int, float, str, type(None), np.generic)


class _CustomState(Protocol):
    """A layer that saves its own state (see above)."""

    def get_checkpoint_state(self) -> Any: ...

    def set_checkpoint_state(self, state: Any) -> None: ...


def _layers(env: gym.Env) -> list[gym.Env]:
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _mujoco(env: gym.Env):
    """(mujoco module, model, data, state spec) for a MuJoCo env, else None."""
    model, data = getattr(env, "model", None), getattr(env, "data", None)
    if model is None or data is None or type(model).__module__.split(".")[0] != "mujoco":
        return None
    import mujoco

    return mujoco, model, data, mujoco.mjtState.mjSTATE_INTEGRATION


def env_state(env: gym.Env) -> list[dict]:
    """Everything needed to continue ``env`` mid-episode (plain data; see above)."""
    out = []
    for layer in _layers(env):
        if hasattr(layer, "get_checkpoint_state"):
            out.append({"type": type(layer).__name__, "custom": layer.get_checkpoint_state()})
            continue
        attrs = {}
        for name, value in vars(layer).items():
            if name.startswith("_np_random"):
                continue
            if isinstance(value, _SCALARS):
                attrs[name] = value.item() if isinstance(value, np.generic) else value
            elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                attrs[name] = value.copy()
        entry = {"type": type(layer).__name__, "attrs": attrs}
        if (rng := getattr(layer, "_np_random", None)) is not None:
            entry["np_random"] = rng.bit_generator.state
        if (mj := _mujoco(layer)) is not None:
            mujoco, model, data, spec = mj
            physics = np.empty(mujoco.mj_stateSize(model, spec))
            mujoco.mj_getState(model, data, physics, spec)
            entry["mujoco"] = physics
            # quantities derived during the last step (body positions, contact forces) that a
            # reward may read before the next step recomputes them (Ant's x velocity reads xpos)
            entry["mjdata"] = {
                name: value.copy()
                for name in dir(data)
                if not name.startswith("_") and isinstance(value := getattr(data, name), np.ndarray)
            }
        out.append(entry)
    if env.action_space._np_random is not None:
        out.append(
            {"type": "action_space", "np_random": env.action_space.np_random.bit_generator.state}
        )
    return out


def set_env_state(env: gym.Env, state: list[dict]) -> None:
    """Put a state from :func:`env_state` into ``env``, an env built the same way."""
    layers = _layers(env)
    saved = [s for s in state if s["type"] != "action_space"]
    if [s["type"] for s in saved] != [type(layer).__name__ for layer in layers]:
        raise ValueError(
            f"environment layers {[type(layer).__name__ for layer in layers]} "
            f"differ from the saved {[s['type'] for s in saved]}"
        )
    for layer, entry in zip(layers, saved, strict=True):
        if "custom" in entry:
            # saved by get_checkpoint_state of a layer of this type, which defines both
            cast(_CustomState, layer).set_checkpoint_state(entry["custom"])
            continue
        for name, value in entry["attrs"].items():
            current = getattr(layer, name, None)
            if (
                isinstance(value, np.ndarray)
                and isinstance(current, np.ndarray)
                and current.shape == value.shape
                and current.flags.writeable
            ):
                current[...] = value  # in place: other objects may hold this array
            else:
                setattr(layer, name, value)
        if "np_random" in entry:
            rng = getattr(layer, "_np_random", None)
            if rng is None:
                rng = layer._np_random = np.random.Generator(
                    getattr(np.random, entry["np_random"]["bit_generator"])()
                )
            rng.bit_generator.state = entry["np_random"]
        if "mujoco" in entry:
            mujoco, model, data, spec = _mujoco(layer)
            mujoco.mj_setState(model, data, np.asarray(entry["mujoco"], dtype=np.float64), spec)
            for name, value in entry["mjdata"].items():
                current = getattr(data, name, None)
                if isinstance(current, np.ndarray) and current.shape == value.shape:
                    current[...] = value
    for entry in state:
        if entry["type"] == "action_space":
            env.action_space.np_random.bit_generator.state = entry["np_random"]
