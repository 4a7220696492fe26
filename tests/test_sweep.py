"""`mcat sweep` on a local Ray and `mcat report`: a sweep killed mid-way and re-run finishes
every trial once, with the metrics of the same runs launched alone (fast: the state a kill leaves,
run again; --slow: the driver SIGKILLed for real); a failing trial leaves the others finished; bad
specs are one-line errors; the report's numbers and statistics."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mcat import sweep
from mcat.cli import main
from mcat.config import run_config_from_dict
from mcat.report import (
    curves,
    evaluations,
    iqm,
    poi_interval,
    probability_of_improvement,
    score_runs,
    stratified_bootstrap,
)
from mcat.sweep import expand, load_spec, status
from mcat.train import Trainer
from toy_runs import keep_torch_threads, mcat, quiet  # noqa: F401 (autouse fixture)

BASE = {
    "family": "point-gain",
    "steps": 600,
    "learning_starts": 100,
    "eval_every": 200,
    "checkpoint_every": 100,
    "threads": 1,
    "agent": {
        "hidden": [32, 32],
        "batch_size": 16,
        "model_warmup_steps": 5,
        "model_steps": 2,
        "model_every": 50,
    },
}
SPEC = {
    "name": "tiny",
    "base": BASE,
    "grid": {
        "algo": ["ctd3"],
        "seed": [0, 1],
        "variant": {"ok": {}, "nan": {"agent": {"critic_lr": 1e30}}},  # nan: a failing trial
    },
    # three trials (each one costs a fresh Ray worker: 5 s of imports, torch's optimiser included)
    "exclude": [{"variant": "nan", "seed": 1}],
    "trial": "{algo}-{variant}-seed{seed}",
}
OK = ["ctd3-ok-seed0", "ctd3-ok-seed1"]


def _sweep(spec_file, out):
    return subprocess.Popen(
        [sys.executable, "-m", "mcat.cli", "sweep", str(spec_file), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _alone(name, tmp_path):
    """The metrics of trial ``name`` launched on its own, in this process."""
    algo, _, seed = name.split("-")
    alone = tmp_path / "alone" / name
    Trainer(
        run_config_from_dict({**BASE, "algo": algo, "seed": int(seed[4:])}), alone, log=quiet
    ).run()
    return (alone / "metrics.csv").read_bytes()


def _report_row(out, tmp_path):
    """`mcat report` of the sweep folder, and the row its OK trials' metrics files give."""
    report = tmp_path / "r.md"
    assert main(["report", str(out), "-o", str(report)]) == 0
    finals, last = [], str(BASE["steps"])
    for name in OK:
        rows = [r.split(",") for r in (out / name / "metrics.csv").read_text().splitlines()[1:]]
        finals.append(np.mean([float(r[3]) for r in rows if r[2] == "test" and r[0] == last]))
    se = np.std(finals, ddof=1) / np.sqrt(len(finals))  # mean ± standard error over the seeds
    return report.read_text(), f"| ctd3 | {np.mean(finals):.1f} ± {se:.1f} |"


def test_a_rerun_sweep_continues_its_stopped_trials_keeps_the_finished_and_a_failure_stays_alone(
    tmp_path,
):
    """What a sweep killed mid-way leaves (one trial finished, one stopped with a checkpoint, one
    not started), run again: the finished trial is kept as it is, the stopped one continues to
    the metrics of the same run launched alone, the failing one fails alone; one Ray start, one
    wave of two trials (the driver killed for real: the --slow test below)."""
    spec_file, out = tmp_path / "spec.json", tmp_path / "sweep"
    spec_file.write_text(json.dumps(SPEC))
    trials = {t.name: t for t in expand(load_spec(str(spec_file)))}
    out.mkdir()
    Trainer(run_config_from_dict(trials[OK[1]].config), out / OK[1], log=quiet).run()
    kept = {f: f.read_bytes() for f in (out / OK[1]).rglob("*") if f.is_file()}
    config = tmp_path / "trial.json"
    config.write_text(json.dumps(trials[OK[0]].config))
    mcat(["train", "--config", str(config), "--out", str(out / OK[0]), "--quiet"], crash="step:350")
    assert not (out / OK[0] / "summary.json").exists()
    second = _sweep(spec_file, out)
    stdout, stderr = second.communicate(timeout=600)
    assert "3 trials, 1 finished, 2 to run" in stdout, stdout + stderr
    assert second.returncode == 1, stdout + stderr  # the nan trial failed ...
    assert "trial ctd3-nan-seed0 failed: non-finite loss" in stderr
    states = {name: state for name, state, _, _ in status(out)}
    assert states == {**dict.fromkeys(OK, "done"), "ctd3-nan-seed0": "failed"}  # ... alone
    assert (out / OK[0] / "metrics.csv").read_bytes() == _alone(OK[0], tmp_path)
    assert {f: f.read_bytes() for f in (out / OK[1]).rglob("*") if f.is_file()} == kept
    text, row = _report_row(out, tmp_path)  # the report's numbers are the metrics files' own
    assert row in text, text
    assert main(["sweep", "--status", str(out)]) == 0


