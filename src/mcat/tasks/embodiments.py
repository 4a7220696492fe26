"""Bodies with different state and action spaces, for transfer across embodiments (paper Sec. 6
(2): "2-leg and 3-leg HalfCheetah ... the agents have different numbers of joints on the source
and target task").

A task family shares its spaces (family.py); these bodies do not, so they are not a family but
named environments: ``make_embodiment_env("halfcheetah-3leg")``.

The 3-leg HalfCheetah is gymnasium's HalfCheetah-v5 with a third leg under the middle of the
torso, built with MjSpec from gymnasium's own ``half_cheetah.xml``: a copy of the front leg
(thigh, shin and foot with their joints, geoms, ranges, stiffness, damping and motor gears),
named ``mid_fthigh``/``mid_fshin``/``mid_ffoot``; its three actions come after the six of the
standard cheetah, and its joints after the standard ones in the observation. The paper's
appendix, which gives its 3-leg model, is not public: the copied front leg and its place (x = 0,
the torso's centre) are our choice. The cheetah weighs 14 kg with three legs as with two (the
file's ``settotalmass``; each body is a little lighter). Reward and observation follow
HalfCheetah-v5 unchanged: forward velocity minus 0.1 x the squared action; qpos without rootx,
then qvel. Sizes:

| body | joints (actions) | observation |
| --- | --- | --- |
| halfcheetah-2leg | 6 | 17 |
| halfcheetah-3leg | 9 | 23 |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import mujoco

from mcat.errors import MCATError
from mcat.tasks.mujoco_families import gym_asset, model_file

MIDDLE_PREFIX = "mid_"  # the middle leg's names: mid_fthigh, mid_fshin, mid_ffoot
MIDDLE_LEG_X = 0.0  # where the middle thigh joins the torso (the torso spans x = -0.5 ... 0.5)
FRONT_LEG_X = 0.5  # where gymnasium's front thigh joins it


def halfcheetah_legs_xml(legs: int) -> str:
    """Path of the HalfCheetah model with ``legs`` legs (2: gymnasium's own file; 3: with the
    middle leg), written once to a content-addressed file in the temporary directory."""
    if legs == 2:
        return gym_asset("half_cheetah.xml")
    if legs != 3:
        raise MCATError(f"a HalfCheetah has 2 or 3 legs here, got {legs}")
    spec = mujoco.MjSpec.from_file(gym_asset("half_cheetah.xml"))
    donor = mujoco.MjSpec.from_file(gym_asset("half_cheetah.xml"))
    # attaching a body copies its subtree with joints, geoms and the motors that drive them; the
    # frame shifts the front leg's own offset (x = 0.5) to the middle
    frame = spec.body("torso").add_frame(pos=[MIDDLE_LEG_X - FRONT_LEG_X, 0.0, 0.0])
    frame.attach_body(donor.body("fthigh"), MIDDLE_PREFIX, "")
    # the file's settotalmass="14" (deprecated in MuJoCo 4) scales every density alike: scale
    # them here instead, so the XML needs no settotalmass and loads without a warning
    total = spec.compiler.settotalmass
    spec.compiler.settotalmass = -1
    unscaled = spec.compile()
    factor = total / float(unscaled.body_mass.sum())
    for geom in spec.geoms:
        geom.density *= factor
    return model_file(spec, "halfcheetah-3leg")


@dataclass(frozen=True)
class Embodiment:
    """A named body: a gymnasium environment id and the keyword arguments that build it."""

    name: str
    env: str
    kwargs: Callable[[], dict]
    description: str


EMBODIMENTS = {
    e.name: e
    for e in (
        Embodiment(
            "halfcheetah-2leg",
            "HalfCheetah-v5",
            lambda: {},
            "gymnasium's HalfCheetah: 6 joints, 17 observations",
        ),
        Embodiment(
            "halfcheetah-3leg",
            "HalfCheetah-v5",
            lambda: {"xml_file": halfcheetah_legs_xml(3)},
            "HalfCheetah with a middle leg (a copy of the front leg): 9 joints, 23 observations",
        ),
    )
}


def make_embodiment_env(name: str, **kwargs) -> gym.Env:
    """The environment of the body ``name`` (see EMBODIMENTS); ``kwargs`` go to gym.make."""
    if name not in EMBODIMENTS:
        raise MCATError(f"unknown body {name!r}; choose one of {', '.join(EMBODIMENTS)}")
    body = EMBODIMENTS[name]
    return gym.make(body.env, **body.kwargs(), **kwargs)
