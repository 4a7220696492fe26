"""The paper's MuJoCo task families (Table 2 and Sec. 4), on gymnasium's v5 environments.

Each task changes the compiled MuJoCo model of a freshly built environment (no XML copy per
value), except limb size: a capsule's mass and inertia are computed from its geometry when the
model is compiled, so the size family recompiles the model from a modified spec (see
:func:`sized_hopper_xml`).

Train/test splits are our choice (the paper's appendix, which lists its values, is not public);
every numeric family has test tasks inside the training range (interpolation) and outside it
(extrapolation). Mass and damping are scale factors of the model's own values, as in the
context-aware dynamics model benchmark of Lee et al. 2020 that the paper builds its tasks on.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

import gymnasium as gym
import mujoco
import numpy as np

from mcat.errors import MCATError
from mcat.tasks.family import Choice, Interval, TaskFamily, register_family
from mcat.tasks.wrappers import CrippleActions

if TYPE_CHECKING:
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

POSITIVE = Interval(0.0, math.inf, low_open=True)
NON_NEGATIVE = Interval(0.0, math.inf)

# The authors' Ant (method.md): observation qpos[2:] and qvel (27 numbers, no contact forces);
# reward = forward velocity + a constant 0.05 survive bonus, no control or contact cost; no
# early termination (an infinite healthy-z range keeps the bonus constant).
ANT_PAPER_KWARGS = dict(
    include_cfrc_ext_in_observation=False,
    ctrl_cost_weight=0.0,
    contact_cost_weight=0.0,
    healthy_reward=0.05,
    terminate_when_unhealthy=False,
    healthy_z_range=(-math.inf, math.inf),
)
# The authors' Hopper: no early termination; velocities clipped to +-10 in the observation,
# which gymnasium's Hopper-v5 already does.
HOPPER_PAPER_KWARGS = dict(terminate_when_unhealthy=False)


def _mujoco_env(env: gym.Env) -> MujocoEnv:
    return cast("MujocoEnv", env.unwrapped)  # the families here are built on MuJoCo envs


def _model(env: gym.Env) -> mujoco.MjModel:
    return _mujoco_env(env).model


def _recompute_constants(env: gym.Env) -> None:
    # Quantities derived from masses and armature at compile time (inverse weights used by the
    # constraint solver, subtree masses) must follow the new values.
    mujoco.mj_setConst(_mujoco_env(env).model, _mujoco_env(env).data)


def actuated_dofs(model: mujoco.MjModel) -> np.ndarray:
    """Degrees of freedom driven by the actuators (one per hinge or slide joint)."""
    joints = model.actuator_trnid[:, 0]
    return model.jnt_dofadr[joints]


def set_armature(env: gym.Env, armature: float) -> None:
    """Armature of every actuated joint := ``armature`` (HalfCheetah's default is 0.1)."""
    _model(env).dof_armature[actuated_dofs(_model(env))] = armature
    _recompute_constants(env)


def scale_mass(env: gym.Env, scale: float) -> None:
    """Every body mass times ``scale`` (inertias kept, as in Lee et al. 2020)."""
    _model(env).body_mass[:] *= scale
    _recompute_constants(env)


def scale_damping(env: gym.Env, scale: float) -> None:
    """Every joint's damping times ``scale``."""
    _model(env).dof_damping[:] *= scale


# --- Ant with a crippled leg -----------------------------------------------------------------
# Leg i is the i-th pair of actuators: action components 2i (hip) and 2i+1 (ankle). In
# gymnasium's ant.xml these drive hip_4/ankle_4, hip_1/ankle_1, hip_2/ankle_2, hip_3/ankle_3.
ANT_LEGS = 4
NO_CRIPPLED_LEG = -1
CRIPPLE_SHRINK = 0.5  # size factor of the crippled leg's two moving capsules


def cripple_leg(env: gym.Env, leg: int) -> gym.Env | None:
    """Cripple Ant leg ``leg`` (0..3; -1 = none): its two motors are forced to 0 and the capsules
    of its thigh and shin shrink by :data:`CRIPPLE_SHRINK` (radius and length, so it touches the
    ground less), following the crippled-ant task of Nagabandi et al. 2018."""
    if leg == NO_CRIPPLED_LEG:
        return None
    model = _model(env)
    dims = [2 * int(leg), 2 * int(leg) + 1]  # check_task already gives a Choice's values as ints
    joints = model.actuator_trnid[dims, 0]
    bodies = model.jnt_bodyid[joints]
    geoms = np.flatnonzero(np.isin(model.geom_bodyid, bodies))
    model.geom_size[geoms, :2] *= CRIPPLE_SHRINK
    model.geom_rgba[geoms] = (0.8, 0.2, 0.2, 1.0)
    return CrippleActions(env, dims)


# --- Hopper limb size ------------------------------------------------------------------------
HOPPER_TORSO_RADIUS = 0.05  # gymnasium's hopper.xml


def gym_asset(name: str) -> str:
    import gymnasium.envs.mujoco as gm

    return os.path.join(os.path.dirname(gm.__file__), "assets", name)


def sized_hopper_xml(torso_radius: float) -> str:
    """Path of a Hopper model whose capsule radii are all scaled by
    ``torso_radius / 0.05`` (torso 0.03 -> thigh 0.03, leg 0.024, foot 0.036), compiled anew so
    that masses and inertias follow the geometry, as in the authors' size tasks."""
    spec = mujoco.MjSpec.from_file(gym_asset("hopper.xml"))
    factor = torso_radius / HOPPER_TORSO_RADIUS
    for geom in spec.geoms:
        if geom.type == mujoco.mjtGeom.mjGEOM_CAPSULE:
            geom.size[0] *= factor
    return model_file(spec, "hopper-size")


def model_file(spec: mujoco.MjSpec, name: str) -> str:
    """Path of the XML of ``spec``, compiled, written once to a content-addressed file
    ``NAME-DIGEST.xml`` in the temporary directory (gymnasium's environments load models from
    files)."""
    spec.compile()  # MuJoCo 3.3 writes XML of compiled specs only (4.0 writes the same either way)
    xml = spec.to_xml()
    digest = hashlib.sha1(xml.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "mcat-xml"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{digest}.xml"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(xml)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return str(path)


# --- HalfCheetah with three legs (paper Sec. 6 (2): bodies with other state and action spaces) --
# The paper's 3-leg model is in its unpublished appendix E; this one is our documented choice.
MIDDLE_PREFIX = "mid_"  # the middle leg's names: mid_fthigh, mid_fshin, mid_ffoot
MIDDLE_LEG_X = 0.0  # where the middle thigh joins the torso (the torso spans x = -0.5 ... 0.5)
FRONT_LEG_X = 0.5  # where gymnasium's front thigh joins it


def halfcheetah_legs_xml(legs: int) -> str:
    """Path of the HalfCheetah model with ``legs`` legs: 2, gymnasium's own file; 3, the same
    with a copy of the front leg (joints, geoms, ranges, stiffness, damping, motor gears) under
    the torso's middle, built with MjSpec and named mid_fthigh/mid_fshin/mid_ffoot. Its three
    actions come after the standard six, its joints after the standard ones in the observation
    (9 actions and 23 observations against 6 and 17). It weighs 14 kg like the 2-leg one (each
    body a little lighter); reward and observation follow HalfCheetah-v5 unchanged."""
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


FAMILIES = [
    TaskFamily(
        name="halfcheetah-armature",
        env="HalfCheetah-v5",
        parameter="armature of the 6 actuated joints",
        train_tasks=(0.1, 0.2, 0.3, 0.4, 0.5),
        test_tasks=(0.15, 0.35, 0.05, 0.7),
        domain=NON_NEGATIVE,
        apply=set_armature,
        default_task=0.1,
        description="HalfCheetah, joint armature (Table 1: 0.1 -> 0.5; Fig. 5a)",
        gym_name="HalfCheetahArmature",
    ),
    TaskFamily(
        name="halfcheetah-mass",
        env="HalfCheetah-v5",
        parameter="scale of all body masses",
        train_tasks=(0.5, 0.75, 1.0, 1.25, 1.5),
        test_tasks=(0.6, 1.1, 0.35, 1.8),
        domain=POSITIVE,
        apply=scale_mass,
        default_task=1.0,
        description="HalfCheetah, body mass scale",
        gym_name="HalfCheetahMass",
    ),
    TaskFamily(
        name="hopper-size",
        env="Hopper-v5",
        parameter="torso capsule radius (all capsule radii scaled alike)",
        train_tasks=(0.03, 0.04, 0.05, 0.06, 0.07),
        test_tasks=(0.035, 0.055, 0.02, 0.085),
        domain=Interval(0.0, 0.3, low_open=True),
        task_env_kwargs=lambda radius: {"xml_file": sized_hopper_xml(radius)},
        paper_env_kwargs=HOPPER_PAPER_KWARGS,
        default_task=HOPPER_TORSO_RADIUS,
        description="Hopper, limb size (model recompiled, masses follow geometry)",
        gym_name="HopperSize",
    ),
    TaskFamily(
        name="ant-damping",
        env="Ant-v5",
        parameter="scale of joint damping",
        train_tasks=(0.5, 1.0, 1.5, 2.0, 2.5),
        test_tasks=(0.75, 1.75, 0.25, 3.5),
        domain=NON_NEGATIVE,
        apply=scale_damping,
        paper_env_kwargs=ANT_PAPER_KWARGS,
        default_task=1.0,
        description="Ant, joint damping scale",
        gym_name="AntDamping",
    ),
    TaskFamily(
        name="ant-cripple",
        env="Ant-v5",
        parameter="crippled leg (-1 = none)",
        train_tasks=(0, 1, 2),
        test_tasks=(3,),
        domain=Choice((NO_CRIPPLED_LEG, *range(ANT_LEGS))),
        apply=cripple_leg,
        paper_env_kwargs=ANT_PAPER_KWARGS,
        default_task=NO_CRIPPLED_LEG,
        description="Ant, one leg crippled (Table 1: none -> 3; Fig. 5b: legs 0-3)",
        gym_name="AntCripple",
    ),
    TaskFamily(
        name="halfcheetah-damping",
        env="HalfCheetah-v5",
        parameter="scale of joint damping",
        train_tasks=(0.5, 0.75, 1.0, 1.25, 1.5),
        test_tasks=(0.6, 1.1, 0.25, 2.0),
        domain=NON_NEGATIVE,
        apply=scale_damping,
        default_task=1.0,
        description="HalfCheetah, joint damping scale (extra)",
        gym_name="HalfCheetahDamping",
    ),
    TaskFamily(
        name="hopper-mass",
        env="Hopper-v5",
        parameter="scale of all body masses",
        train_tasks=(0.5, 0.75, 1.0, 1.25, 1.5),
        test_tasks=(0.6, 1.1, 0.35, 1.8),
        domain=POSITIVE,
        apply=scale_mass,
        paper_env_kwargs=HOPPER_PAPER_KWARGS,
        default_task=1.0,
        description="Hopper, body mass scale (extra)",
        gym_name="HopperMass",
    ),
    TaskFamily(
        name="halfcheetah-3leg",
        env="HalfCheetah-v5",
        parameter="armature of the 9 actuated joints",
        train_tasks=(0.1, 0.2, 0.3, 0.4, 0.5),
        test_tasks=(0.15, 0.35, 0.05, 0.7),
        domain=NON_NEGATIVE,
        apply=set_armature,
        task_env_kwargs=lambda _armature: {"xml_file": halfcheetah_legs_xml(3)},
        default_task=0.1,
        description="HalfCheetah with a third leg, joint armature (Sec. 6: 9 actions, 23 states)",
        gym_name="HalfCheetah3LegArmature",
    ),
]

for _family in FAMILIES:
    register_family(_family)
