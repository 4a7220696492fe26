"""MCAT end to end: policy transfer chosen where it helps, its logs, its switches, resume, and a
real-environment run."""

import csv
import json
import shutil

import numpy as np
import pytest

from mcat.cli import main
from mcat.config import run_config_from_dict
from mcat.errors import MCATError
from mcat.tasks import Interval, TaskFamily, register_family
from mcat.tasks.toy import PointGainEnv
from mcat.train import Trainer
from toy_runs import TOY_AGENT, keep_torch_threads, mcat, quiet  # noqa: F401 (fixture)


class SparseReach(PointGainEnv):
    """Reward 1 per step within 0.25 of the goal (1, 0), else 0. With gain 2.5 random actions
    find the goal now and then; with gain -1 (reversed and slower) they practically never do, and
    the learned policy, which goes right on the easy task, goes left there. The equivalent
    action is a * 2.5 / -1: the translated easy policy reaches the goal on the hard task."""

    GOAL = np.array([1.0, 0.0])

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self._pos = np.clip(self._pos + self.DT * self.gain * a, -3.0, 3.0)
        return (
            self._pos.copy(),
            float(np.linalg.norm(self._pos - self.GOAL) < 0.25),
            False,
            False,
            {},
        )


def _set_gain(env, gain):
    env.unwrapped.gain = float(gain)


register_family(
    TaskFamily(
        name="test-sparse-reach",
        env=SparseReach,
        parameter="gain",
        train_tasks=(2.5, -1.0),
        test_tasks=(),
        domain=Interval(-10.0, 10.0),
        apply=_set_gain,
        default_task=2.5,
        max_episode_steps=50,
        description="easy (gain 2.5) and hard (gain -1) sparse reaching (tests)",
    ),
    overwrite=True,
)

PT_AGENT = {
    "batch_size": 32,
    "hidden": [64, 64],
    "model_warmup_steps": 100,
    "model_steps": 10,
    "model_every": 50,
    "translator_warmup_steps": 200,
    "translator_steps": 10,
    "pt_window": 2,
    "pt_stale_after": 8,
}


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


# The policy-transfer run below trains 8,000 steps (about a minute of one core): the tests that
# read it are long checks (`scripts/test.sh --slow`); the fast suite's HalfCheetah test below
# covers the MCAT loop with policy transfer, and its resume, in short.
@pytest.fixture(scope="module")
def easy_hard_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pt") / "run"
    # seed 2: in 8,000 steps the easy task is learned with seeds 1 and 2, not always with seed 0
    # (the test checks that premise first)
    cfg = run_config_from_dict(
        {
            "family": "test-sparse-reach",
            "algo": "mcat",
            "steps": 8000,
            "learning_starts": 1000,
            "eval_every": 1000,
            "threads": 1,
            "seed": 2,
            # checkpoints at 2,976, 5,950 (mid-episode: the resume test continues from it) and
            # 8,000; the last two are kept
            "checkpoint_every": 2975,
            "agent": PT_AGENT,
        }
    )
    Trainer(cfg, out, log=quiet).run()
    return out


@pytest.mark.slow
def test_policy_transfer_is_chosen_on_the_hard_task_and_raises_its_returns(easy_hard_run):
    transfer = _rows(easy_hard_run / "transfer.csv")
    hard = [r for r in transfer if r["task"] == "-1"]
    easy = [r for r in transfer if r["task"] == "2.5"]
    moved = [r for r in hard if r["policy"] == "transfer"]
    # easy is learned
    assert (
        max(
            np.mean([float(r["return"]) for r in easy[i : i + 10]]) for i in range(0, len(easy), 10)
        )
        > 25
    )
    assert moved and all(r["source"] == "2.5" for r in moved)
    # transfer starts only once the easy task is learned: its learned policy then scores above the
    # hard task's
    first = int(moved[0]["step"])
    easy_before = [float(r["return"]) for r in easy if int(r["step"]) <= first][-2:]
    hard_own_before = [
        float(r["return"]) for r in hard if r["policy"] == "own" and int(r["step"]) <= first
    ][-2:]
    assert np.mean(easy_before) > np.mean(hard_own_before)
    # and the transferred policy collects much better episodes on the hard task than its own policy
    own = [float(r["return"]) for r in hard if r["policy"] == "own"]
    assert np.mean([float(r["return"]) for r in moved]) > np.mean(own) + 10.0, (
        len(moved),
        np.mean(own),
    )
    # most transferred episodes come after a good one: it keeps being chosen while it does well
    assert len(moved) >= 10


@pytest.mark.slow
def test_transfer_log_totals_match_the_collected_episodes(easy_hard_run):
    episodes = _rows(easy_hard_run / "episodes.csv")
    transfer = _rows(easy_hard_run / "transfer.csv")
    assert [(r["step"], r["task"], float(r["return"])) for r in transfer] == [
        (r["step"], r["task"], float(r["return"])) for r in episodes
    ]
    summary = _rows(easy_hard_run / "transfer_summary.csv")
    last_eval = max(int(r["step"]) for r in summary)
    for task in ("2.5", "-1"):
        rows = [r for r in summary if r["task"] == task]
        logged = [r for r in transfer if r["task"] == task and int(r["step"]) <= last_eval]
        assert sum(int(r["episodes"]) for r in rows) == len(logged)
        assert sum(int(r["transferred"]) for r in rows) == sum(
            r["policy"] == "transfer" for r in logged
        )
    assert {r["policy"] for r in transfer} == {"random", "own", "transfer"}


