"""Checkpoints are data, never code; numerical faults stop a run without spoiling its last
checkpoint; a full disk or an unwritable directory is a clear error; bad input is one line."""

import builtins
import errno
import hashlib
import io
import json
import pickle
import shutil
import time

import numpy as np
import pytest
import torch

from mcat import runs
from mcat.cli import main
from mcat.errors import MCATError
from mcat.runs import find_checkpoint, list_checkpoints, load_checkpoint_file
from mcat.tasks.toy import PointGainEnv
from mcat.train import Trainer
from toy_runs import keep_torch_threads, quiet, toy_config  # noqa: F401 (autouse fixture)


def _config(**changes):
    return toy_config(**{"steps": 600, "eval_every": 200, "checkpoint_every": 200, **changes})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "done"
    Trainer(_config(), out, log=quiet).run()
    return out


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "stopped"
    Trainer(_config(), out, log=quiet).run(stop_at=400)
    return out


@pytest.fixture
def run(stopped, tmp_path):
    """A fresh copy of the run stopped at step 400 (checkpoints at 200 and 400) of the same
    config as ``finished`` (trained once per module; a run directory holds no absolute path)."""
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    return out


class Payload:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def _plant(path, data: bytes):
    """Put ``data`` at a checkpoint path with a sidecar that vouches for it (a crafted pair)."""
    path.write_bytes(data)
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    meta.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    sidecar.write_text(json.dumps(meta))


