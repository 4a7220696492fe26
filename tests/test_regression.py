"""The logs of short ctd3 and MCAT runs, recorded before the algorithm interface was introduced
(tests/regression_runs.py): a refactoring of the training loop must not change what a run
computes. On another torch build the test is skipped. With this torch every number must agree
within ``regression_runs.REL`` (1e-9 relative) and every other cell exactly, since another
processor model may round a float's last bits otherwise; byte-identical logs are asserted where
machine.json names this machine exactly (torch, processor name, family/model). The recording
kept now predates the family/model field, so that exact check waits for the logs to be recorded
again (``python tests/regression_runs.py``)."""

import json

import pytest

from regression_runs import DATA, LOGS, RUNS, assert_same_logs, machine, run
from toy_runs import keep_torch_threads  # noqa: F401 (autouse fixture)


@pytest.mark.parametrize("name", list(RUNS))
def test_runs_are_byte_identical_to_the_recorded_ones(name, tmp_path):
    recorded = json.loads((DATA / "machine.json").read_text())
    here = machine()
    if here["torch"] != recorded["torch"]:
        pytest.skip(f"logs recorded with torch {recorded['torch']}, this is {here['torch']}")
    folder = run(name, tmp_path)
    for log in LOGS:
        kept = DATA / name / log
        assert (folder / log).is_file() == kept.is_file(), log
        if kept.is_file():
            got, want = (folder / log).read_text(), kept.read_text()
            assert_same_logs(got, want, f"{name}/{log}")
            if here == recorded:
                assert got == want, f"{name}/{log}: not byte-identical on the recording's machine"
