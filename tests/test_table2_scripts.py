"""results/table2's replay tables keep the rows of runs whose checkpoints this machine lacks."""

import sys
from pathlib import Path

import pytest

from mcat.errors import MCATError

sys.path.insert(0, str(Path(__file__).parents[1] / "results" / "table2"))
from kept_rows import collect, previous_rows, split_update

HEAD = ["| run | step | return |", "| --- | --- | --- |"]


def test_update_replays_what_it_can_keeps_the_rest_and_names_the_runs_it_lost(tmp_path):
    table = tmp_path / "table.md"
    table.write_text(
        "<!-- an earlier command -->\n"
        + "\n".join(
            [
                *HEAD,
                "| gone-seed0 | 300,000 | -1.0 |",
                "| **gone-seed0** | 300,000 | **-1.0** |",
                "| live-seed0 | 100,000 | -9.0 |",
            ]
        )
        + "\n"
    )

    def replay(run: Path) -> list[str]:
        if run.name == "live-seed0":
            return ["| live-seed0 | 300,000 | 5.0 |"]
        raise MCATError(f"{run} has no checkpoints")

    runs = [str(tmp_path / n) + "/" for n in ("gone-seed0", "live-seed0", "never-seed0")]
    assert collect("t.py", table, runs, replay, HEAD) == ["never-seed0"]
    lines = table.read_text().splitlines()
    assert lines[0].startswith("<!-- ") and "an earlier command" not in lines[0]
    assert lines[1:] == [
        *HEAD,
        "| gone-seed0 | 300,000 | -1.0 |",  # kept, bold mean row and all
        "| **gone-seed0** | 300,000 | **-1.0** |",
        "| live-seed0 | 300,000 | 5.0 |",  # replayed: the stale row is gone
        "",
        "No checkpoint and no earlier row: never-seed0.",
    ]
    assert not list(tmp_path.glob("*.tmp"))
    # updated again, a file's own rows come back unchanged
    assert previous_rows(table)["gone-seed0"] == lines[3:5]


def test_without_update_rows_are_printed_and_nothing_is_kept(tmp_path, capsys):
    def replay(run: Path) -> list[str]:
        raise MCATError("no checkpoints")

    assert collect("t.py", None, [str(tmp_path / "a")], replay, HEAD) == ["a"]
    out, err = capsys.readouterr()
    assert out.splitlines() == HEAD and "skipped a" in err


def test_update_needs_its_file():
    assert split_update(["2", "--update", "f.md", "run"]) == (Path("f.md"), ["2", "run"])
    assert split_update(["run"]) == (None, ["run"])
    for argv in (["run", "--update"], ["--update", "--other"]):
        with pytest.raises(ValueError, match="--update needs the table file"):
            split_update(argv)
