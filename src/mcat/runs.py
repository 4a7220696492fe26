"""A run's directory on disk: config, metrics, TensorBoard events, checkpoints and summary.

    DIR/config.json        every value the run used
    DIR/metrics.csv        one row per evaluation and task: step, task, split, return
    DIR/episodes.csv       one row per training episode: step, task, return, length
    DIR/tb/                TensorBoard events
    DIR/checkpoints/step-000050000.pt    everything needed to continue the run (tensors only)
    DIR/checkpoints/step-000050000.json  its sidecar: size and SHA-256, written after the .pt
    DIR/summary.json       final evaluation
    DIR/.lock              held (flock) by the process writing the run, see hold_run_dir

A checkpoint is written to a temporary file, flushed to disk and renamed into place; its sidecar
is written (the same way) only after that. A checkpoint counts as complete when its sidecar
exists and the file's size and SHA-256 match it, so a file half-written when the process died
is never the one a run resumes from. The last two complete checkpoints are kept.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import re
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import torch

from mcat.config import RunConfig, load_json, run_config_from_dict, run_config_to_dict
from mcat.errors import MCATError, RunDirBusy, RunStopped
from mcat.faults import CRASH_HOOK, crash_point, kill_self  # noqa: F401 (re-exported)
from mcat.policy_transfer import TRANSFER, TRANSFER_SUMMARY  # MCAT's logs, named for readers

CONFIG, METRICS, EPISODES, SUMMARY, CHECKPOINTS = (
    "config.json",
    "metrics.csv",
    "episodes.csv",
    "summary.json",
    "checkpoints",
)
LEGACY_CHECKPOINT = (
    "checkpoints/latest.pt"  # runs written before resumable checkpoints (still loadable)
)
CHECKPOINT_FORMAT = 2
KEEP_CHECKPOINTS = 2
_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")
LOCK = ".lock"


class StopRequest:
    """Set by :func:`stop_on_signals` when a signal asked the run to stop (true from then on)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


# the active stop_on_signals contexts (request, handlers they replaced), innermost last
_STOP_REQUESTS: list[tuple[StopRequest, dict]] = []


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While a run trains: SIGTERM (what a cluster's scheduler sends before it kills a job, or
    `kill`) and SIGINT (Ctrl-C) set the yielded request instead of ending the process, so the
    loop can stop after its current iteration with a checkpoint of that step and lose nothing.
    A second signal acts at once, as without this (Ctrl-C interrupts, SIGTERM ends the process).
    Outside the main thread (where signals cannot be caught) the request is never set."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    _STOP_REQUESTS.append((request, saved))

    def handler(signum: int, frame: Any) -> None:
        # every enclosing context learns of it (`mcat transfer` around its source run); the
        # next signal meets the handlers from before any of them, and is not caught
        for r, _ in _STOP_REQUESTS:
            r.signum = signum
        for s, h in _STOP_REQUESTS[0][1].items():
            signal.signal(s, h)
        # os.write: a print here could land inside another write to stderr
        name = signal.Signals(signum).name
        os.write(
            2,
            f"mcat: {name}: stopping after this iteration, with a checkpoint "
            "(again to stop at once)\n".encode(),
        )

    for s in saved:
        signal.signal(s, handler)
    try:
        yield request
    finally:
        _STOP_REQUESTS.pop()
        if not request:  # after a signal the handlers from before every context are in place
            for s, h in saved.items():
                signal.signal(s, h)


def stop_requested() -> int | None:
    """The signal that asked the work under way to stop (an enclosing :func:`stop_on_signals`),
    or None: what a loop without a context of its own (:class:`LoopCheckpoint`) checks."""
    return next((r.signum for r, _ in reversed(_STOP_REQUESTS) if r), None)


class RunDirLock:
    """This process's hold on one output directory (see :func:`hold_run_dir`)."""

    def __init__(self, path: Path, fd: int, made: list[Path]):
        self.path, self.fd, self.holders = path, fd, 1
        self.made = made  # what taking the hold created: the lock file, new folders

    def release(self, failed: bool = False) -> None:
        """Drop one hold; the last one unlocks. ``failed``: the work stopped on an error, so
        what the hold itself created goes again where nothing else was written (a refused
        command leaves a folder as it found it)."""
        self.holders -= 1
        if self.holders > 0:
            return
        _HELD.pop(self.path, None)
        if failed:
            for made in self.made:  # the lock file first, then its folders, innermost first
                try:
                    made.unlink() if made.name == LOCK else made.rmdir()
                except OSError:
                    break  # a folder holding something else stays, and so do its parents
        os.close(self.fd)  # closing the descriptor drops the flock

    def __enter__(self) -> RunDirLock:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.release(failed=kind is not None)


