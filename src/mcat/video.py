"""`mcat video`: watch a trained policy. Episodes of a saved run on one task are rendered
offscreen (MuJoCo's EGL or OSMesa, whichever works headless here) to an MP4 (through
imageio-ffmpeg's encoder) or a GIF (Pillow).

The episodes are the run's scored evaluation episodes of that task (the same seeds, and for
algorithms that adapt, after the same adaptation episodes), so the return printed beside a
video is the one `mcat eval` reports for it. With ``transfer_from`` (an MCAT run) the policy
of another training task carried over by the run's action translator,
H(s, pi(s, z_src), z_src, z_tgt), plays the same episodes beside the learned policy.

An output folder of `mcat transfer` (Table 1) is filmed on its target task: the source policy
as it is on the left, the transferred one on the right, on the episodes its summary scored.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcat.errors import MCATError

SUFFIXES = (".mp4", ".gif")
GL_BACKENDS = ("egl", "osmesa")

# renders one frame of a one-sphere model: the probe of a headless OpenGL backend
_PROBE = (
    'import mujoco; m = mujoco.MjModel.from_xml_string(\'<mujoco><worldbody><geom size=".1"/>'
    "</worldbody></mujoco>'); d = mujoco.MjData(m); r = mujoco.Renderer(m, 8, 8); "
    "mujoco.mj_forward(m, d); r.update_scene(d); r.render()"
)


def headless_gl() -> str:
    """Choose the OpenGL backend for offscreen rendering: ``$MUJOCO_GL`` when set, else the
    first of EGL and OSMesa that renders a frame here (each tried in a subprocess, since a
    process cannot switch backends once one has opened a context)."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    for backend in GL_BACKENDS:
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, check=False, timeout=120
        )
        if probe.returncode == 0:
            # read by gymnasium's renderer when it opens its context (so also after `import
            # mujoco`, as in a test process) and by PyOpenGL on import
            os.environ["MUJOCO_GL"] = os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
    raise MCATError(
        "no headless OpenGL for rendering (tried EGL and OSMesa): install libegl1 "
        "or libosmesa6, or set MUJOCO_GL"
    )


@dataclass
class Clip:
    """Rendered episodes: the frames (every step, the reset included) and the return of each."""

    frames: list[np.ndarray]
    returns: list[float]
    fps: float


def _task(family: Any, text: Any, flag: str) -> Any:
    """``text`` (a task or its key) as a task of ``family``, or a one-line error naming the
    flag."""
    try:
        return family.check_task(text)
    except MCATError as exc:
        raise MCATError(f"--{flag}: {exc}") from None


def record(
    run_dir: Path,
    task: Any,
    episodes: int = 1,
    transfer_from: Any = None,
    width: int = 480,
    height: int = 360,
) -> tuple[Clip, Clip | None, Any]:
    """Render ``episodes`` scored episodes of the run in ``run_dir`` on ``task``: the learned
    policy, and with ``transfer_from`` the transferred one (None otherwise). Returns both clips
    and the run's config."""
    import torch

    from mcat.collect import eval_seed
    from mcat.evaluation import scoring_policy
    from mcat.tasks import get_family
    from mcat.train import load_run_agent, load_run_replay, run_tasks

    cfg, agent, state = load_run_agent(run_dir, policy_only=transfer_from is None)
    family = get_family(cfg.family)
    value = _task(family, task, "task")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train_tasks, _ = run_tasks(cfg)
    source = None
    if transfer_from is not None:
        source_task = _task(family, transfer_from, "transfer-from")
        source = _transfer_source(agent, cfg, source_task, value, train_tasks)
    replay = (
        load_run_replay(cfg, state) if getattr(agent, "adaptation_uses_replay", False) else None
    )
    policy, history, delay = scoring_policy(agent, cfg, [value], replay)
    seeds = [eval_seed(cfg.seed, value, e) for e in range(episodes)]
    make = dict(
        reward_delay=delay,
        style=cfg.style,
        max_episode_steps=cfg.max_episode_steps,
        width=width,
        height=height,
    )
    learned = _play(family, value, seeds, policy, history, make)
    transferred = None
    if source is not None:
        src, tgt = source
        mcat_agent: Any = agent  # has act_transferred (checked by _transfer_source)

        def transfer(obs: np.ndarray, _owner: np.ndarray, _ctx: Any) -> np.ndarray:
            n = len(obs)
            return mcat_agent.act_transferred(obs, np.full(n, src), np.full(n, tgt))

        transferred = _play(family, value, seeds, transfer, 0, make)
    return learned, transferred, cfg


def is_transfer_result(folder: Path) -> bool:
    """Whether ``folder`` is an output folder of `mcat transfer` (not a training run)."""
    import json

    config = Path(folder) / "config.json"
    if not config.is_file() or not (Path(folder) / "translator.pt").is_file():
        return False
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"source", "target", "translator"} <= data.keys()