@pytest.mark.slow  # two Ray start-ups, two waves of trials: about 50 s
def test_sweep_killed_and_rerun_equals_the_runs_alone_and_a_failure_stays_alone(tmp_path):
    spec_file, out = tmp_path / "spec.json", tmp_path / "sweep"
    spec_file.write_text(json.dumps(SPEC))
    first = _sweep(spec_file, out)
    deadline = time.monotonic() + 240
    # kill the driver once some trial has a checkpoint (Ray's workers die with it)
    while time.monotonic() < deadline and first.poll() is None:
        if any(out.glob("*/checkpoints/step-*.json")):
            break
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not all((out / n / "summary.json").is_file() for n in OK), "killed too late"
    second = _sweep(spec_file, out)
    stdout, stderr = second.communicate(timeout=600)
    assert second.returncode == 1, stdout + stderr  # the nan trial failed ...
    assert "trial ctd3-nan-seed0 failed: non-finite loss" in stderr
    states = {name: state for name, state, _, _ in status(out)}
    assert states == {**dict.fromkeys(OK, "done"), "ctd3-nan-seed0": "failed"}  # ... alone
    for name in OK:  # each the same as the run launched on its own
        assert (out / name / "metrics.csv").read_bytes() == _alone(name, tmp_path)
    text, row = _report_row(out, tmp_path)
    assert row in text, text


@pytest.mark.parametrize(
    "spec, message",
    [
        ({**SPEC, "grids": {}}, "unknown key 'grids'"),
        ({**SPEC, "grid": {}}, "grid must map run-config keys"),
        ({**SPEC, "grid": {"algo": ["nope"]}, "trial": None}, "unknown algo 'nope'"),
        ({**SPEC, "grid": {"family": ["nope"]}, "trial": None}, "unknown task family 'nope'"),
        ({**SPEC, "grid": {"seed": []}}, "grid.seed must be a non-empty list"),
        ({**SPEC, "grid": {"lr": [1]}}, "grid key 'lr' is not a train config key"),
        ({**SPEC, "exclude": [{"algo": "ctd3"}, {"algo": "td3"}]}, "has no trials"),
        ({**SPEC, "trial": "{algo}"}, "two trials are named"),
        ({**SPEC, "trial": "{algo}-{lr}"}, "names 'lr' that is not a grid key"),
        ({**SPEC, "resources": {"cpus": 0}}, "resources.cpus must be"),
    ],
)
def test_bad_specs_are_one_line_errors_and_write_nothing(spec, message, tmp_path, capsys):
    spec_file, out = tmp_path / "spec.json", tmp_path / "sweep"
    spec_file.write_text(json.dumps(spec))
    assert main(["sweep", str(spec_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_folder_of_another_sweep_is_refused(tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"format": 1, "spec": {"name": "other"}}))
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC))
    before = (out / "sweep.json").read_bytes()
    assert main(["sweep", str(spec_file), "--out", str(out)]) == 2
    assert "holds another sweep (other)" in capsys.readouterr().err
    assert (out / "sweep.json").read_bytes() == before


