"""Runs that survive: a training process killed anywhere (mid-episode, mid-checkpoint, between a
checkpoint and its sidecar, at an arbitrary moment) and resumed writes the same metrics.csv and
episodes.csv as the same run left alone; the same seed gives the same metrics."""

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mcat.cli import main
from mcat.config import run_config_from_dict
from mcat.errors import MCATError, RunStopped
from mcat.runs import (
    LoopCheckpoint,
    find_checkpoint,
    from_saved,
    list_checkpoints,
    stop_on_signals,
    stop_requested,
    to_saveable,
)
from mcat.tasks import get_family
from mcat.tasks.wrappers import env_state, set_env_state
from mcat.train import Trainer
from toy_runs import (  # noqa: F401 (keep_torch_threads: an autouse fixture)
    TOY_AGENT,
    keep_torch_threads,
    mcat,
    quiet,
    start_mcat,
    toy_config,
)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SMALL = [
    "--batch-size",
    "32",
    "--threads",
    "1",
    "--set",
    "agent.model_warmup_steps=20",
    "--set",
    "agent.model_steps=5",
    "--set",
    "agent.model_every=50",
    "--set",
    "agent.hidden=[64,64]",
    # C and F narrower than the paper's: what is checked is the resumption, at a third of the time
    "--set",
    "agent.model_hidden=64",
    "--set",
    "agent.encoder_hidden=[64,64]",
    "--quiet",
]
# 5 point-gain tasks in lockstep, 50-step episodes: an episode ends every 250 env steps, so
# checkpoints at 300, 600, ... are all mid-episode
TOY = [
    "point-gain",
    "--steps",
    "1200",
    "--learning-starts",
    "200",
    "--eval-every",
    "250",
    "--checkpoint-every",
    "300",
    *SMALL,
]
# real MuJoCo: 3 tasks, 2 environments at a time, next task drawn at random, delayed reward
CHEETAH = [
    "halfcheetah-armature",
    "--steps",
    "700",
    "--seed",
    "3",
    "--reward-delay",
    "30",
    "--train-tasks",
    "0.1",
    "0.5",
    "0.3",
    "--test-tasks",
    "0.2",
    "--max-episode-steps",
    "100",
    "--learning-starts",
    "200",
    "--eval-every",
    "300",
    "--checkpoint-every",
    "250",
    "--envs-per-round",
    "2",
    "--schedule",
    "sample",
    *SMALL,
]


def small_config(**changes):
    """toy_config() with SMALL's narrower C and F, for the runs made in this process."""
    agent = {**TOY_AGENT, "model_hidden": 64, "encoder_hidden": [64, 64]}
    return toy_config(agent=agent, **changes)


def logs(run):
    return (run / "metrics.csv").read_bytes(), (run / "episodes.csv").read_bytes()


def complete(run):
    return [step for step, path in list_checkpoints(run) if path.with_suffix(".json").exists()]


@pytest.fixture(scope="module")
def toy_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "toy"
    mcat(["train", *TOY, "--out", str(out)])
    return out


def test_killed_anywhere_and_resumed_equals_the_run_left_alone(toy_reference, tmp_path):
    run = tmp_path / "killed"
    resume = ["train", "--resume", str(run)]
    # 1. SIGKILL mid-episode, mid-iteration (environments stepped, no gradient step yet)
    mcat(["train", *TOY, "--out", str(run)], crash="step:520")
    assert complete(run) == [300]
    # 2. SIGKILL 100 kB into writing the checkpoint of step 600: a temporary file is left
    mcat(resume, crash="checkpoint:600:100000")
    assert complete(run) == [300] and list((run / "checkpoints").glob("*.tmp"))
    assert find_checkpoint(run).step == 300
    # 3. SIGKILL after the checkpoint of step 900 is renamed into place, before its sidecar
    mcat(resume, crash="sidecar:900")
    assert [s for s, _ in list_checkpoints(run)] == [900, 600, 300] and complete(run) == [600, 300]
    assert find_checkpoint(run).step == 600
    # 4. SIGKILL from outside at an arbitrary moment after resuming
    proc = start_mcat(resume)
    time.sleep(0.5 + random.random())  # start-up takes well under 0.5 s; the run ~1.5 s
    proc.kill()  # SIGKILL
    proc.join()
    # 5. resume to the end
    result = mcat(resume)
    assert "run written to" in result.stdout
    assert logs(run) == logs(toy_reference)
    # the last two are kept
    assert len(complete(run)) == 2 and not list((run / "checkpoints").glob("*.tmp"))
    summary, reference = (
        json.loads((d / "summary.json").read_text()) for d in (run, toy_reference)
    )
    assert summary["per_task"] == reference["per_task"]


