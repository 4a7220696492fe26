"""Task families of the paper (and a toy one), the delayed-reward wrapper, and the registry.

>>> from mcat.tasks import get_family, list_families
>>> fam = get_family("halfcheetah-armature")
>>> env = fam.make_env(fam.train_tasks[0], reward_delay=500, seed=0)
"""

# Built-in families register themselves on import, in the order `mcat families` lists them.
from mcat.tasks import mujoco_families as _mujoco_families  # noqa: F401

# isort: split
from mcat.tasks import metaworld_families as _metaworld_families  # noqa: F401

# isort: split
from mcat.tasks import toy as _toy  # noqa: F401
from mcat.tasks.family import (
    Box,
    Choice,
    Interval,
    TaskFamily,
    TaskValue,
    check_reward_delay,
    get_family,
    list_families,
    register_family,
    task_key,
)
from mcat.tasks.wrappers import CrippleActions, DelayedReward

__all__ = [
    "Box",
    "Choice",
    "CrippleActions",
    "DelayedReward",
    "Interval",
    "TaskFamily",
    "TaskValue",
    "check_reward_delay",
    "get_family",
    "list_families",
    "register_family",
    "task_key",
]
