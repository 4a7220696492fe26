"""Small, fast runs shared by the resume, safety and baseline tests."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from mcat.config import run_config_from_dict, run_config_to_dict

TOY_AGENT = {
    "batch_size": 32,
    "model_warmup_steps": 20,
    "model_steps": 5,
    "model_every": 50,
    "hidden": [64, 64],
}


def toy_config(**changes):
    """A 5-task point-gain run (50-step episodes), one thread, small networks; ``changes``
    override."""
    data = {
        "family": "point-gain",
        "steps": 1000,
        "learning_starts": 200,
        "eval_every": 250,
        "checkpoint_every": 300,
        "threads": 1,
        "agent": dict(TOY_AGENT),
    }
    data.update(changes)
    return run_config_from_dict(data)


def quiet(_message):
    pass


@pytest.fixture(autouse=True, scope="module")
def keep_torch_threads():
    """In-process runs set torch's thread count for the whole process; put it back after the
    module so that later tests see the default (import this fixture into a test module to use
    it)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def cheetah_resume_config(algo, agent):
    """A short real-MuJoCo run for bit-identical resume tests: 2 HalfCheetah tasks, 40-step
    episodes, the reward delayed by 7 steps, a checkpoint at 250 and evaluations at 300 and 600."""
    return run_config_from_dict(
        {
            "family": "halfcheetah-armature",
            "algo": algo,
            "steps": 600,
            "reward_delay": 7,
            "train_tasks": [0.1, 0.5],
            "test_tasks": [0.3],
            "max_episode_steps": 40,
            "learning_starts": 160,
            "eval_every": 300,
            "checkpoint_every": 250,
            "threads": 1,
            "agent": agent,
        }
    )


def logs(run):
    """The run's evaluation and episode logs, as bytes."""
    return [(run / name).read_bytes() for name in ("metrics.csv", "episodes.csv")]


def mcat(argv, crash=None, check=True, **kwargs):
    """`mcat ARGV` in a fresh process; ``crash`` sets the MCAT_TEST_CRASH hook."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCAT_TEST_")}
    if crash:
        env["MCAT_TEST_CRASH"] = crash
    result = subprocess.run(
        [sys.executable, "-m", "mcat.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )
    if check:
        assert result.returncode == (-signal.SIGKILL if crash else 0), (
            crash,
            result.returncode,
            result.stderr[-2000:],
        )
    return result


def killed_and_resumed(cfg, run, crash):
    """``cfg`` trained by `mcat train` in a process SIGKILLed by the crash hook ``crash`` (see
    mcat.faults), then continued to the end by `mcat train --resume` in a new process."""
    run.parent.mkdir(parents=True, exist_ok=True)
    config = run.parent / f"{run.name}.json"
    config.write_text(json.dumps(run_config_to_dict(cfg)))
    mcat(["train", "--config", str(config), "--out", str(run), "--quiet"], crash=crash)
    mcat(["train", "--resume", str(run), "--quiet"])
