"""`mcat transfer-matrix` (one conditioned translator for every pair, paper Fig. 5)."""

import csv
import functools
import json

import numpy as np
import pytest
import torch

from mcat.agents.ctd3 import CTD3Config
from mcat.cli import main
from mcat.experiments import transfer_matrix
from mcat.models.translator import ActionTranslator

GAINS = ["0.75", "1", "1.5"]
TOY = [
    "--source-steps",
    "2000",
    "--dataset-size",
    "1500",
    "--model-steps",
    "800",
    "--translator-steps",
    "1200",
    "--eval-episodes",
    "1",
    "--threads",
    "1",
    "--quiet",
    "--dataset-noise",
    "1.0",
]  # wide action coverage, so in-bound equivalent actions are well represented


def _check_matrix_file(out, summary, names):
    """improvement.csv agrees with the per-pair rows, and each improvement is computed from them."""
    tasks = summary["tasks"]
    with open(out / "improvement.csv") as f:
        matrix = list(csv.reader(f))
    assert matrix[0][1:] == names and [r[0] for r in matrix[1:]] == names
    for pair in summary["pairs"]:
        j, i = tasks.index(pair["source"]), tasks.index(pair["target"])
        expected = (
            100
            * (pair["transferred_on_target"] - pair["source_on_target"])
            / abs(pair["source_on_target"])
        )
        assert float(matrix[1 + j][1 + i]) == pytest.approx(expected, abs=0.01)
    assert (out / "improvement.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # about 2.5 minutes of one core; the files are checked in the fast suite below
def test_toy_matrix_learns_every_pair_and_writes_the_matrix(tmp_path):
    out, cache = tmp_path / "m", tmp_path / "cache"
    assert (
        main(
            [
                "transfer-matrix",
                "point-gain",
                "--tasks",
                *GAINS,
                "--out",
                str(out),
                "--cache",
                str(cache),
                *TOY,
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    tasks = summary["tasks"]
    assert tasks == [0.75, 1.0, 1.5] and len(summary["pairs"]) == 9
    _check_matrix_file(out, summary, GAINS)
    # what was learned: H(s, a, z_j, z_i) = a k_j / k_i for every ordered pair,
    # where that is in bounds
    meta = next(
        m
        for m in cache.glob("data/*/meta.json")
        if json.loads(m.read_text())["kind"] == "matrix-datasets"
    )
    data = np.load(meta.parent / "data.npz")
    features = torch.as_tensor(data["features"])
    H = ActionTranslator(2, 2, features.shape[1], conditioned=True)
    H.load_state_dict(torch.load(out / "translator.pt", weights_only=True))
    for j, i in ((j, i) for j in range(3) for i in range(3) if i != j):
        obs, act = torch.as_tensor(data["obs"][j]), torch.as_tensor(data["act"][j])
        want = act * tasks[j] / tasks[i]
        inside = (want.abs() < 0.95).all(-1)
        with torch.no_grad():
            got = H(obs, act, features[j].expand(len(obs), -1), features[i].expand(len(obs), -1))
        assert inside.sum() > 100
        error = (got - want).abs()[inside].median()
        # beats the identity
        assert error < 0.1 and error < 0.5 * (act - want).abs()[inside].median(), (
            tasks[j],
            tasks[i],
        )


def test_halfcheetah_matrix_runs_on_the_real_environment(tmp_path, monkeypatch):
    # a small C and F for the source policy: at the paper's sizes its 500 warm-up model steps
    # would take most of this test's time, and the pipeline, not the policy, is under test
    small = functools.partial(
        CTD3Config, model_warmup_steps=50, model_hidden=64, encoder_hidden=(64, 64)
    )
    monkeypatch.setattr(transfer_matrix, "CTD3Config", small)
    out = tmp_path / "hc"
    assert (
        main(
            [
                "transfer-matrix",
                "halfcheetah-armature",
                "--tasks",
                "0.1",
                "0.5",
                "--out",
                str(out),
                "--cache",
                str(tmp_path / "cache"),
                "--source-steps",
                "400",
                "--dataset-size",
                "200",
                "--model-steps",
                "20",
                "--translator-steps",
                "20",
                "--eval-episodes",
                "1",
                "--max-episode-steps",
                "50",
                "--threads",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert [(p["source"], p["target"]) for p in summary["pairs"]] == [
        (0.1, 0.1),
        (0.1, 0.5),
        (0.5, 0.1),
        (0.5, 0.5),
    ]
    assert summary["pairs_off_diagonal"] == 2
    _check_matrix_file(out, summary, ["0.1", "0.5"])


@pytest.mark.parametrize(
    "tasks, message",
    [
        (["1"], "needs at least two tasks"),
        (["1", "1"], "lists a task twice"),
        (["1", "-3"], "not valid for point-gain"),
    ],
)
def test_bad_matrix_input(tasks, message, tmp_path, capsys):
    assert (
        main(
            [
                "transfer-matrix",
                "point-gain",
                "--tasks",
                *tasks,
                "--out",
                str(tmp_path / "o"),
                "--cache",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists() and not (tmp_path / "o").exists()


def test_step_progress_reports_every_tenth_with_eta():
    from mcat.runs import StepProgress

    lines = []
    progress = StepProgress("H", 25, lines.append)
    for step in range(1, 26):
        progress.update(step, 0.5 if step == 10 else None)
    # every 2 steps (a tenth of 25, rounded down) and the last one:
    # 13 lines, percentages rising to 100
    assert len(lines) == 13 and lines[-1].startswith("  H 25/25 (100%)")
    assert [int(line.split("(")[1].split("%")[0]) for line in lines] == sorted(
        100 * s // 25 for s in (*range(2, 25, 2), 25)
    )
    assert (
        "loss 0.5" in lines[4] and "loss" not in lines[3] and all("ETA " in line for line in lines)
    )