_HELD: dict[Path, RunDirLock] = {}


def hold_run_dir(out: Path) -> RunDirLock:
    """Create ``out`` if needed and hold it for this process: a second process writing the same
    run (a cluster job submitted twice, a script started in two terminals) would interleave its
    checkpoints and logs with the first's, so it is refused with :class:`RunDirBusy` before it
    touches anything. An exclusive ``flock`` on ``out/.lock``: the kernel drops it when the
    process ends, however it ends, so a killed run leaves no stale lock (on NFS, flock is
    emulated with POSIX locks since Linux 2.6.12). Holds within one process nest: the same
    directory held twice is one hold, released by the last :meth:`RunDirLock.release`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MCATError(f"output path {out} exists and is not a directory")
    key = out.resolve()
    if key in _HELD:
        _HELD[key].holders += 1
        return _HELD[key]
    made = [p for p in (key, *key.parents) if not p.exists()]
    lock = key / LOCK
    if not lock.exists():
        made.insert(0, lock)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise MCATError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    try:
        import fcntl
    except ImportError:  # no flock (Windows): unguarded, as before
        _HELD[key] = RunDirLock(key, fd, made)
        return _HELD[key]
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunDirBusy(
            f"{out} is in use by another mcat process (pid {holder}): wait for it to end, "
            "or stop it, or choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _HELD[key] = RunDirLock(key, fd, made)
    return _HELD[key]


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


class StepProgress:
    """A progress line at every tenth of a fixed number of steps (for the long loops that have no
    environment steps to report, such as training F or H on a fixed dataset)."""

    def __init__(self, what: str, total: int, log) -> None:
        self.what, self.total, self.log = what, total, log
        self.start, self.every = time.perf_counter(), max(1, total // 10)
        self.first = 0  # steps done before this process (a resumed loop): not in the ETA's rate

    def update(self, done: int, loss=None) -> None:
        """Call after ``done`` steps; ``loss`` (the last one: a number or a 0-d tensor, read only on
        the steps that print, so callers need not synchronise every step) is printed when given."""
        if done % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / max(done - self.first, 1) * (self.total - done)
        tail = f" | loss {float(loss):.4g}" if loss is not None else ""
        self.log(
            f"  {self.what} {done:,}/{self.total:,} ({100 * done // self.total}%){tail} "
            f"| ETA {fmt_duration(eta)}"
        )


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file, flush it to disk, then rename: readers see the old or the new
    file, never half of one. A failed write (full disk, say) leaves the old file and is a
    one-line :class:`MCATError`."""
    path = Path(path)
    try:
        _atomic_write(path, data)
    except OSError as exc:
        raise MCATError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def prepare_run_dir(out: Path, cfg: RunConfig, overwrite: bool) -> None:
    """Create ``out`` for a new run (held by :func:`hold_run_dir`, which refuses a path that is
    not a directory). A directory holding another run (or anything else) is refused unless
    ``overwrite``; then only the files a run writes are replaced."""
    out = Path(out)
    if out.exists() and any(f.name != LOCK for f in out.iterdir()) and not overwrite:
        what = "a run" if (out / CONFIG).exists() else "files"
        resume = f" pass --resume {out} to continue it," if (out / CONFIG).exists() else ""
        raise MCATError(
            f"output directory {out} already holds {what};{resume} "
            "pass --overwrite to replace it or choose another --out"
        )
    try:
        (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        (out / "tb").mkdir(exist_ok=True)
        if overwrite:
            for name in (METRICS, EPISODES, SUMMARY, TRANSFER, TRANSFER_SUMMARY):
                (out / name).unlink(missing_ok=True)
            for old in [*(out / "tb").glob("events.*"), *(out / CHECKPOINTS).iterdir()]:
                old.unlink()
    except OSError as exc:
        raise MCATError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    write_json(out / CONFIG, run_config_to_dict(cfg))


def load_run_config(run_dir: Path) -> RunConfig:
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise MCATError(f"{run_dir} is not a run directory (no {CONFIG})")
    return run_config_from_dict(load_json(run_dir / CONFIG))


class CsvLog:
    """Appends rows to a CSV file with a fixed header, flushing each batch of rows.

    ``truncate_at`` (a byte offset from :meth:`tell`, kept in a checkpoint) first cuts the file
    back to that length, dropping rows written after the checkpoint a run resumes from."""

    def __init__(self, path: Path, header: list[str], truncate_at: int | None = None):
        self.path = path
        try:
            if truncate_at is not None:
                size = path.stat().st_size if path.exists() else 0
                if size < truncate_at:
                    raise MCATError(
                        f"{path} is shorter ({size} bytes) than at the checkpoint "
                        f"({truncate_at} bytes); "
                        "rows were lost, so the run cannot continue consistently"
                    )
                os.truncate(path, truncate_at)
            new = not path.exists() or path.stat().st_size == 0
            # open for the log's lifetime (rows come in over the whole run); close() closes it
            self.file = open(path, "a", newline="")  # noqa: SIM115
            self.writer = csv.writer(self.file)
            if new:
                try:
                    self.write([header])
                except MCATError:
                    self.file.close()
                    raise
        except OSError as exc:
            raise MCATError(f"cannot write {path}: {exc.strerror or exc}") from None

    def write(self, rows: list[list[Any]]) -> None:
        try:
            self.writer.writerows(rows)
            self.file.flush()
        except OSError as exc:
            raise MCATError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def tell(self) -> int:
        """Bytes written so far (every row is flushed)."""
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.csv: step, task (its key, see mcat.tasks.task_key), split and
    return."""
    path = Path(run_dir) / METRICS
    try:
        with open(path, newline="") as f:
            return [
                {
                    "step": int(r["step"]),
                    "task": r["task"],
                    "split": r["split"],
                    "return": float(r["return"]),
                }
                for r in csv.DictReader(f)
            ]
    except FileNotFoundError:
        raise MCATError(f"{run_dir} has no {METRICS}") from None
    except (KeyError, ValueError) as exc:
        raise MCATError(f"{path} is not a metrics file of mcat ({exc})") from None


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`atomic_write_bytes`."""
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


# ---------------------------------------------------------------------- checkpoint contents
def _map_leaves(tree: Any, leaf) -> Any:
    if isinstance(tree, dict):
        return {k: _map_leaves(v, leaf) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_map_leaves(v, leaf) for v in tree)
    return leaf(tree)


def _saveable_leaf(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "u" and x.dtype != np.uint8:
            x = x.astype(np.int64)
        return torch.from_numpy(np.ascontiguousarray(x))
    return x.item() if isinstance(x, np.generic) else x


def to_saveable(tree: Any) -> Any:
    """NumPy arrays to tensors and NumPy scalars to Python numbers, through dicts, lists and
    tuples: everything then loads with ``torch.load(weights_only=True)``. Arrays are shared,
    not copied (a view that is not contiguous is copied, so only its own data is saved)."""
    return _map_leaves(tree, _saveable_leaf)


def from_saved(tree: Any) -> Any:
    """Tensors back to NumPy arrays (the inverse of :func:`to_saveable`)."""
    return _map_leaves(tree, lambda x: x.numpy() if isinstance(x, torch.Tensor) else x)


# ---------------------------------------------------------------------- resumable loops
class LoopCheckpoint:
    """Makes a training loop of ``total`` steps over fixed data resumable (the translators of
    `mcat transfer`, 20,000 steps that take up to an hour here): every ``every`` steps, and after
    the last, the states of the loop's modules, optimisers, schedulers and random generators (and
    torch's global generator) go to ``path`` atomically; a process started again with the same
    ``key`` continues from there and ends with what the loop left alone would have. ``path`` None:
    no files. The caller removes the file (:meth:`remove`) once the loop's product is saved."""

    def __init__(
        self, path: Path | None, key: dict, what: str, total: int, every: int = 1000, log=print
    ):
        self.path, self.what, self.total, self.every, self.log = path, what, total, every, log
        self.key = json.dumps(key, sort_keys=True, default=str)
        self.objects: dict[str, Any] = {}

    def resume(self, objects: dict[str, Any]) -> int:
        """Take the loop's stateful ``objects`` (anything with ``state_dict``, NumPy and torch
        generators) and load their saved states when this key has a checkpoint; returns the
        number of steps already done (0 for a fresh start)."""
        self.objects = objects
        if self.path is None or not self.path.is_file():
            return 0
        state = load_checkpoint_file(self.path)
        if state.get("key") != self.key:
            self.log(f"{self.path} holds another loop's progress: {self.what} starts from 0")
            return 0
        for name, obj in objects.items():
            saved = state["objects"][name]
            if isinstance(obj, np.random.Generator):
                obj.bit_generator.state = json.loads(saved)
            elif isinstance(obj, torch.Generator):
                obj.set_state(saved)
            else:
                obj.load_state_dict(saved)
        torch.set_rng_state(state["torch_rng"])
        self.log(f"{self.what}: continuing from step {state['step']:,} ({self.path})")
        return int(state["step"])

    def done(self, step: int) -> None:
        """Call after each step; saves every ``every`` steps and after the ``total``-th, and
        when a signal asked to stop (:func:`stop_requested`): then it raises
        :class:`~mcat.errors.RunStopped` after the save (a loop without files goes on)."""
        signum = stop_requested() if step < self.total and self.path is not None else None
        if self.path is not None and (
            step % self.every == 0 or step == self.total or signum is not None
        ):
            objects: dict[str, Any] = {}
            for name, obj in self.objects.items():
                if isinstance(obj, np.random.Generator):  # its 128-bit ints, as text
                    objects[name] = json.dumps(obj.bit_generator.state)
                elif isinstance(obj, torch.Generator):
                    objects[name] = obj.get_state()
                else:
                    objects[name] = obj.state_dict()
            state = {"key": self.key, "step": step, "objects": objects}
            atomic_torch_save({**state, "torch_rng": torch.get_rng_state()}, self.path)
        if signum is not None:
            raise RunStopped(signum, f"step {step:,} of {self.what}", self.path)
        if crash_point("loop", step) is not None:
            kill_self()

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------------- checkpoint files
@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict


class _HashingWriter:
    """File wrapper that counts and hashes what ``torch.save`` streams through it (no second
    pass over a large file, no copy of it in memory)."""

    def __init__(self, file):
        self.file, self.sha, self.bytes = file, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.bytes += memoryview(data).nbytes
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


class _CrashingWriter(_HashingWriter):
    """Test hook only: dies by SIGKILL once ``limit`` bytes are on disk."""

    def __init__(self, file, limit: int):
        super().__init__(file)
        self.limit = limit

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if self.bytes + len(view) >= self.limit:
            super().write(view[: max(self.limit - self.bytes, 0)])
            self.file.flush()
            os.fsync(self.file.fileno())
            kill_self()
        return super().write(view)


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:09d}.pt"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Checkpoint files (complete or not), newest first."""
    folder = Path(run_dir) / CHECKPOINTS
    found = (
        [(int(m.group(1)), p) for p in folder.glob("step-*.pt") if (m := _STEP_FILE.match(p.name))]
        if folder.is_dir()
        else []
    )
    return sorted(found, reverse=True)


def has_checkpoint_files(run_dir: Path) -> bool:
    """Whether a run ever wrote a checkpoint file (complete or not, legacy included)."""
    return bool(list_checkpoints(run_dir)) or (Path(run_dir) / LEGACY_CHECKPOINT).is_file()


def finished_without_checkpoints(run_dir: Path) -> bool:
    """Whether a run's logs say it finished while it holds no checkpoint file: a run copied
    without them (the repository keeps only the logs of its result runs). Nothing can continue
    it, and starting it again would replace the logs of a finished run."""
    run_dir = Path(run_dir)
    if has_checkpoint_files(run_dir):
        return False
    if (run_dir / SUMMARY).is_file():
        return True
    try:
        steps = str(load_run_config(run_dir).steps)
    except MCATError:
        return False
    if not (run_dir / METRICS).is_file():
        return False
    with open(run_dir / METRICS, newline="") as f:  # a summary not kept: the last evaluation
        return any(row.get("step") == steps for row in csv.DictReader(f))


def finished_run_advice(run_dir: Path) -> str:
    """The error for :func:`finished_without_checkpoints` runs, with the way on."""
    return (
        f"{run_dir} is a finished run whose checkpoints were not kept (only its logs): there "
        f"is no policy to load or continue; to train it again, into another folder: "
        f"mcat train --config {Path(run_dir) / CONFIG} --out NEW_DIR"
    )


def last_logged_step(run_dir: Path) -> int:
    """The largest env step in a run's metrics and episode logs (0 without any)."""
    last = 0
    for name in (METRICS, EPISODES):
        try:
            with open(Path(run_dir) / name, newline="") as f:
                for row in csv.DictReader(f):
                    step = row.get("step") or ""
                    if step.isdigit():
                        last = max(last, int(step))
        except OSError:
            continue
    return last


def checkpoints_not_kept(run_dir: Path) -> str | None:
    """Why a run without any checkpoint file cannot be continued nor started again in place, or
    None: it finished, or its logs go past its first checkpoint (so its checkpoints were removed
    or not copied, as in a clone of a repository that keeps only logs). Starting again from step
    0 would replace those logs, and a run started again on another machine need not repeat them
    bit for bit."""
    run_dir = Path(run_dir)
    if has_checkpoint_files(run_dir):
        return None
    if finished_without_checkpoints(run_dir):
        return finished_run_advice(run_dir)
    try:
        every = load_run_config(run_dir).checkpoint_every
    except MCATError:
        return None
    last = last_logged_step(run_dir)
    if last <= every:  # killed before its first checkpoint (or while writing it): start again
        return None
    return (
        f"{run_dir} holds logs up to env step {last:,} but no checkpoint (they were removed or "
        f"not copied): there is nothing to continue from, and starting again would replace "
        f"those logs; to train it again from step 0, into another folder: "
        f"mcat train --config {run_dir / CONFIG} --out NEW_DIR"
    )


def _complete(run_dir: Path) -> list[tuple[int, Path]]:
    return [(s, p) for s, p in list_checkpoints(run_dir) if _sidecar(p).is_file()]


def last_good_checkpoint(run_dir: Path) -> str:
    done = _complete(run_dir)
    return (
        f"the last good checkpoint {done[0][1]} is kept"
        if done
        else "no checkpoint had been written yet"
    )


def write_checkpoint(run_dir: Path, step: int, state: dict, meta: dict) -> tuple[Path, int]:
    """Write ``{"meta": meta, **state}`` as the checkpoint of ``step`` (temporary file, flush,
    fsync, rename, then the sidecar), keep the newest :data:`KEEP_CHECKPOINTS` complete ones and
    return the path and size. A failed write is a one-line error and leaves the previous
    checkpoints as they were."""
    path = checkpoint_path(run_dir, step)
    tmp = path.with_name(path.name + ".tmp")
    crash = crash_point("checkpoint", step)
    try:
        with open(tmp, "wb") as f:
            out = _HashingWriter(f) if crash is None else _CrashingWriter(f, crash)
            # the writer has the part of a binary file that torch.save uses (write, flush)
            torch.save({"meta": meta, **state}, cast(IO[bytes], out))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if crash_point("sidecar", step) is not None:
            kill_self()
        sidecar = {
            "file": path.name,
            "bytes": out.bytes,
            "sha256": out.sha.hexdigest(),
            **{k: v for k, v in meta.items() if k != "config"},
        }
        _atomic_write(_sidecar(path), (json.dumps(sidecar, indent=2) + "\n").encode())
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        # torch.save turns a failed write into a RuntimeError raised while the OSError is handled
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        if not isinstance(cause, OSError):  # None: no OSError behind it
            raise
        raise MCATError(
            f"cannot write checkpoint {path}: {cause.strerror or cause}; "
            f"{last_good_checkpoint(run_dir)}"
        ) from None
    keep = {p for _, p in _complete(run_dir)[:KEEP_CHECKPOINTS]}
    for old_step, old in list_checkpoints(run_dir):
        if (
            old_step < step and old not in keep
        ):  # older complete ones, and incomplete ones left by a crash
            _sidecar(old).unlink(missing_ok=True)  # sidecar first: a .pt without one is never used
            old.unlink(missing_ok=True)
    return path, out.bytes


def discard_checkpoints_after(run_dir: Path, step: int) -> list[str]:
    """Remove temporary files and checkpoint files newer than ``step`` (incomplete or corrupt
    ones a resumed run has passed over); returns their names."""
    folder = Path(run_dir) / CHECKPOINTS
    gone = []
    for s, path in list_checkpoints(run_dir):
        if s > step:
            for p in (_sidecar(path), path):
                if p.exists():
                    p.unlink()
                    gone.append(p.name)
    for p in folder.glob("*.tmp"):
        p.unlink()
        gone.append(p.name)
    return gone


def _verify(path: Path) -> str | None:
    """Why ``path`` is not a complete checkpoint, or None when its sidecar vouches for it."""
    try:
        sidecar = json.loads(_sidecar(path).read_text())
        expected, digest = int(sidecar["bytes"]), str(sidecar["sha256"])
    except FileNotFoundError:
        return "no sidecar (the write did not finish)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable sidecar ({exc})"
    size = path.stat().st_size
    if size != expected:
        return f"truncated or overwritten ({size} of {expected} bytes)"
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            sha.update(chunk)
    if sha.hexdigest() != digest:
        return "corrupt (SHA-256 does not match its sidecar)"
    return None


def newest_complete_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint file its sidecar vouches for, as :func:`find_checkpoint` judges it,
    without loading or removing anything (scripts/stage_runs.sh --checkpoints)."""
    return next((p for _, p in list_checkpoints(run_dir) if _verify(p) is None), None)


def load_checkpoint_file(path: Path) -> dict:
    """``torch.load(weights_only=True)``: tensors, numbers, strings and containers only. A file
    that would run code when unpickled is refused (nothing in it runs) with a one-line error."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"
        # mmap: a large replay is paged in as it is copied, not read into memory twice
        with (
            warnings.catch_warnings()
        ):  # e.g. on the pickle protocol of a file that is refused anyway
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        why = (
            f"it would call {found.group(1)}"
            if found
            else str(exc).strip().splitlines()[0]
            if str(exc).strip()
            else "unreadable"
        )
        raise MCATError(
            f"refusing to load {path}: not a tensors-only checkpoint ({why}); nothing in it was run"
        ) from None
    except Exception as exc:
        lines = str(exc).splitlines()
        raise MCATError(
            f"cannot load checkpoint {path}: {lines[0] if lines else type(exc).__name__}"
        ) from None
    if not isinstance(state, dict):
        raise MCATError(
            f"cannot load checkpoint {path}: not an mcat checkpoint "
            f"(a {type(state).__name__}, not a dict)"
        )
    return state


def find_checkpoint(run_dir: Path, log=None) -> Checkpoint:
    """The newest complete checkpoint of a run. Incomplete or corrupt newer files are passed
    over (with a warning through ``log``); a file that is not tensors-only is an error."""
    run_dir = Path(run_dir)
    problems = []
    for step, path in list_checkpoints(run_dir):
        why = _verify(path)
        if why is not None:
            problems.append(f"{path.name}: {why}")
            continue
        state = load_checkpoint_file(path)
        if problems and log is not None:
            log(f"warning: passed over {'; '.join(problems)}; using {path.name}")
        return Checkpoint(path, step, state)
    legacy = run_dir / LEGACY_CHECKPOINT
    if legacy.is_file():
        state = load_checkpoint_file(legacy)
        return Checkpoint(legacy, int(state.get("env_steps", 0)), state)
    if problems:
        raise MCATError(
            f"no complete checkpoint in {run_dir / CHECKPOINTS}: {'; '.join(problems)}; "
            f"to start the run again from step 0: mcat train --config {run_dir / CONFIG} "
            f"--out {run_dir} --overwrite"
        )
    lost = checkpoints_not_kept(run_dir)
    if lost:
        raise MCATError(lost)
    raise MCATError(
        f"{run_dir} has no checkpoint yet ({CHECKPOINTS}/step-*.pt); "
        f"mcat train --resume {run_dir} runs it"
    )


def load_checkpoint(run_dir: Path) -> dict:
    """The contents of the newest complete checkpoint of a run."""
    return find_checkpoint(run_dir).state
