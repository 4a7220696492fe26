"""The same random actions on four families' tasks under whichever MuJoCo is imported: total
reward over 1,000 steps from a seeded reset. Run it on two MuJoCo versions to see whether they
give the same physics (README, Meta-World: why this project stays on MuJoCo 4):

    .venv/bin/python benchmarks/mujoco_physics_check.py
    .venv/bin/pip install -q --no-deps --target /tmp/mj33 mujoco==3.3.0
    PYTHONPATH=/tmp/mj33 .venv/bin/python benchmarks/mujoco_physics_check.py
"""

import mujoco
import numpy as np

from mcat.tasks import get_family

print("mujoco", mujoco.__version__)
for family, task in [
    ("halfcheetah-armature", 0.3),
    ("halfcheetah-3leg", 0.2),
    ("ant-cripple", 1),
    ("hopper-size", 0.05),
]:
    env = get_family(family).make_env(task)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(1000):
        _, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        total += float(reward)
        if terminated or truncated:
            env.reset()
    print(f"{family} {task}: {total:.1f}")