def _torch_zip(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["pickle", "torch-zip"])
def test_malicious_checkpoint_is_refused_and_runs_nothing(run, tmp_path, capsys, kind):
    marker = tmp_path / "pwned"
    evil = Payload(marker)
    data = (
        pickle.dumps({"agent": evil})
        if kind == "pickle"
        else _torch_zip({"agent": evil, "meta": {}})
    )
    _plant(run / "checkpoints" / "step-000000400.pt", data)
    for argv in (["train", "--resume", str(run)], ["eval", str(run)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "refusing to load" in err and "step-000000400.pt" in err and err.count("\n") == 1, (
            err
        )
    with pytest.raises(MCATError, match="not a tensors-only checkpoint"):
        load_checkpoint_file(run / "checkpoints" / "step-000000400.pt")
    assert not marker.exists()


def test_malicious_legacy_checkpoint_is_refused(tmp_path, finished):
    run = tmp_path / "legacy"
    shutil.copytree(finished, run)
    for _, path in list_checkpoints(run):
        path.with_suffix(".json").unlink()
        path.unlink()
    marker = tmp_path / "pwned"
    (run / "checkpoints" / "latest.pt").write_bytes(pickle.dumps(Payload(marker)))
    assert main(["eval", str(run)]) == 2
    assert not marker.exists()


def test_unvouched_file_is_never_loaded(run, tmp_path):
    """A file without a matching sidecar is passed over before anything is unpickled."""
    marker = tmp_path / "pwned"
    (run / "checkpoints" / "step-000000400.pt").write_bytes(pickle.dumps(Payload(marker)))
    assert find_checkpoint(run).step == 200
    assert not marker.exists()


def test_truncated_checkpoints(run, finished, capsys):
    newest = run / "checkpoints" / "step-000000400.pt"
    newest.write_bytes(newest.read_bytes()[:5000])
    trainer = Trainer.resume(run, log=print)  # falls back to the older complete checkpoint
    assert trainer.env_steps == 200
    assert (
        "passed over step-000000400.pt: truncated or overwritten (5000 of"
        in capsys.readouterr().out
    )
    trainer.run()
    assert (run / "metrics.csv").read_bytes() == (finished / "metrics.csv").read_bytes()
    for _, path in list_checkpoints(run):
        path.write_bytes(path.read_bytes()[:100])
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "no complete checkpoint in" in err and "truncated" in err and err.count("\n") == 1
    advice = err.split("to start the run again from step 0: ")[1].split()
    assert advice[:2] == ["mcat", "train"]
    assert main([*advice[1:], "--quiet"]) == 0  # the advice, followed, runs it from step 0
    assert (run / "metrics.csv").read_bytes() == (finished / "metrics.csv").read_bytes()


def test_checkpoint_of_another_algo_family_or_config(run, tmp_path, capsys):
    other = tmp_path / "td3"
    Trainer(
        _config(algo="td3", agent={"batch_size": 32, "hidden": [64, 64]}), other, log=quiet
    ).run(stop_at=200)
    shutil.rmtree(run / "checkpoints")
    shutil.copytree(other / "checkpoints", run / "checkpoints")
    for argv in (["train", "--resume", str(run)], ["eval", str(run)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert (
            "is from a td3 run on point-gain, not this run's ctd3 on point-gain" in err
            and err.count("\n") == 1
        )
    config = json.loads((other / "config.json").read_text())
    config["agent"]["batch_size"] = 64
    (other / "config.json").write_text(json.dumps(config))
    assert main(["train", "--resume", str(other)]) == 2
    assert (
        "written with another config: agent.batch_size is 32 there and 64 in config.json"
        in capsys.readouterr().err
    )


def test_nan_in_a_loss_stops_the_run_with_a_resumable_checkpoint(
    run, finished, monkeypatch, capsys
):
    monkeypatch.setenv("MCAT_TEST_NAN_LOSS", "450")
    with pytest.raises(MCATError) as info:
        Trainer.resume(run, log=quiet).run()
    message = str(info.value)
    assert (
        message.startswith("non-finite loss rl/critic_loss = nan") and "at env step 450" in message
    )
    assert "step-000000400.pt is kept" in message
    assert [s for s, _ in list_checkpoints(run)] == [400, 200]  # nothing written after the fault
    monkeypatch.delenv("MCAT_TEST_NAN_LOSS")
    Trainer.resume(run, log=quiet).run()
    assert (run / "metrics.csv").read_bytes() == (finished / "metrics.csv").read_bytes()


def test_nan_parameter_is_caught_before_a_checkpoint(tmp_path):
    trainer = Trainer(_config(), tmp_path / "p", log=quiet)
    trainer.run(stop_at=200)
    trainer.agent.actor.net[0].bias.data[3] = float("inf")
    while trainer.env_steps < 250:
        trainer.collector.step(trainer.replay, lambda obs, col: np.zeros((col.n, col.act_dim)))
    with pytest.raises(
        MCATError,
        match=r"non-finite parameter actor\.net\.0\.bias at env step 250; stopped without writing",
    ):
        trainer.checkpoint()
    assert [s for s, _ in list_checkpoints(tmp_path / "p")] == [200]
    with pytest.raises(
        MCATError, match=r"non-finite action from the policy on task 0.5 at env step 255"
    ):
        trainer.collector.step(trainer.replay, trainer.policy)


def test_nan_observation_names_task_and_step(tmp_path, monkeypatch):
    step = PointGainEnv.step

    def broken(self, action):
        obs, *rest = step(self, action)
        self.calls = getattr(self, "calls", 0) + 1
        if self.gain == 1.5 and self.calls == 70:
            obs = obs * np.nan
        return (obs, *rest)

    monkeypatch.setattr(PointGainEnv, "step", broken)
    with pytest.raises(
        MCATError,
        match=r"non-finite observation from task 1.5 at env step 350 \(the environment diverged\)",
    ):
        Trainer(_config(), tmp_path / "o", log=quiet).run()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_failed_checkpoint_write_keeps_the_last_good_one(run, finished, monkeypatch, code):
    real_write = runs._HashingWriter.write

    def failing(self, data):
        if self.bytes > 10_000:
            raise OSError(code, __import__("os").strerror(code))
        return real_write(self, data)

    monkeypatch.setattr(runs._HashingWriter, "write", failing)
    with pytest.raises(MCATError) as info:
        Trainer.resume(run, log=quiet).run()
    assert f"cannot write checkpoint {run / 'checkpoints' / 'step-000000600.pt'}" in str(info.value)
    assert __import__("os").strerror(code) in str(
        info.value
    ) and "step-000000400.pt is kept" in str(info.value)
    assert not list((run / "checkpoints").glob("*.tmp"))
    monkeypatch.undo()
    assert find_checkpoint(run).step == 400
    Trainer.resume(run, log=quiet).run()
    assert (run / "metrics.csv").read_bytes() == (finished / "metrics.csv").read_bytes()


def test_unwritable_output_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["train", "point-gain", "--steps", "100", "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err
    assert "cannot create output directory" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "config, message",
    [
        ({"family": "point-gain", "stepz": 10}, "unknown config key(s) stepz"),
        (
            {"family": "point-gain", "steps": "many"},
            "config key 'steps': expected an integer, got 'many'",
        ),
        (
            {"family": "point-gain", "checkpoint_replay": "no"},
            "config key 'checkpoint_replay': expected bool",
        ),
        ({"family": "point-gain", "steps": -5}, "steps must be >= 1, got -5"),
        ({"family": "point-gain", "reward_delay": 0}, "reward delay must be >= 1 step, got 0"),
    ],
)
def test_bad_config_files(config, message, tmp_path, capsys):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(config))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ one process per run directory
def test_a_run_written_by_another_process_is_refused_untouched(run, held_elsewhere, capsys):
    """A second `mcat train --resume` on a run another process is writing exits 75 naming that
    process, and removes nothing, not even a damaged newest checkpoint it would drop on its
    own; once the holder is gone, the run resumes (from the older checkpoint)."""
    newest = list_checkpoints(run)[-1][1]
    newest.write_bytes(newest.read_bytes()[:100])  # as a process killed mid-write leaves it
    pid, _ = held_elsewhere(run)
    before = {p.name: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    assert main(["train", "--resume", str(run)]) == 75
    err = capsys.readouterr().err.strip()
    assert err == (
        f"mcat: error: {run} is in use by another mcat process (pid {pid}): wait for it to "
        "end, or stop it, or choose another --out"
    )
    assert {p.name: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before
    fresh = run.parent / "fresh"
    held_elsewhere(fresh)
    with pytest.raises(MCATError, match="in use by another mcat process"):
        Trainer(_config(), fresh, log=quiet)
    assert [p.name for p in fresh.iterdir()] == [".lock"]  # no config.json, no checkpoints


def test_a_killed_run_leaves_no_lock(tmp_path):
    """The lock is the kernel's: a run killed with SIGKILL holds nothing afterwards, and while it
    runs a second writer of its directory is refused."""
    from toy_runs import start_mcat

    out = tmp_path / "run"
    argv = ["train", "point-gain", "--steps", "1000000", "--threads", "1", "--out", str(out)]
    child = start_mcat(argv)
    try:
        for _ in range(600):
            if (out / "config.json").is_file():
                break
            time.sleep(0.1)
        with pytest.raises(MCATError, match=f"in use by another mcat process \\(pid {child.pid}"):
            Trainer.resume(out, log=quiet)
    finally:
        child.kill()
        child.join()
    tr = Trainer.resume(out, log=quiet)  # at once: no stale lock to wait for
    tr.close()
