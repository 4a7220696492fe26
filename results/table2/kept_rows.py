"""Tables of results/table2's checkpoint replays that outlive the checkpoints they were made from.

A finished run's checkpoints leave git (``scripts/stage_runs.sh --checkpoints``) and a session's
machine is not the next one's, so a replay script run today can only replay the runs whose
checkpoints this machine still has. With ``--update FILE`` the scripts replay those, keep the rows
of the others from FILE's previous version (each row names the step it was replayed at), and
rewrite FILE in place with the command and date on its first line.
"""

from __future__ import annotations

import datetime
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from mcat.errors import MCATError
from mcat.runs import has_checkpoint_files


def run_name(line: str) -> str | None:
    """The run a table row belongs to (its first cell, bold removed); None for other lines."""
    if not line.startswith("| ") or line.startswith("| ---"):
        return None
    return line.split("|")[1].strip().strip("*").strip()


def previous_rows(path: Path) -> dict[str, list[str]]:
    """The rows of an earlier table in ``path``, by run (empty when there is no file)."""
    rows: dict[str, list[str]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            name = run_name(line)
            if name is not None:
                rows.setdefault(name, []).append(line)
    return rows


def write_table(path: Path, lines: list[str], missing: list[str]) -> None:
    """Replace ``path`` (atomically: a stop mid-way leaves the old table) with ``lines`` under a
    comment naming the command and date, and a last line naming runs that have no rows."""
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv])
    head = f"<!-- {command} ({datetime.date.today()}) -->"
    tail = [f"\nNo checkpoint and no earlier row: {', '.join(missing)}."] if missing else []
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join([head, *lines, *tail]) + "\n")
    os.replace(tmp, path)


def split_update(argv: list[str]) -> tuple[Path | None, list[str]]:
    """``--update FILE`` (anywhere in argv) and the remaining arguments; ValueError without
    FILE."""
    if "--update" not in argv:
        return None, argv
    i = argv.index("--update")
    if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
        raise ValueError("--update needs the table file to rewrite")
    return Path(argv[i + 1]), argv[:i] + argv[i + 2 :]


def collect(
    script: str, update: Path | None, runs: list[str], replay, head: list[str]
) -> list[str]:
    """``head`` and the rows of each run in ``runs`` (``replay(run_dir)`` gives them; MCATError
    when it has no checkpoint): printed as they come without ``update``; with it, a run that
    cannot be replayed keeps its rows from ``update``'s previous table, and the table is
    rewritten. Returns the runs left without rows."""
    kept = previous_rows(update) if update else {}
    lines, missing = list(head), []
    if update is None:
        print("\n".join(lines), flush=True)
    for run in runs:
        name = Path(run).name
        try:
            rows = replay(Path(run))
            print(f"{script}: replayed {name}", file=sys.stderr)
        except MCATError as exc:
            # only a run without checkpoints here (finished on an earlier machine) keeps its rows;
            # any other failure is reported, not papered over with old rows
            if name not in kept or has_checkpoint_files(Path(run)):
                print(f"{script}: skipped {name}: {exc}", file=sys.stderr)
                missing.append(name)
                continue
            rows = kept[name]
            print(
                f"{script}: {name} has no checkpoint here: rows kept from {update}", file=sys.stderr
            )
        if update is None:
            print("\n".join(rows), flush=True)
        lines.extend(rows)
    if update is not None:
        write_table(update, lines, missing)
    return missing


def run_script(script: str, main: Callable[[list[str]], int], doc: str | None) -> None:
    """The command line of a replay script: ``-h``/``--help`` prints ``doc``; an MCATError (a
    path that is not a run directory, say) is one line and exit 2, not a traceback."""
    argv = sys.argv[1:]
    if "-h" in argv or "--help" in argv:
        print((doc or "").strip())
        sys.exit(0)
    try:
        sys.exit(main(argv))
    except MCATError as exc:
        print(f"{script}: {exc}", file=sys.stderr)
        sys.exit(2)