def test_sigterm_stops_with_a_checkpoint_of_that_step_and_the_same_command_continues(
    toy_reference, tmp_path
):
    """A scheduler's SIGTERM (here from the crash hook, mid-iteration at env step 520): the run
    ends that iteration, writes a checkpoint of step 520, exits 143 with a one-line note; the
    same command continues it to the logs of the run left alone."""
    run = tmp_path / "stopped"
    argv = ["train", *TOY, "--out", str(run)]
    result = mcat(argv, crash="term:520", check=False)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-2000:]
    assert "mcat: SIGTERM: stopping after this iteration, with a checkpoint" in result.stderr
    note = "mcat: stopped by SIGTERM at env step 520 with a checkpoint of that step; the same"
    assert result.stderr.strip().splitlines()[-1].startswith(note), result.stderr[-2000:]
    assert complete(run) == [520, 300]
    assert mcat(argv).returncode == 0
    assert logs(run) == logs(toy_reference)


def test_a_second_signal_is_not_caught():
    """Ctrl-C once asks the work to stop (every enclosing context hears it: `mcat transfer`
    around its source run); twice interrupts at once; the handlers are put back. Python's own
    Ctrl-C handler is put in place first: a process started in the background by a shell
    without job control (`cmd &`, nohup) inherits SIGINT ignored, and the second signal would
    meet that, rightly ignored. The signals are raised in this thread (signal.raise_signal), so
    the handler has run when the call returns."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _second_signal_checks()
    finally:
        signal.signal(signal.SIGINT, inherited)


def _second_signal_checks():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stop_on_signals() as outer:
        with stop_on_signals() as inner:
            assert not inner and stop_requested() is None
            signal.raise_signal(signal.SIGINT)
            assert inner.signum == outer.signum == signal.SIGINT == stop_requested()
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == before[1]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    with stop_on_signals(), stop_on_signals():  # without a signal each context restores its own
        pass
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_resumable_loop_stops_on_request_with_its_state_and_continues(tmp_path):
    """LoopCheckpoint (`mcat transfer`'s translator training): SIGTERM at step 7 saves the
    loop's state at 7 and raises RunStopped; the loop started again ends as the one left alone."""

    def loop(path, stop_at=None):
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 1)
        opt = torch.optim.Adam(net.parameters(), lr=0.1)
        gen = np.random.default_rng(0)
        saved = LoopCheckpoint(path, {"k": 1}, "the toy loop", 30, every=20, log=lambda m: None)
        start = saved.resume({"net": net, "opt": opt, "gen": gen})
        with stop_on_signals():
            for step in range(start + 1, 31):
                x = torch.as_tensor(gen.standard_normal((8, 3)), dtype=torch.float32)
                loss = net(x).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step == stop_at:
                    signal.raise_signal(signal.SIGTERM)
                saved.done(step)
        return net.weight.detach().clone()

    alone, path = loop(None), tmp_path / "loop.pt"
    with pytest.raises(RunStopped, match="stopped by SIGTERM at step 7 of the toy loop") as err:
        loop(path, stop_at=7)
    assert err.value.exit_code == 128 + signal.SIGTERM
    assert torch.equal(loop(path), alone)


def test_halfcheetah_killed_mid_episode_resumes_identically(tmp_path):
    reference, run = tmp_path / "ref", tmp_path / "killed"
    mcat(["train", *CHEETAH, "--out", str(reference)])
    # 2 envs, 100-step episodes: mid-episode
    mcat(["train", *CHEETAH, "--out", str(run)], crash="step:430")
    assert complete(run) == [250]
    mcat(["train", "--resume", str(run)])
    assert logs(run) == logs(reference)