def test_a_raised_budget_trains_the_finished_trials_on_and_a_lowered_one_is_refused(
    tmp_path, capsys
):
    """The spec re-run with a larger ``steps`` keeps the sweep's folder: a trial finished at the
    old budget is "to extend", and its trial (what a Ray worker runs) trains it on to the
    metrics of a run of the larger budget launched alone; a smaller budget, or any other
    change, is a one-line error that leaves the folder as it was (no Ray started)."""
    out = tmp_path / "sweep"
    trials = {t.name: t for t in sweep.prepare(sweep.spec_from_dict(SPEC), out)}
    Trainer(run_config_from_dict(trials[OK[0]].config), out / OK[0], log=quiet).run()
    assert {n: s for n, s, _, _ in status(out)}[OK[0]] == "done"
    longer = {**SPEC, "base": {**BASE, "steps": 800}}
    raised = {t.name: t for t in sweep.prepare(sweep.spec_from_dict(longer), out)}
    states = {n: s for n, s, _, _ in status(out)}
    assert states == {OK[0]: "to extend", OK[1]: "pending", "ctd3-nan-seed0": "pending"}
    state, message = sweep._trial("train", raised[OK[0]].config, str(out / OK[0]), "")
    assert state == "done", message
    assert {n: s for n, s, _, _ in status(out)}[OK[0]] == "done"
    alone = tmp_path / "alone"
    Trainer(run_config_from_dict(raised[OK[0]].config), alone, log=quiet).run()
    for name in ("metrics.csv", "episodes.csv"):
        assert (out / OK[0] / name).read_bytes() == (alone / name).read_bytes(), name
    record, spec_file = (out / "sweep.json").read_bytes(), tmp_path / "spec.json"
    for spec, message in [
        ({**SPEC, "base": {**BASE, "steps": 700}}, "budget can only be raised"),
        ({**SPEC, "base": {**BASE, "steps": 1200, "eval_every": 100}}, "holds another sweep"),
    ]:
        spec_file.write_text(json.dumps(spec))
        assert main(["sweep", str(spec_file), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert (out / "sweep.json").read_bytes() == record


@pytest.mark.parametrize(
    "spec, folder, count",
    [
        ("table34", "table34/runs", 36),
        ("table1", "table1", 18),
        ("fig5", "fig5", 4),
        ("table2-halfcheetah-armature", "table2/runs", 12),
    ],
)
def test_shipped_specs_name_the_committed_results(spec, folder, count):
    """Each shipped spec's trials are the committed result folders, with the same configs (a
    train trial compared as a resume compares it)."""
    from pathlib import Path

    from mcat.experiments.transfer import TransferConfig
    from mcat.train import _differences

    root = Path(__file__).parent.parent / "results" / folder
    trials = expand(load_spec(spec))
    assert len(trials) == count
    found = 0
    for t in trials:
        path = root / t.name / "config.json"
        if not path.is_file():  # a run not started yet (Table 2 is in progress)
            assert spec.startswith("table2"), t.name
            continue
        found += 1
        saved = json.loads(path.read_text())
        if "algo" in saved:
            assert not _differences(saved, t.config)
        else:  # a transfer result: fields added since it was made hold their defaults
            added = {k: v for k, v in t.config.items() if k not in saved}
            defaults = {f.name: f.default for f in dataclasses.fields(TransferConfig)}
            assert saved == {k: t.config[k] for k in saved}
            assert added == {k: defaults[k] for k in added}
    assert found


def test_statistics():
    rng = np.random.default_rng(0)
    assert iqm(np.array([1.0, 2.0, 3.0, 100.0])) == 2.5  # one value cut from each end
    x = rng.normal(1.0, 1.0, 5)
    lo, hi = stratified_bootstrap([x], lambda g: iqm(g[0]))
    lo2, hi2 = stratified_bootstrap([rng.normal(1.0, 1.0, 80)], lambda g: iqm(g[0]))
    assert lo <= iqm(x) <= hi and hi2 - lo2 < hi - lo  # more runs, a narrower interval
    a, b = [np.array([3.0, 4.0])], [np.array([1.0, 3.0])]
    assert probability_of_improvement(a, b) == (1 + 0.5 + 1 + 1) / 4
    lo, hi = poi_interval(a, b)
    assert lo <= probability_of_improvement(a, b) <= hi


def test_a_figure_pooling_an_unfinished_run_is_marked(tmp_path):
    """A run short of the scored step is scored at its last evaluation, and the method's mean,
    train mean, IQM and probability of improvement that pool it carry the same mark; finished
    seeds alone carry none."""
    import shutil
    from pathlib import Path

    done = Path(__file__).parent.parent / "results/table2/runs/halfcheetah-armature-distral-seed0"
    a, b = tmp_path / "runs/a", tmp_path / "runs/b"
    for d in (a, b):
        d.mkdir(parents=True)
        shutil.copy(done / "config.json", d)
    shutil.copy(done / "metrics.csv", a)
    config = json.loads((done / "config.json").read_text())
    (b / "config.json").write_text(json.dumps({**config, "seed": 1}))
    rows = (done / "metrics.csv").read_text().splitlines()
    short = [rows[0]] + [r for r in rows[1:] if int(r.split(",")[0]) <= 100_000]
    (b / "metrics.csv").write_text("\n".join(short) + "\n")

    def last_test(run: Path) -> float:  # the mean test return of the run's last evaluation
        rows = [r.split(",") for r in (run / "metrics.csv").read_text().splitlines()[1:]]
        last = max(int(r[0]) for r in rows)
        return float(np.mean([float(r[3]) for r in rows if int(r[0]) == last and r[2] == "test"]))

    finals = [last_test(a), last_test(b)]
    se = np.std(finals, ddof=1) / np.sqrt(2)
    report = tmp_path / "r.md"
    assert main(["report", str(a), str(b), "--step", "300000", "-o", str(report)]) == 0
    row = next(r for r in report.read_text().splitlines() if r.startswith("| Distral |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == f"{np.mean(finals):.1f} ± {se:.1f}*", row
    assert cells[2].endswith("*") and cells[3].endswith("*"), row
    assert "s0: " in cells[4] and "@ 300k;" in cells[4] and cells[4].endswith("@ 100k*"), row
    mcat = (
        Path(__file__).parent.parent
        / "results/table34/runs/halfcheetah-armature-delay500-mcat-seed0"
    )
    assert main(["report", str(a), str(b), str(mcat), "--step", "300000", "-o", str(report)]) == 0
    poi = next(r for r in report.read_text().splitlines()[::-1] if r.startswith("| Distral |"))
    assert poi.endswith("]* | 1 |"), poi  # the probability of improvement pools run b too
    assert main(["report", str(a), str(mcat), "--step", "300000", "-o", str(report)]) == 0
    poi = next(r for r in report.read_text().splitlines()[::-1] if r.startswith("| Distral |"))
    assert poi.endswith("] | 1 |"), poi
    assert main(["report", str(a), "--step", "300000", "-o", str(report)]) == 0
    row = next(r for r in report.read_text().splitlines() if r.startswith("| Distral |"))
    assert "*" not in row and f"| {finals[0]:.1f} |" in row, row
    # the curves: the mean where both runs evaluated, and run a alone drawn on from 100k
    steps, values, ahead = curves(score_runs([a, b], 300_000))
    assert steps == list(range(20_000, 100_001, 20_000)) and values.shape == (2, 5)
    assert ahead == [(0, [s for s in sorted(evaluations(a)) if s >= 100_000])]
    assert ahead[0][1][-1] == 300_000


def test_each_band_has_its_curves_colour(tmp_path, monkeypatch):
    """In `mcat report`'s and `mcat plot`'s figures every standard-error band is drawn in the
    colour of the mean curve it surrounds (bands have a colour cycle of their own in matplotlib:
    with a one-seed method first, they were one colour off)."""
    from pathlib import Path

    import matplotlib.colors as mc
    import matplotlib.figure

    figures, save = [], matplotlib.figure.Figure.savefig
    monkeypatch.setattr(
        matplotlib.figure.Figure,
        "savefig",
        lambda f, *a, **k: (figures.append(f), save(f, *a, **k)),
    )
    results = Path(__file__).parent.parent / "results"
    runs = [
        str(results / "table2/runs/halfcheetah-armature-distral-seed0"),  # one seed: no band
        *map(str, sorted((results / "table34/runs").glob("halfcheetah-armature-delay500-*"))),
    ]
    assert main(["report", *runs, "--step", "300000", "-o", str(tmp_path / "r.md")]) == 0
    assert main(["plot", *runs, "-o", str(tmp_path / "c.png")]) == 0
    bands = 0
    for ax in (ax for f in figures for ax in f.axes):
        for band in ax.collections:
            colour = mc.to_hex(band.get_facecolor()[0], keep_alpha=False)
            mine = [ln for ln in ax.get_lines() if mc.to_hex(ln.get_color()) == colour]
            assert mine and all(
                band.get_paths()[0].contains_points(ln.get_xydata(), radius=1e-6).all()
                for ln in mine
            ), colour
            bands += 1
    assert bands == 2 + 2 * 2  # MCAT and MCAT w/o PT: the report, then train and test in plot


@pytest.mark.parametrize(
    "address, message",
    [("127.0.0.1:1", "cannot reach a Ray cluster at 127.0.0.1:1"), ("nohost", "HOST:PORT")],
)
def test_an_unreachable_cluster_is_one_line_and_writes_nothing(address, message, tmp_path, capsys):
    spec_file, out = tmp_path / "spec.json", tmp_path / "sweep"
    spec_file.write_text(json.dumps(SPEC))
    assert main(["sweep", str(spec_file), "--out", str(out), "--address", address]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_trial_waits_for_a_directory_another_process_still_holds(
    tmp_path, held_elsewhere, monkeypatch
):
    """A trial whose run directory is held (say by a worker of a sweep killed a moment ago) waits
    for it and then runs; one held past the wait fails with the holder named."""
    config = {**BASE, "steps": 120, "eval_every": 120, "algo": "ctd3", "seed": 0}
    run = tmp_path / "trial"
    _, release = held_elsewhere(run)
    threading.Timer(1.0, release).start()
    state, line = sweep._run_trial("train", config, str(run), str(tmp_path / "cache"))
    assert state == "done" and (run / "summary.json").is_file(), line
    other = tmp_path / "other"
    pid, _ = held_elsewhere(other)
    monkeypatch.setattr(sweep, "BUSY_WAIT_S", 0.0)
    state, line = sweep._run_trial("train", config, str(other), str(tmp_path / "cache"))
    assert state == "failed" and f"is in use by another mcat process (pid {pid})" in line
    assert not (other / "config.json").exists()
