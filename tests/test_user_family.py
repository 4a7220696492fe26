"""A family registered by a user (any gymnasium env + a function applying a parameter) works
end to end: Python API, delayed reward, replay, and the `mcat` command through a plugin module."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mcat import MCATError
from mcat.replay import MultiTaskReplay
from mcat.tasks import Interval, TaskFamily, get_family, list_families, register_family
from mcat.tasks import family as family_module


def set_pendulum_mass(env, mass):
    env.unwrapped.m = float(mass)


def pendulum_family(name="test-pendulum-mass"):
    return TaskFamily(
        name=name,
        env="Pendulum-v1",
        parameter="pole mass",
        train_tasks=(0.5, 1.0, 2.0),
        test_tasks=(1.5, 4.0),
        domain=Interval(0.0, 10.0, low_open=True),
        apply=set_pendulum_mass,
        default_task=1.0,
        max_episode_steps=40,
    )


@pytest.fixture
def registered():
    fam = register_family(pendulum_family())
    yield fam
    family_module._REGISTRY.pop(fam.name, None)


def test_user_family_end_to_end(registered):
    assert "test-pendulum-mass" in list_families()
    fam = get_family("test-pendulum-mass")
    envs = [fam.make_env(m, reward_delay=10, seed=0) for m in fam.train_tasks]
    # same state and action, different next state: the parameter really reaches the dynamics
    nxt = []
    for env in envs:
        env.reset(seed=0)
        env.unwrapped.state = np.array([0.5, 0.0])
        nxt.append(env.step(np.array([1.0], dtype=np.float32))[0])
    assert np.abs(nxt[0] - nxt[1]).max() > 1e-3 and np.abs(nxt[1] - nxt[2]).max() > 1e-3
    # delayed reward and episode length from the family; transitions go to a replay store
    replay = MultiTaskReplay(len(envs), 3, 1, capacity=100)
    obs = np.stack([e.reset()[0] for e in envs])
    payouts = 0
    for _t in range(40):
        act = np.full((3, 1), 0.5, dtype=np.float32)
        out = [e.step(a) for e, a in zip(envs, act, strict=True)]
        nxt = np.stack([o[0] for o in out])
        rew = np.array([o[1] for o in out])
        payouts += int((rew != 0).sum())
        replay.add(obs, act, rew, nxt, [o[2] for o in out], [o[3] for o in out])
        obs = nxt
    assert out[0][3]  # truncated at the family's 40 steps
    assert payouts == 3 * 4  # every 10 steps, for 3 tasks
    assert replay.sample(8, context=3, future=2).mc_valid.all()  # every episode has ended


def test_duplicate_registration_is_refused(registered):
    with pytest.raises(MCATError, match="already registered"):
        register_family(pendulum_family())
    register_family(pendulum_family(), overwrite=True)


def test_invalid_family_definition_is_refused():
    with pytest.raises(MCATError, match="not valid"):
        TaskFamily(
            name="bad",
            env="Pendulum-v1",
            parameter="mass",
            train_tasks=(1.0, -1.0),
            test_tasks=(),
            domain=Interval(0.0, 10.0, low_open=True),
            apply=set_pendulum_mass,
        )


def test_plugin_module_adds_a_family_to_the_command_line(tmp_path):
    (tmp_path / "my_families.py").write_text(
        textwrap.dedent(
            """
            from mcat.tasks import Interval, TaskFamily, register_family

            def set_mass(env, mass):
                env.unwrapped.m = float(mass)

            register_family(TaskFamily(
                name="pendulum-mass", env="Pendulum-v1", parameter="pole mass",
                train_tasks=(0.5, 1.0, 2.0), test_tasks=(4.0,),
                domain=Interval(0.0, 10.0, low_open=True),
                apply=set_mass, max_episode_steps=30,
            ))
            """
        )
    )
    env = dict(os.environ, MCAT_PLUGINS="my_families", PYTHONPATH=str(tmp_path))
    listing = subprocess.run(
        [sys.executable, "-m", "mcat.cli", "families"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    assert "pendulum-mass" in listing.stdout and "halfcheetah-armature" in listing.stdout
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcat.cli",
            "rollout",
            "pendulum-mass",
            "--task",
            "4",
            "--reward-delay",
            "7",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "30 steps, 5 reward payouts" in run.stdout  # at 7, 14, 21, 28 and the end (30)
    bad = subprocess.run(
        [sys.executable, "-m", "mcat.cli", "families"],
        env=dict(env, MCAT_PLUGINS="no_such_module"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "no_such_module" in bad.stderr