def test_without_pt_no_translator_and_no_transfer_log(tmp_path):
    cfg = run_config_from_dict(
        {
            "family": "test-sparse-reach",
            "algo": "mcat",
            "steps": 400,
            "learning_starts": 100,
            "eval_every": 400,
            "threads": 1,
            # with policy transfer H would train from the 40th gradient step on (C+F 20, H 20)
            "agent": {
                **PT_AGENT,
                "model_warmup_steps": 20,
                "translator_warmup_steps": 20,
                "policy_transfer": False,
            },
        }
    )
    trainer = Trainer(cfg, tmp_path / "nopt", log=quiet)
    trainer.run()
    assert trainer.agent.translator_steps_done == 0 and trainer.agent.pt is None
    assert not (tmp_path / "nopt" / "transfer.csv").exists()
    # plotted as its own group, apart from MCAT's
    from mcat.plot import plot_runs

    counts = plot_runs([tmp_path / "nopt"], tmp_path / "curves.png")
    assert set(counts) == {"mcat w/o PT test-sparse-reach delay 1"}


@pytest.mark.slow
def test_mcat_resumes_with_its_transfer_state(easy_hard_run, tmp_path):
    """Continued from the mid-episode checkpoint at 5,950, with policy transfer active, the run
    writes exactly the logs the uninterrupted run wrote."""
    run = tmp_path / "run"
    shutil.copytree(easy_hard_run, run)
    for name in ("step-000008000.pt", "step-000008000.json"):
        (run / "checkpoints" / name).unlink()
    (run / "summary.json").unlink()
    trainer = Trainer.resume(run, log=quiet)
    assert trainer.env_steps == 5950 and trainer.agent.pt is not None
    trainer.run()
    for name in ("metrics.csv", "episodes.csv", "transfer.csv", "transfer_summary.csv"):
        assert (run / name).read_bytes() == (easy_hard_run / name).read_bytes(), name


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--algo", "mcat", "--no-pt", "--pt-window", "2"], "--no-pt contradicts --pt-window"),
        (["--algo", "ctd3", "--no-sil"], "--no-sil: only for --algo mcat"),
        (["--algo", "mcat", "--train-tasks", "1.0"], "needs at least two training tasks"),
        (["--algo", "mcat", "--pt-window", "0"], "--pt-window must be >= 1"),
    ],
)
def test_contradictory_or_impossible_mcat_settings_are_one_line_errors(
    tmp_path, capsys, argv, message
):
    out = tmp_path / "bad"
    assert main(["train", "point-gain", "--steps", "100", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_single_task_mcat_without_pt_is_allowed():
    cfg = run_config_from_dict(
        {
            "family": "point-gain",
            "algo": "mcat",
            "train_tasks": [1.0],
            "agent": {"policy_transfer": False},
        }
    )
    cfg.validate()
    with pytest.raises(MCATError, match="two training tasks"):
        run_config_from_dict(
            {"family": "point-gain", "algo": "mcat", "train_tasks": [1.0]}
        ).validate()


def test_mcat_on_halfcheetah_cli(tmp_path, capsys):
    """The real environments: two HalfCheetah armatures, short episodes, the whole MCAT loop
    (SIL, online H, policy transfer) through the CLI, then `mcat eval` of the run."""
    out = tmp_path / "hc"
    argv = [
        "train",
        "halfcheetah-armature",
        "--algo",
        "mcat",
        "--steps",
        "1000",
        "--train-tasks",
        "0.1",
        "0.5",
        "--test-tasks",
        "0.3",
        "--max-episode-steps",
        "100",
        "--learning-starts",
        "400",
        "--eval-every",
        "800",
        "--reward-delay",
        "20",
        "--threads",
        "1",
        "--out",
        str(out),
        "--set",
        "agent.batch_size=32",
        "--set",
        "agent.hidden=[64,64]",
        "--set",
        "agent.model_hidden=64",
        "--set",
        "agent.encoder_hidden=[64,64]",
        "--set",
        "agent.model_warmup_steps=50",
        "--set",
        "agent.translator_warmup_steps=50",
        "--pt-window",
        "1",
        "--pt-stale-after",
        "4",
        "--checkpoint-every",
        "350",
    ]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert (
        config["algo"] == "mcat"
        and config["agent"]["pt_window"] == 1
        and config["agent"]["sil"] is True
    )
    transfer, episodes = _rows(out / "transfer.csv"), _rows(out / "episodes.csv")
    assert len(transfer) == len(episodes) == 10  # 1000 steps / 100 per episode
    assert {r["policy"] for r in transfer} >= {"random", "own"}
    # with a one-episode window, the task the learned policy does worse on tries the other's policy
    assert any(r["policy"] == "transfer" for r in transfer)
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    assert "mcat on halfcheetah-armature" in capsys.readouterr().out
    # killed at 750 in a new process and resumed in another from the checkpoint of 700, in the
    # middle of an episode of the transferred policy: the same logs as the run left alone
    assert [r["policy"] for r in transfer if r["step"] == "800"] == ["own", "transfer"]
    killed = tmp_path / "killed"
    mcat([str(killed) if a == str(out) else a for a in argv] + ["--quiet"], crash="step:750")
    mcat(["train", "--resume", str(killed), "--quiet"])
    for name in ("metrics.csv", "episodes.csv", "transfer.csv", "transfer_summary.csv"):
        assert (killed / name).read_bytes() == (out / name).read_bytes(), name
