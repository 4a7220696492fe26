"""Tasks as keys: a task may be a number, a string or a small vector, with a stable string key in
files, seeds and on the command line; run directories written with float keys still resume and
evaluate."""

import csv
import json
import shutil
import zlib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from mcat.cli import main
from mcat.collect import eval_seed
from mcat.errors import MCATError
from mcat.evaluation import evaluate_agent
from mcat.tasks import Box, Choice, TaskFamily, get_family, register_family, task_key
from mcat.tasks import family as registry
from mcat.tasks.toy import PointGainEnv
from mcat.train import load_run_agent
from regression_runs import assert_same_logs, same_number

OLD_RUN = Path(__file__).parent / "data" / "old_run_float_keys"


def _set_goal(env, goal):
    env.unwrapped.GOAL = np.asarray(goal, dtype=np.float64)  # instance attribute: this env only


GAINS = {"slow": 0.5, "normal": 1.0, "fast": 2.0}


def _set_named_gain(env, name):
    env.unwrapped.gain = GAINS[name]


@pytest.fixture(scope="module", autouse=True)
def toy_families():
    """A family with vector tasks (goal positions) and one with named tasks, registered for this
    module only (other tests list every registered family)."""
    families = [
        TaskFamily(
            name="test-point-goal",
            env=PointGainEnv,
            parameter="goal position",
            train_tasks=((1.0, 1.0), (0.5, 1.0), (1.0, 0.5)),
            test_tasks=((0.8, 0.8),),
            domain=Box((-2.0, -2.0), (2.0, 2.0)),
            apply=_set_goal,
            max_episode_steps=50,
        ),
        TaskFamily(
            name="test-point-named",
            env=PointGainEnv,
            parameter="named gain",
            train_tasks=("slow", "fast"),
            test_tasks=("normal",),
            domain=Choice(tuple(GAINS)),
            apply=_set_named_gain,
            max_episode_steps=50,
        ),
    ]
    for family in families:
        register_family(family, overwrite=True)
    yield
    for family in families:
        registry._REGISTRY.pop(family.name)
        gym.registry.pop(family.gym_id)


def test_vectors_that_start_with_a_minus_are_values_on_the_command_line():
    """argparse reads "-0.1,0.8,0.1" as an option unless told otherwise (a lane stopped on it)."""
    from mcat.cli import build_parser

    args = build_parser().parse_args(
        ["transfer", "metaworld-reach", "--source", "0,0.85,0.175", "--target", "-0.1,0.8,0.1"]
    )
    assert args.target == "-0.1,0.8,0.1"
    args = build_parser().parse_args(["transfer-matrix", "x", "--tasks", "-1,2", "-.5", "3"])
    assert args.tasks == ["-1,2", "-.5", "3"]
    with pytest.raises(SystemExit):  # an unknown option is still one
        build_parser().parse_args(["transfer", "x", "--source", "1", "--target", "-x"])


def test_keys_of_numbers_strings_and_vectors_and_back():
    assert [task_key(v) for v in (0.1, 3, 1.0, "push-v3", (0.1, -0.8, 0.25))] == [
        "0.1",
        "3",
        "1",
        "push-v3",
        "0.1,-0.8,0.25",
    ]
    for name in ("test-point-goal", "test-point-named", "halfcheetah-armature", "metaworld-push"):
        family = get_family(name)
        for task in family.all_tasks:
            assert family.task(task_key(task)) == task
    assert get_family("ant-cripple").task("3") == 3 and isinstance(
        get_family("ant-cripple").task("3"), int
    )


@pytest.mark.parametrize(
    "family, task, message",
    [
        ("test-point-goal", "1", "must be 2 numbers"),
        ("test-point-goal", "1,2,3", "must be 2 numbers"),
        ("test-point-goal", "1,x", "must be a number"),
        ("test-point-goal", "3,0", "must be a vector within [-2,-2] and [2,2]"),
        ("test-point-goal", "nan,0", "not valid"),
        ("test-point-named", "medium", "must be one of slow, normal, fast"),
        ("test-point-named", 1.0, "not valid"),
        ("halfcheetah-armature", "push-v3", "must be a number"),
    ],
)
def test_a_bad_task_is_named(family, task, message):
    with pytest.raises(MCATError) as err:
        get_family(family).check_task(task)
    assert message in str(err.value)


