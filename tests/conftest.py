import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # test modules share small helpers


import os
import subprocess

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one torch thread per test worker: two workers on two cores, not four busy-waiting threads
    # (oversubscribed OpenMP threads slow each other down many times over)
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Commands run in-process with --threads change torch's global thread count; put it back so
    one test's setting cannot change another's numbers."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# The heaviest test files first (seconds of one worker, measured 2026-11-27 with
# `scripts/test.sh --durations=0` beside two training runs, halved): pytest-xdist hands out whole
# files in collection order (scripts/test.sh passes --no-loadscope-reorder), so a long file taken
# last would leave the other worker idle at the end. The order only changes when a file runs, not
# what it checks.
HEAVY_FIRST = (
    "test_resume.py",  # 85
    "test_metaworld.py",  # 52
    "test_fast.py",  # 40
    "test_mql.py",  # 38
    "test_sweep.py",  # 30
    "test_transfer.py",  # 28
    "test_gym_envs.py",  # 23
    "test_hipbmdp.py",  # 22
    "test_safety.py",  # 22
    "test_mcat_train.py",  # 18
    "test_regression.py",  # 18
    "test_pearl.py",  # 18
    "test_video.py",  # 17
    "test_distral.py",  # 17
    "test_train.py",  # 15
    "test_cross_body.py",  # 15
    "test_bad_input.py",  # 15
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(HEAVY_FIRST)))


# what another process holding a run directory does (mcat.runs.hold_run_dir's protocol: an
# exclusive flock on DIR/.lock, which holds the pid), without importing mcat: it starts at once
_HOLDER = """
import fcntl, os, sys
os.makedirs(sys.argv[1], exist_ok=True)
fd = os.open(os.path.join(sys.argv[1], ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, str(os.getpid()).encode())
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held_elsewhere():
    """``hold(path)`` holds a run directory in another process (as a second mcat writing it
    would) and returns (its pid, a function that releases it); all are released at the end."""
    children = []

    def hold(path):
        child = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline() == "held\n"
        children.append(child)
        return child.pid, child.stdin.close

    yield hold
    for child in children:
        if not child.stdin.closed:
            child.stdin.close()
        child.wait(60)
