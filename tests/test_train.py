"""`mcat train`, `mcat eval` and `mcat plot` end to end: files written, learning happens,
evaluation reproduces, bad input is refused without losing anything."""

import json

import numpy as np
import pytest

from mcat.cli import main
from mcat.config import run_config_from_dict
from mcat.runs import load_checkpoint, read_metrics

FAST = [
    "--set",
    "agent.model_warmup_steps=20",
    "--set",
    "agent.model_steps=5",
    "--set",
    "agent.model_every=50",
    "--quiet",
]


@pytest.fixture(scope="module")
def halfcheetah_run(tmp_path_factory):
    """A short run on the real HalfCheetah armature tasks (2 train, 1 test)."""
    out = tmp_path_factory.mktemp("runs") / "hc"
    argv = [
        "train",
        "halfcheetah-armature",
        "--algo",
        "ctd3",
        "--steps",
        "600",
        "--seed",
        "3",
        "--reward-delay",
        "50",
        "--out",
        str(out),
        "--train-tasks",
        "0.1",
        "0.5",
        "--test-tasks",
        "0.3",
        "--max-episode-steps",
        "100",
        "--learning-starts",
        "200",
        "--eval-every",
        "300",
        "--batch-size",
        "32",
        *FAST,
    ]
    assert main(argv) == 0
    return out


def test_train_writes_every_file(halfcheetah_run):
    out = halfcheetah_run
    config = json.loads((out / "config.json").read_text())
    cfg = run_config_from_dict(config)  # the written config is complete and valid
    assert (cfg.family, cfg.steps, cfg.seed, cfg.reward_delay, cfg.agent.batch_size) == (
        "halfcheetah-armature",
        600,
        3,
        50,
        32,
    )
    assert config["agent"]["history"] == 10 and config["agent"]["z_dim"] == 10
    rows = read_metrics(out)
    assert sorted({r["step"] for r in rows}) == [300, 600]
    assert {(r["task"], r["split"]) for r in rows} == {  # tasks by their keys
        ("0.1", "train"),
        ("0.5", "train"),
        ("0.3", "test"),
    }
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert load_checkpoint(out)["env_steps"] == 600
    episodes = (out / "episodes.csv").read_text().splitlines()
    # 3 episodes of 100 steps per task
    assert episodes[0] == "step,task,return,length" and len(episodes) == 1 + 6
    summary = json.loads((out / "summary.json").read_text())
    for key in ("algo", "family", "steps", "seed", "train_return", "test_return", "per_task"):
        assert key in summary
    final = {r["task"]: r["return"] for r in rows if r["step"] == 600}
    assert summary["train_return"] == pytest.approx(np.mean([final["0.1"], final["0.5"]]))
    assert summary["test_return"] == pytest.approx(final["0.3"])
    assert summary["per_task"]["0.3"] == {"split": "test", "return": pytest.approx(final["0.3"])}


