"""Wrappers that turn a gymnasium environment into one of the paper's tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np


class DelayedReward(gym.Wrapper):
    """Sparse reward by delay (paper Sec. 5.2, after Oh et al. 2018): the dense reward is summed
    and paid out every ``delay`` steps of the episode and at its end (termination or truncation);
    every other step pays 0. The episode's total reward is unchanged.

    ``info["dense_reward"]`` carries the undelayed reward of the step, for analysis only.
    ``delay=1`` is the dense task.
    """

    def __init__(self, env: gym.Env, delay: int):
        super().__init__(env)
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


class CrippleActions(gym.ActionWrapper):
    """Forces the given action components to 0 (the motors of a crippled leg)."""

    def __init__(self, env: gym.Env, dims: Sequence[int]):
        super().__init__(env)
        self.dims = np.asarray(dims, dtype=np.int64)

    def action(self, action):
        action = np.array(action, dtype=self.action_space.dtype, copy=True)
        action[..., self.dims] = 0.0
        return action
