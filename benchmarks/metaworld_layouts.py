"""Does Meta-World's scripted push policy still reach the goal when the cylinder and the goal are
placed where the coffee mug or the cube of the targets are (sharing the targets' layouts would
make the source's states overlap the targets')? Returns of 500-step episodes, reward 1 per step at
the goal (family metaworld-push's reward), and where the hand and the object end:

    .venv/bin/python benchmarks/metaworld_layouts.py
"""

import numpy as np

from mcat.tasks.metaworld_families import make_metaworld_env, scripted_policy


def run(env_name, policy_name, hand, obj, goal):
    env = make_metaworld_env(env_name, object_position=obj, goal=goal)
    base = env.unwrapped
    if hand is not None:
        base.hand_init_pos = np.array(hand)
    obs, _ = env.reset()
    policy, total = scripted_policy(policy_name), 0.0
    for _ in range(500):
        obs, reward, *_ = env.step(policy(obs))
        total += reward
    return f"return {total:.0f}, hand ends at {obs[:3].round(3)}, object at {obs[4:7].round(3)}"


# Measured 2026-11-26 (after make_metaworld_env widened the goal space to a goal placed outside
# it; before, Meta-World clipped the goal in the observation and these numbers were 13 and 0):
# push-v3 from the mug's layout 440, from the cube's 0; coffee-push-v3's own policy 449; the push
# policy on the mug's and the cube's tasks 0 and 0.
# the targets' own layouts (seed 0): the mug's start and the coffee machine, the cube's start
# and its goal; the cylinder sits 2 cm above the table where the mug sits on it
mug = {"hand": (0, 0.4, 0.2), "obj": (0.04, 0.556, 0.0), "goal": (0.017, 0.711, -0.001)}
cylinder_at_mug = {**mug, "obj": (0.04, 0.556, 0.02), "goal": (0.017, 0.711, 0.02)}
cube = {"hand": None, "obj": (-0.012, 0.845, 0.02), "goal": (-0.023, 0.679, 0.02)}
print("push-v3, the mug's layout:", run("push-v3", "push-v3", **cylinder_at_mug))
print("push-v3, the cube's layout:", run("push-v3", "push-v3", **cube))
print("coffee-push-v3, its own policy:", run("coffee-push-v3", "coffee-push-v3", **mug))
print("coffee-push-v3, the push policy:", run("coffee-push-v3", "push-v3", **mug))
print("push-back-v3, the push policy:", run("push-back-v3", "push-v3", **cube))
