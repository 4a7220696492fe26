"""The worker vector env (``--vector-envs worker``): the environments' results come back as a
SyncVectorEnv gives them, their errors as the errors they raised, a stopped worker as a one-line
error; a step runs while the caller goes on."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from mcat.collect import make_vector_env
from mcat.env_worker import WorkerVectorEnv
from mcat.errors import MCATError
from mcat.tasks import get_family


class Counter(gym.Env):
    """obs = [id, steps]; an action of 7 raises, one of 9 waits until the file ``go``
    exists."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)

    def __init__(self, ident: int, go: Path | None = None):
        self.ident, self.t, self.go = ident, 0, go
        self.label = f"env{ident}"

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([self.ident, 0], np.float32), {}

    def step(self, action):
        if action[0] == 7:
            raise ValueError(f"env {self.ident} refuses 7")
        if action[0] == 9:
            deadline = time.monotonic() + 10
            while not self.go.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never wrote its signal file")
                time.sleep(0.001)
        self.t += 1
        obs = np.array([self.ident, self.t + self.np_random.random()], np.float32)
        return obs, float(self.ident * action[0]), False, self.t >= 3, {}


def fns(n=3, go=None):
    return [lambda i=i: Counter(i, go) for i in range(n)]


def test_the_worker_gives_what_sync_gives_and_passes_attributes():
    sync = SyncVectorEnv(fns(), autoreset_mode=AutoresetMode.DISABLED)
    worker = WorkerVectorEnv(fns())
    try:
        assert worker.num_envs == 3 and worker.single_action_space == sync.single_action_space
        for env in (sync, worker):
            env.reset(seed=[1, 2, 3])
        for k in range(3):  # episodes end (truncated) at the third
            a = np.full((3, 1), k + 1, np.float32)
            for x, y in zip(sync.step(a)[:4], worker.step(a)[:4], strict=True):
                np.testing.assert_array_equal(x, y)
        assert worker.get_attr("label") == ("env0", "env1", "env2")
        # SIGINT or SIGTERM to the process group are for the parent, which closes the worker
        os.kill(worker._process.pid, signal.SIGTERM)
        os.kill(worker._process.pid, signal.SIGINT)
        worker.set_attr("label", ["a", "b", "c"])
        assert worker.get_attr("label") == ("a", "b", "c")
    finally:
        sync.close()
        worker.close()


def test_an_environments_error_comes_back_as_itself_and_the_worker_goes_on():
    worker = WorkerVectorEnv(fns())
    try:
        worker.reset()
        with pytest.raises(ValueError, match="env 0 refuses 7"):
            worker.step(np.full((3, 1), 7, np.float32))
        obs = worker.step(np.ones((3, 1), np.float32))[0]
        assert obs.shape == (3, 2)
        with pytest.raises(AttributeError):
            worker.get_attr("no_such_attribute")
    finally:
        worker.close()


def test_an_environment_that_cannot_be_built_fails_the_constructor():
    def broken():
        raise RuntimeError("no such model file")

    children = set(multiprocessing.active_children())
    with pytest.raises(RuntimeError, match="no such model file"):
        WorkerVectorEnv([broken])
    assert set(multiprocessing.active_children()) == children  # its worker is gone


def test_a_step_runs_while_the_caller_goes_on(tmp_path):
    """The environment waits for a file that only the caller writes, after step_async has
    returned: a step_async that waited for the step would never return (the env gives up after
    10 s and the test fails)."""
    signal_file = tmp_path / "go"
    worker = WorkerVectorEnv(fns(2, signal_file))
    try:
        worker.reset()
        worker.step_async(np.full((2, 1), 9, np.float32))
        signal_file.touch()
        _, rew, *_ = worker.step_wait()
        np.testing.assert_array_equal(rew, [0.0, 9.0])
        with pytest.raises(MCATError, match="step_wait without step_async"):
            worker.step_wait()
        worker.step_async(np.ones((2, 1), np.float32))
        with pytest.raises(MCATError, match="in flight"):
            worker.get_attr("label")
    finally:
        worker.close()  # with a step in flight: it is received first
    assert worker.closed


def test_a_killed_worker_is_a_one_line_error_and_closing_still_works():
    worker = WorkerVectorEnv(fns())
    worker.reset()
    os.kill(worker._process.pid, signal.SIGKILL)
    worker._process.join(5)
    with pytest.raises(MCATError, match=r"worker process stopped \(exit code -9\)") as err:
        worker.step(np.ones((3, 1), np.float32))
    assert err.value.__context__ is None  # no pipe traceback chained to it
    worker.close()
    assert worker.closed


@pytest.mark.parametrize("mode", ["async", "worker"])
def test_the_collectors_subprocesses_leave_ctrl_c_and_sigterm_to_the_parent(mode):
    """A scheduler signals the whole process group: the environments' processes go on, so the
    run (the parent) can stop with a checkpoint and close them (mcat.runs.stop_on_signals)."""
    fam = get_family("point-gain")
    vec = make_vector_env(mode, fam, list(fam.train_tasks), 2, 0, 1, "paper", None)
    try:
        vec.reset()
        procs = vec.processes if mode == "async" else [vec._process]
        for p in procs:
            os.kill(p.pid, signal.SIGTERM)
            os.kill(p.pid, signal.SIGINT)
        time.sleep(0.2)
        assert all(p.is_alive() for p in procs)
        assert vec.step(np.zeros((2, *vec.single_action_space.shape), np.float32))[0].shape[0] == 2
    finally:
        vec.close()