def record_transfer(
    folder: Path,
    task: Any,
    episodes: int,
    cache_dir: Path,
    width: int = 480,
    height: int = 360,
) -> tuple[Clip, Clip, Any]:
    """The source policy (left) and the transferred policy (right) of the `mcat transfer`
    result in ``folder`` on its target task, on the scored evaluation episodes; for a transfer
    to another body (``--target-family``), the source policy on its own body (left)."""
    import json

    from mcat.collect import eval_seed, row_policy
    from mcat.config import dataclass_from_dict
    from mcat.experiments.transfer import TransferConfig, load_transfer_result
    from mcat.tasks import get_family, task_key

    cfg = dataclass_from_dict(TransferConfig, json.loads((folder / "config.json").read_text()))
    cfg.validate()
    if task is not None:
        task = _task(get_family(cfg.target_family_name), task, "task")
    if task is not None and task != cfg.target:
        raise MCATError(
            f"--task {task_key(task)}: this transfer result maps task {task_key(cfg.source)} "
            f"to {task_key(cfg.target)}; "
            "it is filmed on its target (leave out --task)"
        )
    agent, transferred = load_transfer_result(folder, cfg, cache_dir)
    family = get_family(cfg.family)
    seeds = [eval_seed(cfg.seed, cfg.target, e) for e in range(episodes)]
    make = dict(
        reward_delay=1,
        style="paper",
        max_episode_steps=cfg.max_episode_steps,
        width=width,
        height=height,
    )
    history = agent.cfg.history
    source = row_policy(agent.context, agent.act)
    if cfg.joint:  # shown beside the source policy on its own task
        source_seeds = [eval_seed(cfg.seed, cfg.source, e) for e in range(episodes)]
        left = _play(family, cfg.source, source_seeds, source, history, make)
    else:
        left = _play(family, cfg.target, seeds, source, history, make)
    policy = row_policy(transferred.context, transferred.act)
    target_family = get_family(cfg.target_family_name)
    return left, _play(target_family, cfg.target, seeds, policy, history, make), cfg


def _transfer_source(
    agent: Any, cfg: Any, source: Any, target: Any, train_tasks: list
) -> tuple[int, int]:
    """Training-task indices (source, target) for the run's translator, or a one-line error."""
    from mcat.tasks import task_key

    if not callable(getattr(agent, "act_transferred", None)):
        raise MCATError(
            f"--transfer-from needs a run with an action translator (--algo mcat); "
            f"this run is {cfg.algo}"
        )
    if getattr(agent, "features", None) is None:
        raise MCATError(
            "--transfer-from: this run's translator was not trained yet (no task features in "
            "its newest checkpoint); use a later checkpoint or train longer"
        )
    for what, v in (("--transfer-from", source), ("--task", target)):
        if v not in train_tasks:
            raise MCATError(
                f"{what} {task_key(v)} is not a training task of this run "
                f"({', '.join(task_key(t) for t in train_tasks)}); the translator maps between "
                "training tasks"
            )
    if source == target:
        raise MCATError(
            f"--transfer-from {task_key(source)} is the --task itself; pick another task"
        )
    return train_tasks.index(source), train_tasks.index(target)


def _play(family, task, seeds, policy, history: int, make: dict) -> Clip:
    """One rendered episode per seed with ``policy`` (a RowPolicy), all in lockstep as the
    evaluation plays them (so the same returns as the evaluation of this task with as many
    episodes); the clip shows them one after another."""
    from mcat.collect import run_episodes

    size = {"width": make["width"], "height": make["height"]}
    rates: list[float] = []

    def film(env: Any) -> None:
        _follow(env)
        rates.append(float(env.metadata.get("render_fps") or 20))

    common = {k: make[k] for k in ("reward_delay", "style", "max_episode_steps")}
    try:
        totals, _, episodes = run_episodes(
            family, [task], [seeds], policy, history, record=True, film=film,
            env_kwargs=size, **common,
        )  # fmt: skip
    except TypeError as exc:
        raise MCATError(
            f"family {family.name} cannot render: its environment takes no render_mode ({exc})"
        ) from None
    assert episodes is not None
    return Clip([f for e in episodes for f in e.frames or []], totals.tolist(), rates[0])


def _follow(env: Any, camera: str = "track") -> None:
    """Film through the model's tracking camera when it has one (gymnasium's HalfCheetah, Hopper
    and Ant define ``track``, which follows the body's centre of mass); else the default view."""
    import mujoco

    unwrapped = env.unwrapped
    renderer = getattr(unwrapped, "mujoco_renderer", None)
    model = getattr(unwrapped, "model", None)
    if renderer is None or model is None:
        return
    cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if cam >= 0:
        renderer.camera_id = cam


def side_by_side(left: Clip, right: Clip) -> Clip:
    """The two clips in one, left beside right; the shorter holds its last frame."""
    n = max(len(left.frames), len(right.frames))
    pad = lambda f, i: f[min(i, len(f) - 1)]  # noqa: E731
    frames = [np.concatenate([pad(left.frames, i), pad(right.frames, i)], axis=1) for i in range(n)]
    return Clip(frames, left.returns + right.returns, left.fps)


def mp4_encoder_available() -> bool:
    try:
        import imageio_ffmpeg

        return Path(imageio_ffmpeg.get_ffmpeg_exe()).is_file()
    except (ImportError, RuntimeError):
        return False


def write(clip: Clip, path: Path) -> Path:
    """Write ``clip`` to ``path`` (.mp4 or .gif); an MP4 without an encoder is written as a GIF
    beside it. Returns the file written. The file appears complete or not at all."""
    if path.suffix.lower() == ".mp4" and not mp4_encoder_available():
        path = path.with_suffix(".gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        if path.suffix.lower() == ".mp4":
            import imageio_ffmpeg

            h, w = clip.frames[0].shape[:2]
            writer = imageio_ffmpeg.write_frames(
                str(tmp), (w, h), fps=clip.fps, codec="libx264", quality=7,
                macro_block_size=2, ffmpeg_log_level="error",
            )  # fmt: skip
            writer.send(None)
            for frame in clip.frames:
                writer.send(np.ascontiguousarray(frame))
            writer.close()
        else:
            from PIL import Image

            images = [Image.fromarray(f) for f in clip.frames]
            images[0].save(
                tmp, save_all=True, append_images=images[1:], duration=1000 / clip.fps, loop=0
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