@pytest.mark.parametrize(
    "family, task",
    [("halfcheetah-armature", 0.3), ("hopper-size", 0.04), ("ant-cripple", 1), ("point-gain", 0.5)],
)
def test_environment_state_continues_bit_for_bit(family, task):
    """A fresh env given a saved mid-episode state (through a tensors-only file) steps exactly
    like the original, across its time limit and the resets after it (Ant's reward reads body
    positions MuJoCo derived in the previous step; hopper-size recompiles its model)."""
    fam = get_family(family)
    original = fam.make_env(task, reward_delay=7, seed=5, max_episode_steps=60)
    rng = np.random.default_rng(0)
    for _ in range(23):
        original.step(rng.uniform(-1, 1, original.action_space.shape))
    buffer = io.BytesIO()
    torch.save(to_saveable(env_state(original)), buffer)
    buffer.seek(0)
    copy = fam.make_env(task, reward_delay=7, seed=99, max_episode_steps=60)
    set_env_state(copy, from_saved(torch.load(buffer, weights_only=True)))
    for action in rng.uniform(-1, 1, (150, original.action_space.shape[0])):
        a, b = original.step(action), copy.step(action)
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
        if a[2] or a[3]:
            assert np.array_equal(original.reset()[0], copy.reset()[0])


@pytest.fixture(scope="module")
def toy_in_process(tmp_path_factory):
    """small_config() run to its end in this process."""
    out = tmp_path_factory.mktemp("inproc") / "toy"
    Trainer(small_config(), out, log=quiet).run()
    return out


def test_same_seed_same_metrics_in_process(toy_in_process, tmp_path):
    a, b, c = toy_in_process, tmp_path / "b", tmp_path / "c"
    Trainer(small_config(), b, log=quiet).run()
    Trainer(small_config(seed=1, steps=250), c, log=quiet).run()  # to its first evaluation
    assert logs(a) == logs(b)
    first = [f.read_text().splitlines()[1:10] for f in (a / "metrics.csv", c / "metrics.csv")]
    assert first[0][0].startswith("250,") and first[0] != first[1]  # another seed, another run


# in one process on MuJoCo (two processes, killed and resumed: the mid-episode test above)
@pytest.mark.slow
def test_same_seed_same_metrics_halfcheetah(tmp_path):
    cfg = dict(
        family="halfcheetah-armature",
        steps=400,
        reward_delay=20,
        train_tasks=[0.1, 0.5],
        test_tasks=[0.3],
        max_episode_steps=100,
        learning_starts=150,
        eval_every=200,
        threads=1,
        agent={
            **TOY_AGENT,
            "model_warmup_steps": 10,
            "model_hidden": 64,
            "encoder_hidden": [64, 64],
        },
    )
    for name in "ab":
        Trainer(run_config_from_dict(cfg), tmp_path / name, log=quiet).run()
    assert logs(tmp_path / "a") == logs(tmp_path / "b")


def test_start_or_resume_continues_an_unfinished_run(toy_in_process, tmp_path):
    reference, run = toy_in_process, tmp_path / "run"
    assert Trainer(small_config(), run, log=quiet).run(stop_at=400) is None
    # another thread count is no other run
    trainer = Trainer.start_or_resume(small_config(threads=2), run, log=quiet)
    assert trainer.checkpoint_step == 400 and trainer.env_steps == 400 and trainer.cfg.threads == 1
    trainer.run()
    assert logs(run) == logs(reference)
    # a finished run resumes to its end at once; another config starts afresh
    assert (
        Trainer.start_or_resume(small_config(), run, log=quiet).run()["per_task"]
        == json.loads((reference / "summary.json").read_text())["per_task"]
    )
    fresh = Trainer.start_or_resume(small_config(seed=5), run, log=quiet)
    assert fresh.env_steps == 0 and not list_checkpoints(run)
    fresh.close()


