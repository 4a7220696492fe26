import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # test modules share small helpers


import os

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
