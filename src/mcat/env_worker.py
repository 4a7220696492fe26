"""A vector env whose environments all step in one worker subprocess (``--vector-envs worker``).

gymnasium's ``AsyncVectorEnv`` gives every environment its own subprocess: a step costs a pipe
round trip per environment, which is about what a HalfCheetah step itself costs (README,
"Collection"). Here a collector's environments share one subprocess, which steps them in turn
(a ``SyncVectorEnv`` there): one round trip per step for all of them, and the environments run
while the caller does other work. The fast path's seeds (``mcat train --seeds``) each get their
own worker, so S seeds step in S processes at once instead of S x tasks (results/gpu/README.md).

The environments and their results are those of ``SyncVectorEnv`` with the same functions: the
worker runs one.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, NoReturn

import cloudpickle
import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from mcat.errors import MCATError


class WorkerVectorEnv(VectorEnv):
    """``SyncVectorEnv(env_fns)`` run in one subprocess; ``step_async`` / ``step_wait`` let the
    caller work while it steps. Autoreset is off (the collector resets slots itself)."""

    def __init__(
        self, env_fns: Sequence[Callable[[], gym.Env]], context: str | None = None
    ) -> None:
        ctx: Any = multiprocessing.get_context(context)  # gymnasium's AsyncVectorEnv default
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_work,
            args=(cloudpickle.dumps(list(env_fns)), child, self._pipe),  # spawn needs pickling
            name="mcat-env-worker",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._waiting = False
        try:
            (
                self.num_envs,
                self.single_observation_space,
                self.single_action_space,
                self.observation_space,
                self.action_space,
                self.metadata,
            ) = self._call("spaces")
        except BaseException:  # the environments could not be built: no worker left behind
            self.close_extras()
            raise

    # ------------------------------------------------------------------ VectorEnv
    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        return self._call("reset", seed, options)

    def step_async(self, actions: np.ndarray) -> None:
        self._send("step", np.asarray(actions))
        self._waiting = True

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        if not self._waiting:
            raise MCATError("step_wait without step_async")
        self._waiting = False
        return self._receive()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        self.step_async(actions)
        return self.step_wait()

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self._call("get_attr", name)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        self._call("set_attr", name, values)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return self._call("call", name, args, kwargs)

    def close_extras(self, **kwargs: Any) -> None:
        if not self._process.is_alive():
            return
        try:
            if self._waiting:  # a step in flight: its result first, then the worker is free
                self._receive()
            self._send("close")
            self._pipe.recv()
        except (MCATError, OSError, EOFError):
            pass  # the worker is gone or broken: terminated below
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._pipe.close()

    # ------------------------------------------------------------------ the pipe
    def _call(self, command: str, *args: Any) -> Any:
        if self._waiting:
            raise MCATError(f"{command} while a step is in flight (call step_wait first)")
        self._send(command, *args)
        return self._receive()

    def _send(self, command: str, *args: Any) -> None:
        try:
            self._pipe.send((command, args))
        except OSError:
            pass  # the worker is gone: said below, without this traceback
        else:
            return
        self._stopped()

    def _receive(self) -> Any:
        try:
            ok, result = self._pipe.recv()
        except (OSError, EOFError):
            ok, result = None, None
        if ok is None:
            self._stopped()
        if not ok:
            raise result  # the worker's exception, as the environment raised it
        return result

    def _stopped(self) -> NoReturn:
        self._process.join(timeout=1)
        raise MCATError(
            f"the environment worker process stopped (exit code {self._process.exitcode})"
        )


def leave_stop_signals_to_parent() -> None:
    """In an environment subprocess: ignore Ctrl-C and SIGTERM. A scheduler signals the whole
    process group, and the signal is for the parent, which stops its run with a checkpoint
    (:func:`mcat.runs.stop_on_signals`) and then closes its subprocesses."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _work(fns: bytes, pipe: Connection, parent_end: Connection) -> None:
    """The worker's loop: one command at a time, answered with (True, result) or (False, the
    exception)."""
    parent_end.close()
    leave_stop_signals_to_parent()
    envs = None
    try:
        envs = SyncVectorEnv(
            cloudpickle.loads(fns), copy=False, autoreset_mode=AutoresetMode.DISABLED
        )
        while True:
            command, args = pipe.recv()
            try:
                result = _run(envs, command, args)
            except Exception as exc:  # sent to the parent, which raises it
                pipe.send((False, _picklable(exc)))
                continue
            pipe.send((True, result))
            if command == "close":
                return
    except EOFError:
        return  # the parent is gone
    except Exception as exc:  # building the environments failed: say so once
        with contextlib.suppress(OSError):
            pipe.send((False, _picklable(exc)))
    finally:
        if envs is not None:
            envs.close()


def _run(envs: SyncVectorEnv, command: str, args: tuple) -> Any:
    if command == "step":
        return envs.step(args[0])
    if command == "reset":
        return envs.reset(seed=args[0], options=args[1])
    if command == "get_attr":
        return envs.get_attr(args[0])
    if command == "set_attr":
        return envs.set_attr(args[0], args[1])
    if command == "call":
        return envs.call(args[0], *args[1], **args[2])
    if command == "spaces":
        return (
            envs.num_envs,
            envs.single_observation_space,
            envs.single_action_space,
            envs.observation_space,
            envs.action_space,
            envs.metadata,
        )
    if command == "close":
        return None
    raise ValueError(f"unknown worker command {command!r}")


def _picklable(exc: Exception) -> Exception:
    """The exception itself when it survives the pipe, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