def test_a_run_carried_in_git_goes_on_identically_from_a_clone(toy_in_process, tmp_path):
    """scripts/stage_runs.sh --checkpoints: an unfinished run travels with its newest complete
    checkpoint (a newer corrupt one is passed over), a finished run's checkpoints leave the index,
    and the unfinished run resumed in a clone writes the logs of the run left alone."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    repo = tmp_path / "repo"
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("runs/\n*.pt\n")  # as in this repository
    stopped, done = repo / "runs" / "stopped", repo / "runs" / "done"
    assert Trainer(small_config(), stopped, log=quiet).run(stop_at=700) is None
    assert complete(stopped) == [700, 600]
    with open(stopped / "checkpoints" / "step-000000700.pt", "ab") as f:
        f.write(b"x")  # changed after its sidecar was written: not complete any more
    shutil.copytree(toy_in_process, done)
    stage = ["bash", str(SCRIPTS / "stage_runs.sh"), "--checkpoints", "runs"]
    subprocess.run(
        [*git, "add", "-f", *map(str, (done / "checkpoints").iterdir())], cwd=repo, check=True
    )
    env = {**os.environ, "MCAT_PYTHON": sys.executable}
    subprocess.run(stage, cwd=repo, check=True, capture_output=True, env=env)
    subprocess.run([*git, "commit", "-q", "-m", "runs"], cwd=repo, check=True)
    tracked = subprocess.run(
        ["git", "ls-files", "*/checkpoints/*"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == [f"runs/stopped/checkpoints/step-000000600.{x}" for x in ("json", "pt")]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    Trainer.resume(clone / "runs" / "stopped", log=quiet).run()
    assert logs(clone / "runs" / "stopped") == logs(toy_in_process)


def test_checkpoint_without_replay_is_smaller_and_resumable(tmp_path, capsys):
    full, lean = tmp_path / "full", tmp_path / "lean"
    argv = [
        "train",
        "point-gain",
        "--steps",
        "600",
        "--learning-starts",
        "200",
        "--eval-every",
        "300",
        "--checkpoint-every",
        "300",
        "--replay-capacity",
        "2000",
        *SMALL[:-1],
    ]
    assert main([*argv, "--out", str(full)]) == 0
    assert "MB (replay included)" in capsys.readouterr().out
    Trainer(small_config(checkpoint_replay=False), lean, log=quiet).run(stop_at=400)
    assert json.loads((lean / "checkpoints" / "step-000000400.json").read_text())["replay"] is False
    trainer = Trainer.resume(lean, log=print)
    assert len(trainer.replay) == 0 and trainer.refill_until > 400  # refills before learning again
    trainer.run()
    assert "MB (replay left out)" in capsys.readouterr().out
    sizes = [
        (d / "checkpoints" / name).stat().st_size
        for d, name in ((full, "step-000000600.pt"), (lean, "step-000001000.pt"))
    ]
    assert sizes[1] < sizes[0]


def test_replay_capacity_is_honoured(tmp_path):
    trainer = Trainer(small_config(steps=1000, replay_capacity=120), tmp_path / "cap", log=quiet)
    trainer.run()
    assert trainer.replay.capacity == 120 and trainer.replay.size.tolist() == [120] * 5
    assert trainer.replay.obs.shape[1] == 120


def test_a_finished_run_trained_on_to_a_larger_budget_is_the_longer_run(
    toy_in_process, tmp_path, capsys
):
    """mcat train --resume DIR --steps N: a run that ended on its evaluation and checkpoint
    schedules, given a larger budget, goes on to the logs and summary of the run started with
    it (toy_in_process: 1,000 steps; checkpoints every 300 there, which changes nothing)."""
    run = tmp_path / "short"
    Trainer(small_config(steps=500, checkpoint_every=250), run, log=quiet).run()
    before = logs(run)
    assert main(["train", "--resume", str(run), "--steps", "400"]) == 2  # only up
    assert "--steps 400 with --resume can only raise the run's budget (500" in (
        capsys.readouterr().err
    )
    # the same command with another budget is refused, with the way on
    with pytest.raises(MCATError, match=rf"mcat train --resume {run} --steps 1000$"):
        Trainer.open(small_config(steps=1000, checkpoint_every=250), run, log=quiet)
    assert logs(run) == before and json.loads((run / "summary.json").read_text())["steps"] == 500
    assert main(["train", "--resume", str(run), "--steps", "1000", "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["steps"] == 1000
    assert logs(run) == logs(toy_in_process)
    summary = json.loads((run / "summary.json").read_text())
    reference = json.loads((toy_in_process / "summary.json").read_text())
    assert summary["steps"] == 1000 and summary["per_task"] == reference["per_task"]


def test_resume_refuses_other_flags(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--seed", "1"]) == 2
    assert "drop --seed" in capsys.readouterr().err
    nowhere = tmp_path / "nowhere"
    assert main(["train", "--resume", str(nowhere), "--steps", "10"]) == 2
    assert "is not a run directory" in capsys.readouterr().err and not nowhere.exists()
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


# ------------------------------------------------------------------ no dead ends
LOUD_TOY = [a for a in TOY if a != "--quiet"]  # the notices are the point here


def test_no_dead_ends_a_stopped_run_continues_whichever_way_it_is_restarted(
    toy_reference, tmp_path
):
    run = tmp_path / "early"
    argv = ["train", *LOUD_TOY, "--out", str(run)]
    # killed before its first checkpoint (300): --resume starts it again from step 0 ...
    mcat(argv, crash="step:250")
    assert (run / "config.json").is_file() and not list_checkpoints(run)
    restarted = mcat(["train", "--resume", str(run)], crash="step:520")  # ... killed again
    assert "has no checkpoint yet: starting the run again from step 0" in restarted.stdout
    assert complete(run) == [300]
    # the same command again continues from the checkpoint, to the uninterrupted run's result
    result = mcat(argv)
    assert "already holds this run: continuing it" in result.stdout
    assert logs(run) == logs(toy_reference)
    finished = mcat(argv)  # once more: a finished run shows its final evaluation, changes nothing
    assert "already holds this run, finished" in finished.stdout
    assert logs(run) == logs(toy_reference)
    # another run on the same --out is refused, untouched, and the advice works
    other = ["train", *TOY, "--steps", "300", "--out", str(run)]  # a short other run
    refused = mcat(other, check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "already holds another run (steps is 1200 there, 300 here); pass --overwrite" in (
        refused.stderr
    )
    assert logs(run) == logs(toy_reference)
    mcat([*other, "--overwrite"])
    assert json.loads((run / "config.json").read_text())["steps"] == 300
    assert logs(run) != logs(toy_reference) and (run / "summary.json").is_file()


def test_an_unfinished_run_without_its_checkpoints_is_refused_untouched(
    toy_reference, tmp_path, capsys
):
    # stopped at 800 of 1,200 steps (checkpoints every 300) and copied without its checkpoints:
    # starting it again would replace 800 steps of logs, so neither --resume, nor a larger
    # budget, nor the same command does; a run killed before its first checkpoint still starts
    # again (test above)
    run = tmp_path / "copied"
    run.mkdir()
    shutil.copy(toy_reference / "config.json", run / "config.json")
    for name in ("metrics.csv", "episodes.csv"):
        lines = (toy_reference / name).read_text().splitlines(keepends=True)
        (run / name).write_text("".join(x for x in lines if _step(x) <= 800))  # + header
    before, config = logs(run), (run / "config.json").read_bytes()
    for argv in (
        ["train", "--resume", str(run)],
        ["train", "--resume", str(run), "--steps", "1500"],
        ["train", *LOUD_TOY, "--out", str(run)],
        ["eval", str(run)],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "holds logs up to env step 750 but no checkpoint" in err
        assert logs(run) == before and (run / "config.json").read_bytes() == config
        assert not list_checkpoints(run) and not (run / "summary.json").exists()
    advice = err.split(": ")[-1].split()  # mcat train --config C --out NEW_DIR
    assert advice[:4] == ["mcat", "train", "--config", str(run / "config.json")]


def _step(line: str) -> int:
    head = line.split(",", 1)[0]
    return int(head) if head.isdigit() else 0


@pytest.mark.parametrize("summary_kept", [True, False])
def test_a_finished_run_without_its_checkpoints_is_refused_untouched_with_the_way_on(
    toy_reference, tmp_path, capsys, summary_kept
):
    # the repository's result runs: config and logs committed, checkpoints not
    run = tmp_path / "kept"
    run.mkdir()
    names = ["config.json", "metrics.csv", "episodes.csv"] + ["summary.json"] * summary_kept
    for name in names:
        shutil.copy(toy_reference / name, run / name)
    before = logs(run)
    for argv in (["train", "--resume", str(run)], ["train", *LOUD_TOY, "--out", str(run)]):
        assert main(argv) == 2  # neither continued nor started again over its logs
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and "is a finished run whose checkpoints were not kept" in err
        assert "showing its final evaluation" not in out  # there is none to show
        assert logs(run) == before and not list_checkpoints(run)
    assert main(["eval", str(run)]) == 2
    advice = capsys.readouterr().err.split(": ")[-1].split()  # mcat train --config C --out NEW_DIR
    assert advice[:4] == ["mcat", "train", "--config", str(run / "config.json")]
    again = tmp_path / "again"
    assert main([*advice[1:5], str(again), "--quiet"]) == 0  # followed: trained again elsewhere
    assert (again / "summary.json").is_file() and logs(run) == before
    assert main(["eval", str(again)]) == 0
