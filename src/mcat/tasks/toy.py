"""A tiny NumPy task family for fast tests and tutorials (not from the paper).

``point-gain``: a point in the plane moves by ``s' = s + 0.1 * gain * a`` towards a fixed goal;
tasks differ in the actuator gain. Because the dynamics are linear in the action, the exactly
equivalent action across tasks is known: ``a_tgt = a_src * gain_src / gain_tgt`` (while within
the action bounds), which makes it a ground truth for the action translator.
"""

from __future__ import annotations

from typing import cast

import gymnasium as gym
import numpy as np

from mcat.tasks.family import Interval, TaskFamily, register_family


class PointGainEnv(gym.Env):
    """2-D point mass with action gain ``gain``; reward = -distance to the goal after the step."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it a class attribute)
    DT = 0.1
    GOAL = np.array([1.0, 1.0])

    def __init__(self, gain: float = 1.0):
        self.gain = float(gain)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._pos = np.zeros(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._pos = self.np_random.normal(0.0, 0.05, size=2)
        return self._pos.copy(), {}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self._pos = self._pos + self.DT * self.gain * a
        reward = -float(np.linalg.norm(self._pos - self.GOAL))
        return self._pos.copy(), reward, False, False, {}


def _set_gain(env: gym.Env, gain: float) -> None:
    cast(PointGainEnv, env.unwrapped).gain = float(gain)  # the family's env


POINT_GAIN = register_family(
    TaskFamily(
        name="point-gain",
        env=PointGainEnv,
        parameter="actuator gain",
        train_tasks=(0.5, 0.75, 1.0, 1.5, 2.0),
        test_tasks=(0.6, 1.25, 0.3, 3.0),
        domain=Interval(0.0, 10.0, low_open=True),
        apply=_set_gain,
        default_task=1.0,
        max_episode_steps=50,
        description="toy NumPy point mass, action gain (for tests and tutorials)",
        gym_name="PointGain",
    )
)
