"""Small, fast runs shared by the resume, safety and baseline tests."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import traceback

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


# `mcat` commands run in processes forked from a server that has imported mcat and torch once (a
# fresh interpreter spends 3-6 s importing torch and torch._dynamo, which the first optimiser pulls
# in): a pristine process, as after `python -m mcat.cli`, at a fraction of the start-up cost.
_SERVER = multiprocessing.get_context("forkserver")
_SERVER.set_forkserver_preload(["mcat.cli", "mcat.train", "torch._dynamo", "toy_runs"])


def _cli_child(argv, env, out_path, err_path):
    """Body of a forked `mcat ARGV`: the given environment, stdout and stderr to files."""
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out_path), (2, err_path)):  # the streams stay, buffered as they were
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    from mcat.cli import main

    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def start_mcat(argv, crash=None, out=os.devnull, err=os.devnull):
    """`mcat ARGV` started in a new process (see _SERVER), its stdout and stderr going to the
    files ``out`` and ``err``; ``crash`` sets the MCAT_TEST_CRASH hook."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCAT_TEST_")}
    if crash:
        env["MCAT_TEST_CRASH"] = crash
    child = _SERVER.Process(target=_cli_child, args=(list(argv), env, out, err))
    child.start()
    return child


def mcat(argv, crash=None, check=True):
    """`mcat ARGV` in a new process, to its end; ``crash`` sets the MCAT_TEST_CRASH hook.
    Returns the exit code (negative: killed by that signal), stdout and stderr, as subprocess.run
    does."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        child = start_mcat(argv, crash, out, err)
        child.join()
        with open(out) as f, open(err) as g:
            result = subprocess.CompletedProcess(argv, child.exitcode, f.read(), g.read())
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
