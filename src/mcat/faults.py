"""Fault injection for the tests, driven by environment variables that are never set in normal
use; the training path calls :func:`install_fault_hooks`, which does nothing without them.

- ``MCAT_TEST_CRASH``: ``checkpoint:STEP:BYTES`` kills the process (SIGKILL) after BYTES bytes of
  the first checkpoint written at env step >= STEP, ``sidecar:STEP`` between the rename of that
  checkpoint and its sidecar, ``step:STEP`` in the middle of the training iteration that reaches
  STEP (after the environments stepped, before the gradient steps), ``term:STEP`` sends the
  process SIGTERM there instead (once: a stop on request), ``loop:STEP`` after step
  STEP of a resumable loop over fixed data (:class:`mcat.runs.LoopCheckpoint`: the translators
  of `mcat transfer`);
- ``MCAT_TEST_NAN_LOSS=STEP`` makes a critic weight NaN from env step STEP on, so the critic loss
  of the next gradient step is NaN (tests of the numerical-fault stop).
"""

from __future__ import annotations

import os
import signal
from typing import Any

import torch

CRASH_HOOK = "MCAT_TEST_CRASH"
NAN_HOOK = "MCAT_TEST_NAN_LOSS"
_SIGNALLED: list[bool] = []  # the term hook has fired in this process (a seed group's trainers)


def crash_point(where: str, step: int) -> int | None:
    """BYTES of the crash hook when it names ``where`` and ``step`` has reached its STEP."""
    spec = os.environ.get(CRASH_HOOK, "").split(":")
    if spec[0] != where or len(spec) < 2 or step < int(spec[1]):
        return None
    return int(spec[2]) if len(spec) > 2 else 0


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_fault_hooks(trainer: Any) -> None:
    """Wrap ``trainer``'s collection and gradient steps with the hooks the environment asks
    for (none in normal use)."""
    kind = os.environ.get(CRASH_HOOK, "").split(":")[0]
    if kind in ("step", "term"):
        after_collect = trainer.after_collect

        def step_then_signal(finished):
            after_collect(finished)
            if crash_point(kind, trainer.collector.env_steps) is not None:
                if kind == "step":
                    kill_self()
                elif not _SIGNALLED:  # once per process: a second signal is not caught
                    _SIGNALLED.append(True)
                    signal.raise_signal(signal.SIGTERM)

        trainer.after_collect = step_then_signal
    if NAN_HOOK in os.environ:
        at, train_step = int(os.environ[NAN_HOOK]), trainer.agent.train_step

        def poisoned(replay):
            if trainer.env_steps >= at:
                with torch.no_grad():
                    next(trainer.agent.critic.parameters()).view(-1)[0] = float("nan")
            return train_step(replay)

        trainer.agent.train_step = poisoned
