"""The `mcat` command: listings, rollouts, and one-line errors with a non-zero exit."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mcat.cli import main
from mcat.tasks import get_family, list_families, task_key


def test_families_lists_every_family_with_its_splits(capsys):
    assert main(["families"]) == 0
    out = capsys.readouterr().out
    for name in list_families():
        fam = get_family(name)
        assert name in out
        sep = "; " if isinstance(fam.train_tasks[0], tuple) else ", "  # vectors hold commas
        assert "train: " + sep.join(task_key(v) for v in fam.train_tasks) in out
        assert "test:  " + sep.join(task_key(v) for v in fam.test_tasks) in out


def test_families_json(capsys):
    assert main(["families", "ant-cripple", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {
            "name": "ant-cripple",
            "env": "Ant-v5",
            "parameter": "crippled leg (-1 = none)",
            "domain": "one of -1, 0, 1, 2, 3",
            "default": -1,
            "train": [0, 1, 2],
            "test": [3],
            "max_episode_steps": 1000,
            "description": get_family("ant-cripple").description,
        }
    ]


def test_rollout_reports_delayed_payouts(capsys):
    assert (
        main(
            [
                "rollout",
                "halfcheetah-armature",
                "--task",
                "0.5",
                "--reward-delay",
                "400",
                "--episodes",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("1000 steps, 3 reward payouts") == 2  # at 400, 800 and 1000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["families", "nope"], "unknown task family 'nope'; known families: halfcheetah-armature"),
        (["rollout", "nope"], "unknown task family 'nope'"),
        (["rollout", "hopper-mass", "--task", "-2"], "not valid for hopper-mass"),
        (["rollout", "ant-cripple", "--task", "5"], "one of -1, 0, 1, 2, 3"),
        (["rollout", "point-gain", "--reward-delay", "0"], "reward delay must be >= 1"),
        (["rollout", "point-gain", "--episodes", "0"], "--episodes must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_argument_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["rollout", "point-gain", "--reward-delay", "soon"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid int value: 'soon'" in err


def test_console_script_is_installed():
    exe = shutil.which("mcat", path=str(Path(sys.executable).parent))
    assert exe, "the `mcat` entry point is not installed next to this Python"
    result = subprocess.run(
        [exe, "rollout", "ant-cripple", "--task", "9"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and result.stderr.startswith("mcat: error:")


@pytest.mark.parametrize(
    "command, module, cls",
    [
        ("transfer", "mcat.experiments.transfer", "TransferConfig"),
        ("transfer-matrix", "mcat.experiments.transfer_matrix", "MatrixConfig"),
    ],
)
def test_experiment_help_states_the_config_defaults(command, module, cls, capsys):
    """The CLI writes these defaults without importing the configs (that would import torch for
    every command); they must agree."""
    import dataclasses
    import importlib
    import re

    defaults = {
        f.name: f.default for f in dataclasses.fields(getattr(importlib.import_module(module), cls))
    }
    with pytest.raises(SystemExit):
        main([command, "--help"])
    # the flags' help, not the usage line
    text = " ".join(capsys.readouterr().out.split()).split("options:")[1]
    for flag in (
        "source_steps",
        "dataset_size",
        "dataset_noise",
        "model_steps",
        "translator_steps",
        "batch_size",
        "objective",
        "eval_episodes",
    ):
        m = re.search(rf"--{flag.replace('_', '-')} \S+ .*?\(default (\S+?)\)", text)
        assert m and m.group(1) == str(defaults[flag]), (flag, m and m.group(1), defaults[flag])
