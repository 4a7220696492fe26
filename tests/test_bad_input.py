"""Every flag of every `mcat` command, fed bad values: exit 2, one line on stderr, no traceback,
nothing written. The flags are read from the parser itself, so a flag added later is covered (or
the test says which flag needs bad values)."""

import argparse
import os

import pytest
import torch

from mcat.cli import build_parser, main
from toy_runs import quiet, toy_config

HUGE = str(2**64)  # beyond int64
# flags whose value may be 0 (for every other number flag, 0 is a bad value too)
ZERO_OK = {"distribution_weight", "seed", "seeds", "learning_starts", "pt_margin", "dataset_noise"}
# bad values for the flags that take a string, by dest; PATH is replaced by a temporary folder
STRING_BAD = {
    "family": ["nope", ""],
    "name": ["nope"],
    "task": ["abc", "-1", "nan"],
    "tasks": ["abc", "-1"],
    "train_tasks": ["abc", "-1", "nan"],
    "test_tasks": ["abc", "-1", "1,2"],
    "target_family": ["nope", ""],
    "source": ["abc", "-1"],
    "target": ["abc", "0"],
    "out": ["/proc/mcat-test/run", "PATH/file.txt/run"],
    "cache": ["/proc/mcat-test/cache", "PATH/file.txt"],
    "resume": ["PATH/missing", "PATH/file.txt", "PATH/not-a-run"],
    "config": ["PATH/missing.json", "PATH/file.txt", "PATH/bad.json"],
    "preset": ["nope", "PATH/bad.json"],
    "set": ["novalue", "=3", "agent.bogus=1", "steps=-3", "agent.batch_size=big"],
    "plot": ["/proc/mcat-test.png", "PATH/x.txt", "PATH", "PATH/file.txt/x.png"],
    "output": ["/proc/mcat-test.png", "PATH/x.txt", "PATH", "PATH/file.txt/x.png"],
    "device": ["banana", "cuda:99", "cpu:x"],
    "algo": ["sac", ""],
    "run_dir": ["PATH/missing", "PATH/file.txt", "PATH/not-a-run"],
    "run_dirs": ["PATH/missing", "PATH/not-a-run"],
    "spec": ["nope", "PATH/bad.json", "PATH/file.txt"],
    "address": ["nohost", "127.0.0.1:1"],
    "status": ["PATH/missing", "PATH/file.txt"],
    "runs": ["PATH/missing", "PATH/file.txt", "PATH/not-a-run"],
    "transfer_from": ["abc", "-1", "0.3", "0.1"],  # 0.3: a test task; 0.1: the --task itself
}
NO_BAD_VALUE = {"title"}  # any text is a valid plot title


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    """A tiny finished toy run for the commands that read one (eval, plot)."""
    from mcat.train import Trainer

    out = tmp_path_factory.mktemp("run") / "toy"
    Trainer(toy_config(steps=200, learning_starts=100, eval_every=200), out, log=quiet).run()
    return out


@pytest.fixture(scope="module")
def cheetah_run(tmp_path_factory):
    """A tiny finished MCAT run on HalfCheetah (renderable, with a translator) for `mcat video`."""
    from mcat.config import run_config_from_dict
    from mcat.train import Trainer

    out = tmp_path_factory.mktemp("run") / "cheetah"
    agent = {"hidden": [16], "batch_size": 8, "model_warmup_steps": 2, "model_steps": 1}
    agent.update(translator_warmup_steps=2, translator_steps=1)
    cfg = {"family": "halfcheetah-armature", "algo": "mcat", "steps": 40, "threads": 1}
    cfg.update(train_tasks=[0.1, 0.5], test_tasks=[0.3], max_episode_steps=4, agent=agent)
    cfg.update(learning_starts=20, eval_every=40)
    Trainer(run_config_from_dict(cfg), out, log=quiet).run()
    return out


def _bases(run, tmp, cheetah=None):
    """A valid, cheap command line per command; the bad flag is appended (argparse keeps the
    last value), so a bad value that slipped through would run the small job and fail the test."""
    small = ["--source-steps", "10", "--dataset-size", "10", "--model-steps", "1"]
    small += ["--translator-steps", "1", "--eval-episodes", "1", "--max-episode-steps", "5"]
    return {
        "families": ["families"],
        "rollout": ["rollout", "point-gain"],
        "train": ["train", "point-gain", "--steps", "20", "--learning-starts", "10"],
        "eval": ["eval", str(run)],
        "plot": ["plot", str(run), "-o", str(tmp / "ok.png")],
        "presets": ["presets"],
        "algos": ["algos"],
        "transfer": ["transfer", "point-gain", "--source", "1", "--target", "1.5", *small],
        "transfer-matrix": ["transfer-matrix", "point-gain", "--tasks", "1", "1.5", *small],
        "sweep": ["sweep", str(_tiny_spec(tmp)), "--out", str(tmp / "sweep")],
        "report": ["report", str(run), "-o", str(tmp / "ok.md")],
        "video": ["video", str(cheetah), "--task", "0.1", "-o", str(tmp / "ok.gif")],
    }