def test_eval_reproduces_the_final_evaluation(halfcheetah_run, capsys):
    capsys.readouterr()
    assert main(["eval", str(halfcheetah_run)]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert len(lines) == 3
    for _split, task, ret, saved in lines:
        assert ret == saved, (task, ret, saved)


def test_plot_groups_seeds(halfcheetah_run, tmp_path, capsys):
    second = tmp_path / "seed4"
    assert (
        main(
            [
                "train",
                "halfcheetah-armature",
                "--steps",
                "600",
                "--seed",
                "4",
                "--reward-delay",
                "50",
                "--out",
                str(second),
                "--train-tasks",
                "0.1",
                "0.5",
                "--test-tasks",
                "0.3",
                "--max-episode-steps",
                "100",
                "--learning-starts",
                "200",
                "--eval-every",
                "300",
                "--batch-size",
                "32",
                *FAST,
            ]
        )
        == 0
    )
    png = tmp_path / "curves.png"
    capsys.readouterr()
    assert main(["plot", str(halfcheetah_run), str(second), "-o", str(png)]) == 0
    assert (
        "ctd3 halfcheetah-armature delay 50: train 2 seed(s), test 2 seed(s)"
        in capsys.readouterr().out
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # about 100 s of one core
def test_ctd3_learns_the_toy_family(tmp_path):
    """5 point-gain tasks: from a random-like policy (about -66) to close to the goal in 5,000
    steps. Measured with one thread (as the suite runs; benchmarks/ctd3_toy_seeds.sh), final
    train/test: seed 0 -17.6/-21.0, seed 1 -17.2/-21.5, seed 2 -15.8/-20.1, against the bars
    -35 and -45. At 3,000 steps seed 0 passed (-25.3/-29.5) but seed 1 did not (-35.4/-59.8):
    too close to the edge for a check that runs on other machines' floats."""
    out = tmp_path / "pg"
    assert (
        main(
            [
                "train",
                "point-gain",
                "--steps",
                "5000",
                "--learning-starts",
                "1000",
                "--eval-every",
                "1000",
                "--threads",
                "1",  # as measured (two threads end at train -38.5, under the bar)
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    rows = read_metrics(out)
    first = np.mean([r["return"] for r in rows if r["step"] == 1000 and r["split"] == "train"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_return"] > -35, summary["train_return"]
    assert summary["train_return"] > first + 20, (first, summary["train_return"])
    assert summary["test_return"] > -45, summary["test_return"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "point-gain", "--algo", "sac"], "unknown algo 'sac'"),
        (["train", "nope"], "unknown task family 'nope'"),
        (["train", "point-gain", "--steps", "0"], "steps must be >= 1"),
        (["train", "point-gain", "--reward-delay", "0"], "reward delay must be >= 1"),
        (["train", "point-gain", "--train-tasks", "-1"], "not valid for point-gain"),
        (["train", "point-gain", "--set", "agent.batch_size=big"], "expected an integer"),
        (["train", "point-gain", "--set", "agent.bogus=1"], "unknown config key(s) agent.bogus"),
        (["train", "point-gain", "--preset", "no-such-preset"], "unknown preset"),
        (["train"], "give a FAMILY"),
    ],
)
def test_bad_train_input(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()  # nothing was created for a refused run


def test_existing_output_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    assert main(["train", "point-gain", "--steps", "100", "--out", str(out)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_unreadable_run_dirs(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("{not json")
    assert main(["eval", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err
    small = {"family": "point-gain", "steps": 200, "learning_starts": 100, "eval_every": 200}
    small["agent"] = {"model_warmup_steps": 5, "hidden": [32, 32], "batch_size": 16}
    (tmp_path / "config.json").write_text(json.dumps(small))
    assert main(["plot", str(tmp_path), "-o", str(tmp_path / "x.png")]) == 2
    assert "has no metrics.csv" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no checkpoint yet" in err
    advice = err.split("; ")[-1].split()  # mcat train --resume DIR runs it
    assert advice[:4] == ["mcat", "train", "--resume", str(tmp_path)]
    assert main([*advice[1:4], "--quiet"]) == 0  # followed: the run is trained ...
    assert main(["eval", str(tmp_path)]) == 0  # ... and evaluated


def test_presets_are_valid_configs():
    from mcat.algos import get_algo
    from mcat.presets import list_presets, load_preset

    names = list_presets()
    assert [
        len([n for n in names if n.startswith(t)]) for t in ("table2-", "table3-", "table4-")
    ] == [5, 5, 6]
    for name in names:
        cfg = run_config_from_dict(load_preset(name))
        cfg.validate()
        # the tables' MCAT rows; --no-pt gives the ablation
        assert cfg.algo == "mcat" and cfg.agent.policy_transfer
        if name.startswith("table2-"):  # the baselines' rows: the same run with --algo NAME
            for algo in ("pearl", "mql", "distral", "hipbmdp"):
                other = run_config_from_dict({**load_preset(name), "algo": algo})
                other.validate()
                assert type(other.agent) is get_algo(algo).config


def test_td3_algo_has_no_context_and_trains(tmp_path):
    out = tmp_path / "td3"
    assert (
        main(
            [
                "train",
                "point-gain",
                "--algo",
                "td3",
                "--steps",
                "400",
                "--learning-starts",
                "200",
                "--eval-every",
                "400",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    state = load_checkpoint(out)["agent"]
    assert "encoder" not in state and "forward_model" not in state
    assert state["actor"]["net.0.weight"].shape[1] == 2  # the actor sees the state only
    assert json.loads((out / "summary.json").read_text())["algo"] == "td3"
