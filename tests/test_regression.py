"""Byte-identical logs of short ctd3 and MCAT runs, recorded before the algorithm interface was
introduced (tests/regression_runs.py): a refactoring of the training loop must not change what a
run computes. The bytes depend on the torch build and the processor as well, so on another
machine the test says so and is skipped rather than failing on float rounding."""

import json

import pytest

from regression_runs import DATA, LOGS, RUNS, machine, run
from toy_runs import keep_torch_threads  # noqa: F401 (autouse fixture)


@pytest.mark.parametrize("name", list(RUNS))
def test_runs_are_byte_identical_to_the_recorded_ones(name, tmp_path):
    recorded = json.loads((DATA / "machine.json").read_text())
    if machine() != recorded:
        pytest.skip(f"logs recorded on {recorded}, this is {machine()}")
    folder = run(name, tmp_path)
    for log in LOGS:
        kept = DATA / name / log
        assert (folder / log).is_file() == kept.is_file(), log
        if kept.is_file():
            assert (folder / log).read_bytes() == kept.read_bytes(), f"{name}/{log}"