def test_number_tasks_keep_their_seeds():
    # the seed string of a number is what it was before tasks could be strings or vectors
    assert eval_seed(3, 0.5, 2) == zlib.crc32(b"eval:3:0.5:2")
    assert eval_seed(3, 2, 0) == zlib.crc32(b"eval:3:2.0:0")
    assert eval_seed(3, (0.5, 1.0), 0) == zlib.crc32(b"eval:3:0.5,1:0")
    assert eval_seed(3, "fast", 0) != eval_seed(3, "slow", 0)


def _cut_to_first_checkpoint(run: Path) -> None:
    """What a run killed after its first checkpoint leaves (the later rows of metrics.csv and
    episodes.csv stay: resuming cuts them back)."""
    (run / "summary.json").unlink()
    for file in sorted((run / "checkpoints").glob("step-*"))[2:]:
        file.unlink()


@pytest.mark.parametrize(
    "family, train, test",
    [
        ("test-point-goal", ["1,1", "0.5,1", "1,0.5"], ["0.8,0.8"]),
        ("test-point-named", ["slow", "fast"], ["normal"]),
    ],
)
def test_vector_and_string_tasks_train_evaluate_and_resume(family, train, test, tmp_path):
    run = tmp_path / "run"
    argv = ["train", family, "--algo", "ctd3", "--steps", "200", "--learning-starts", "50"]
    argv += ["--eval-every", "100", "--checkpoint-every", "100", "--eval-episodes", "2"]
    argv += [
        "--threads",
        "1",
        "--set",
        "agent.hidden=[32,32]",
        "--set",
        "agent.model_warmup_steps=10",
    ]
    argv += ["--train-tasks", *train, "--test-tasks", *test, "--out", str(run), "--quiet"]
    assert main(argv) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert list(summary["per_task"]) == train + test
    config = json.loads((run / "config.json").read_text())
    fam = get_family(family)
    assert [fam.check_task(v) for v in config["train_tasks"]] == [fam.task(k) for k in train]
    metrics = (run / "metrics.csv").read_text()
    with open(run / "metrics.csv", newline="") as f:
        assert {row["task"] for row in csv.DictReader(f)} == set(train + test)
    # the saved policy evaluates to the summary on the same seeded episodes
    cfg, agent, _ = load_run_agent(run)
    returns = evaluate_agent(agent, cfg, [fam.task(k) for k in train + test])
    assert [returns[fam.task(k)] for k in train + test] == [
        summary["per_task"][k]["return"] for k in train + test
    ]
    # the curves and the report read the keys back
    assert main(["plot", str(run), "-o", str(tmp_path / "curves.png")]) == 0
    assert main(["report", str(run), "-o", str(tmp_path / "report.md")]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0
    # killed after the first checkpoint and resumed: the same run
    episodes = (run / "episodes.csv").read_text()
    _cut_to_first_checkpoint(run)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert json.loads((run / "summary.json").read_text())["per_task"] == summary["per_task"]
    assert (run / "metrics.csv").read_text() == metrics
    assert (run / "episodes.csv").read_text() == episodes


def test_a_run_written_with_float_keys_resumes_and_evaluates(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(OLD_RUN / "run", run)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    # expected/ was written on another processor: numbers agree to a float's last bits
    # (regression_runs.REL), everything else exactly
    expected = json.loads((OLD_RUN / "expected" / "summary.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert list(summary["per_task"]) == list(expected["per_task"])
    for key, want in expected["per_task"].items():
        got = summary["per_task"][key]
        assert got["split"] == want["split"] and same_number(got["return"], want["return"]), key
    for name in ("metrics.csv", "episodes.csv"):
        got_text, want_text = (run / name).read_text(), (OLD_RUN / "expected" / name).read_text()
        assert_same_logs(got_text, want_text, name)
    cfg, agent, _ = load_run_agent(run)
    family = get_family(cfg.family)
    tasks = [family.task(k) for k in expected["per_task"]]
    returns = evaluate_agent(agent, cfg, tasks)
    # the saved policy evaluates to what the resumed run wrote, bit for bit (same machine)
    assert [returns[v] for v in tasks] == [v["return"] for v in summary["per_task"].values()]