def _tiny_spec(tmp):
    """A one-trial sweep of a few steps (what runs if a bad value slips through)."""
    spec = tmp / "spec.json"
    spec.write_text(
        '{"name": "t", "base": {"family": "point-gain", "steps": 20, "learning_starts": 10}, '
        '"grid": {"seed": [0]}}'
    )
    return spec


def _bad_values(action: argparse.Action) -> list[list[str]]:
    """Lists of command-line values, each bad for ``action``."""
    dest = action.dest
    if action.choices is not None:
        return [["banana"]]
    if action.type in (int, float):
        bad = [["-1"], ["abc"], [HUGE if action.type is int else "1e400"]]
        bad += [["nan"], ["inf"]] if action.type is float else [["1.5"]]
        if dest not in ZERO_OK:
            bad.append(["0"])
        if action.nargs == "+":  # lists of tasks: a duplicate, and none
            bad += [["1", "1"], []]
        return bad
    if dest in NO_BAD_VALUE:
        return []
    assert dest in STRING_BAD, f"add bad values for the new flag {dest!r} to STRING_BAD"
    bad = [[v] for v in STRING_BAD[dest]]
    if action.nargs == "+":
        bad.append([])
    if dest in ("tasks", "train_tasks", "test_tasks"):
        bad.append(["1", "1"])
    return bad


def _cases():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, p in sub.choices.items():
        for action in p._actions:
            if action.nargs == 0 or isinstance(action, argparse._HelpAction):
                continue  # switches take no value
            for values in _bad_values(action):
                yield command, action, values


CASES = list(_cases())


def _argv(base, action, values):
    if not action.option_strings:  # a positional: replace the base's
        command = base[0]
        if action.dest in ("family", "name"):
            return [command, *values, *base[2:]] if command != "families" else [command, *values]
        if action.dest == "run_dir":
            return [command, *values]
        if action.dest in ("run_dirs", "spec", "runs"):
            return [command, *values, *base[2:]]
    if action.dest == "resume":  # --resume refuses other settings: alone
        return ["train", action.option_strings[0], *values]
    return [*base, action.option_strings[-1], *values]


