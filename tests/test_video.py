"""`mcat video`: a saved run's policy rendered offscreen to MP4 and GIF, the scored evaluation
episodes (the return printed is the evaluation's), the transferred policy of an MCAT run beside
the learned one, and one-line errors for what cannot be filmed."""

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from mcat.cli import main
from mcat.config import run_config_from_dict
from mcat.evaluation import evaluate_agent
from mcat.train import Trainer, load_run_agent
from toy_runs import TOY_AGENT, keep_torch_threads, quiet, toy_config  # noqa: F401 (fixture)

EPISODE = 12  # steps per episode: a video of EPISODE + 1 frames (the reset's included)


@pytest.fixture(scope="module")
def mcat_run(tmp_path_factory):
    """A short MCAT run on two HalfCheetah tasks, its translator trained."""
    agent = {**TOY_AGENT, "translator_warmup_steps": 10, "translator_steps": 2}
    cfg = run_config_from_dict(
        {
            "family": "halfcheetah-armature",
            "algo": "mcat",
            "steps": 240,
            "train_tasks": [0.1, 0.5],
            "test_tasks": [0.3],
            "max_episode_steps": EPISODE,
            "learning_starts": 96,
            "eval_every": 240,
            "threads": 1,
            "agent": agent,
        }
    )
    out = tmp_path_factory.mktemp("video") / "mcat"
    Trainer(cfg, out, log=quiet).run()
    return out


def _mp4_frames(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]


def test_video_of_the_learned_and_the_transferred_policy(mcat_run, tmp_path, capsys):
    out = tmp_path / "v.mp4"
    argv = ["video", str(mcat_run), "--task", "0.5", "--transfer-from", "0.1"]
    assert main([*argv, "--width", "96", "--height", "64", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    frames = _mp4_frames(out)
    assert len(frames) == EPISODE + 1 and frames[0].shape == (64, 2 * 96, 3)  # side by side
    # the body moves: frames change over the episode, on both halves
    for half in (slice(0, 96), slice(96, 192)):
        assert np.abs(frames[-1][:, half].astype(int) - frames[0][:, half]).mean() > 1
    # the learned policy's return is the evaluation's on the same episode
    cfg, agent, _ = load_run_agent(mcat_run)
    cfg.eval_episodes = 1
    expected = evaluate_agent(agent, cfg, [0.5])[0.5]
    assert f"episode 0: return {expected:.2f} (learned, left)" in printed, printed


def test_gif_with_two_episodes(mcat_run, tmp_path):
    out = tmp_path / "v.gif"
    assert main(["video", str(mcat_run), "--task", "0.3", "--episodes", "2", "--width", "64",
                 "--height", "48", "-o", str(out)]) == 0  # fmt: skip
    gif = Image.open(out)
    assert gif.n_frames == 2 * (EPISODE + 1) and gif.size == (64, 48)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--transfer-from", "0.3"], "--transfer-from 0.3 is not a training task of this run"),
        (["--transfer-from", "0.5"], "is the --task itself"),
        (["--transfer-from", "x"], "--transfer-from: task value for halfcheetah-armature must be"),
        (["-o", "v.avi"], "unsupported file type '.avi'"),
    ],
)
def test_what_cannot_be_filmed_is_one_line(mcat_run, tmp_path, capsys, extra, message):
    argv = ["video", str(mcat_run), "--task", "0.5", "-o", str(tmp_path / "v.mp4"), *extra]
    argv = [a if a != "v.avi" else str(tmp_path / "v.avi") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_a_run_without_translator_or_renderer_is_one_line(tmp_path, capsys):
    toy = tmp_path / "toy"
    Trainer(toy_config(steps=100, learning_starts=50, eval_every=100), toy, log=quiet).run()
    argv = ["video", str(toy), "--task", "1", "-o", str(tmp_path / "v.gif")]
    assert main([*argv, "--transfer-from", "0.5"]) == 2
    assert "needs a run with an action translator (--algo mcat); this run is ctd3" in (
        capsys.readouterr().err
    )
    assert main(argv) == 2
    assert "family point-gain cannot render" in capsys.readouterr().err
    assert not (tmp_path / "v.gif").exists()


def test_video_of_a_transfer_result(tmp_path, capsys):
    """A tiny `mcat transfer` on HalfCheetah, filmed: the source policy and the transferred
    one on the target, with the returns its summary scored."""
    import json

    out, cache = tmp_path / "t", tmp_path / "cache"
    small = ["--source-steps", "40", "--dataset-size", "40", "--model-steps", "2"]
    small += ["--translator-steps", "2", "--eval-episodes", "2", "--max-episode-steps", "4"]
    argv = ["transfer", "halfcheetah-armature", "--source", "0.1", "--target", "0.5", *small]
    assert main([*argv, "--out", str(out), "--cache", str(cache), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    video = tmp_path / "t.gif"
    assert main(["video", str(out), "--episodes", "2", "--width", "64", "--height", "48",
                 "-o", str(video)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert Image.open(video).n_frames == 2 * (4 + 1) and Image.open(video).size == (128, 48)
    left = [float(x.split()[0]) for x in printed.split("return ")[1:]]
    right = [float(x.split("; ")[1].split()[0]) for x in printed.splitlines() if "; " in x]
    assert np.mean(left) == pytest.approx(summary["source_on_target"]["mean"], abs=0.01)
    assert np.mean(right) == pytest.approx(summary["transferred_on_target"]["mean"], abs=0.01)
    # an older result names no source run: it is found in its --cache, or a one-line error
    summary.pop("source_run")
    (out / "summary.json").write_text(json.dumps(summary))
    found = ["video", str(out), "--cache", str(cache), "--episodes", "1"]
    assert main([*found, "-o", str(tmp_path / "u.gif")]) == 0
    assert main(["video", str(out), "--cache", str(tmp_path / "nope"), "-o", str(video)]) == 2
    assert "the source policy of" in capsys.readouterr().err
    assert main(["video", str(out), "--task", "0.1", "-o", str(video)]) == 2
    assert "it is filmed on its target" in capsys.readouterr().err