def _snapshot(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    "command, action, values",
    CASES,
    ids=[f"{c} {a.option_strings[-1] if a.option_strings else a.dest} {v}" for c, a, v in CASES],
)
def test_every_flag_refuses_bad_values(
    command, action, values, eval_run, tmp_path, capsys, request
):
    work = tmp_path / "work"
    work.mkdir()
    (work / "file.txt").write_text("a file, not a folder")
    (work / "bad.json").write_text("{not json")
    (work / "not-a-run").mkdir()
    values = [v.replace("PATH", str(work)) for v in values]
    cheetah = request.getfixturevalue("cheetah_run") if command == "video" else None
    argv = _argv(_bases(eval_run, work, cheetah)[command], action, values)
    if "--out" not in argv and command in ("train", "transfer", "transfer-matrix"):
        argv += ["--out", str(work / "out")]
    if "--cache" not in argv and command in ("transfer", "transfer-matrix"):
        argv += ["--cache", str(work / "cache")]
    before = _snapshot(work)
    run_before = _snapshot(eval_run)
    cwd = os.getcwd()
    os.chdir(work)  # a default output folder would appear here
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (wrong type, bad choice)
        code = exc.code
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert err.count("\n") == 1 and err.startswith("mcat") and "Traceback" not in err, err
    assert _snapshot(work) == before, argv  # nothing written, nothing removed
    assert _snapshot(eval_run) == run_before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "point-gain", "--seed", "-1"], "--seed must be between 0 and"),
        (["train", "point-gain", "--seed", "4294967296"], "--seed must be between 0 and"),
        (["train", "point-gain", "--threads", "-3"], "--threads must be between 1 and"),
        (["train", "point-gain", "--threads", "0"], "--threads must be between 1 and"),
        (["train", "point-gain", "--device", "banana"], "is not a torch device"),
        (["train", "point-gain", "--train-tasks", "0.5", "0.5"], "lists the task 0.5 twice"),
        (["train", "point-gain", "--utd", "-1"], "--utd must be > 0, got -1"),
        (["train", "point-gain", "--learning-starts", "-1"], "--learning-starts must be >= 0"),
        (["train", "point-gain", "--max-episode-steps", "0"], "--max-episode-steps must be >= 1"),
        (["train", "point-gain", "--plot", "/proc/x.png"], "cannot write plot file /proc/x.png"),
        (["train", "point-gain", "--plot", "curves.txt"], "unsupported file type '.txt'"),
        (
            ["train", "point-gain", "--algo", "pearl", "--set", "agent.adaptation_episodes=-1"],
            "agent.adaptation_episodes must be between 0 and 100, got -1",
        ),
        (
            ["train", "point-gain", "--algo", "pearl", "--set", "agent.adaptation_episodes=101"],
            "agent.adaptation_episodes must be between 0 and 100, got 101",
        ),
        (
            ["train", "point-gain", "--set", "agent.kl_lambda=0.5"],
            "agent.kl_lambda is a setting of pearl and hipbmdp, not of ctd3",
        ),
        (["train", "point-gain", "--algo", "pearl", "--no-pt"], "--no-pt: only for --algo mcat"),
        (
            ["train", "point-gain", "--algo", "pearl", "--test-tasks", "-1"],
            "task value -1 is not valid for point-gain",
        ),
        (
            ["train", "point-gain", "--algo", "pearl", "--set", "agent.prior_episodes=0"],
            "agent.prior_episodes must be >= 1, got 0",
        ),
        (
            ["train", "point-gain", "--algo", "distral", "--train-tasks", "1.0"],
            "Distral distils the policies of several training tasks, got 1",
        ),
        (
            ["train", "point-gain", "--algo", "distral", "--set", "agent.alpha=1"],
            "agent.alpha must be >= 0 and <= 0.99, got 1",
        ),
        (
            ["train", "point-gain", "--algo", "distral", "--set", "agent.kl_lambda=1"],
            "agent.kl_lambda is a setting of pearl and hipbmdp, not of distral",
        ),
    ],
)
def test_reported_bad_inputs_name_the_value(argv, message, tmp_path, capsys):
    """The cases found by trying the command as a new user (issue "First contact")."""
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line(tmp_path, capsys):
    assert main(["train", "point-gain", "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert "CUDA is not available on this machine" in capsys.readouterr().err


def test_plot_to_a_folder_or_bad_path_writes_nothing(eval_run, tmp_path, capsys):
    folder = tmp_path / "pics"
    folder.mkdir()
    assert main(["plot", str(eval_run), "-o", str(folder)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert list(folder.iterdir()) == [] and not (tmp_path / "pics.png").exists()
    assert main(["plot", str(eval_run), "-o", str(folder / "c.png")]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["c.png"]  # no temporary file left


TINY = ["--steps", "40", "--learning-starts", "20", "--eval-every", "40", "--max-episode-steps"]
TINY += ["10", "--threads", "1", "--set", "agent.model_warmup_steps=2", "--quiet"]


@pytest.mark.parametrize(
    "argv, advice, fixed",
    [
        (["--seed", "5"], "drop --seed", []),  # after --resume RUN
        (["point-gain", "--algo", "mcat", "--train-tasks", "1"], "(--no-pt)", ["--no-pt"]),
        (["point-gain", "--no-pt", "--algo", "mcat", "--pt-window", "3"], "drop one of them", None),
        (
            ["point-gain", "--pt-window", "3"],
            "only for --algo mcat",
            ["--algo", "mcat", "--set", "agent.translator_warmup_steps=2"],
        ),
        ([], "give a FAMILY", ["point-gain"]),
    ],
)
def test_the_advice_of_an_error_works_when_followed(
    argv, advice, fixed, eval_run, tmp_path, capsys
):
    if advice.startswith("drop --seed"):
        bad, good = (
            ["train", "--resume", str(eval_run), *argv],
            ["train", "--resume", str(eval_run)],
        )
    else:
        out = ["--out", str(tmp_path / "run"), *TINY]
        bad = ["train", *argv, *out]
        # fixed None: drop the last option, the one the message names
        good = ["train", *(argv[:-2] if fixed is None else [*argv, *fixed]), *out]
    assert main(bad) == 2
    assert advice in capsys.readouterr().err
    assert main(good) == 0
