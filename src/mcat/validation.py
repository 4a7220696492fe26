"""Checks of user-given values shared by every config and command: each raises
:class:`~mcat.errors.MCATError` with a one-line message naming the value (as its command-line
flag) and what it must be, so nothing is started, and no directory made, with a bad value."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcat.errors import MCATError

MAX_SEED = 2**32 - 1  # NumPy's legacy seeding (np.random.seed) takes 0 ... 2**32 - 1
MAX_INT = 2**63 - 1  # counts are stored in int64 arrays and torch tensors


def flag(name: str) -> str:
    """How a message names a value: a run's key as its flag (``eval_every`` -> ``--eval-every``),
    a nested key as itself (``agent.batch_size``, set with ``--set agent.batch_size=N``)."""
    return name if "." in name else "--" + name.replace("_", "-")


def check_int(name: str, value: Any, low: int, high: int = MAX_INT) -> int:
    """``value`` as an int in [low, high]; ``name`` is the config key."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MCATError(f"{flag(name)} must be a whole number, got {value!r}")
    if not low <= value <= high:
        bound = f"between {low} and {high:,}" if high != MAX_INT else f">= {low}"
        raise MCATError(f"{flag(name)} must be {bound}, got {value:,}")
    return value


def check_number(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
) -> float:
    """``value`` as a finite float with low <= value <= high (low < value with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MCATError(f"{flag(name)} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise MCATError(f"{flag(name)} must be a finite number, got {value}")
    if (value <= low if low_open else value < low) or value > high:
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        what = lo if high == math.inf else f"{lo} and <= {high:g}"
        raise MCATError(f"{flag(name)} must be {what}, got {value:g}")
    return value


def check_seed(value: Any, name: str = "seed") -> int:
    return check_int(name, value, 0, MAX_SEED)


def check_threads(value: Any, name: str = "threads") -> int | None:
    """None (torch's default) or a thread count >= 1."""
    return None if value is None else check_int(name, value, 1, 4096)


def check_device(value: Any) -> str:
    """A torch device string that torch parses and that this machine has."""
    import torch

    if not isinstance(value, str):
        raise MCATError(f"--device must be a string such as cpu or cuda, got {value!r}")
    try:
        device = torch.device(value)
    except RuntimeError:
        raise MCATError(
            f"--device {value!r} is not a torch device; use cpu, cuda or cuda:N"
        ) from None
    if device.type == "cpu":
        return value
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MCATError(
                f"--device {value}: CUDA is not available on this machine "
                "(torch.cuda.is_available() is False); use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MCATError(
                f"--device {value}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return value
    backend = getattr(torch.backends, device.type, None)
    if backend is None or not getattr(backend, "is_available", lambda: False)():
        raise MCATError(f"--device {value}: the {device.type} backend is not available here")
    return value


def check_compiler(device: str) -> None:
    """What torch.compile needs to build kernels for ``device``: a C++ compiler for the CPU
    (inductor reads $CXX, else looks for g++ and clang++), triton for a CUDA device."""
    import importlib.util
    import os
    import shutil

    import torch

    kind = torch.device(device).type
    if kind == "cpu":
        names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++"]
        if not any(shutil.which(n) for n in names):
            raise MCATError(
                "--compile on a CPU needs a C++ compiler for torch.compile (g++ or clang++, or "
                "$CXX); install one (e.g. apt install g++) or run without --compile"
            )
    elif kind == "cuda" and importlib.util.find_spec("triton") is None:
        raise MCATError(
            "--compile on a GPU needs triton for torch.compile (pip install triton, the "
            "version your torch names); or run without --compile"
        )


def check_distinct(name: str, values: Sequence, what: str = "task") -> None:
    from mcat.tasks import task_key

    seen: set = set()
    for v in values:
        if v in seen:
            raise MCATError(f"{flag(name)} lists the {what} {task_key(v)} twice")
        seen.add(v)


def check_writable_file(path: Path, what: str, suffixes: Sequence[str] = ()) -> Path:
    """Check, before any work, that ``path`` can be written: not a directory, an allowed suffix,
    and a parent directory (existing, or one that can be made) where a file can be created
    (tried with a temporary file, removed at once: permission bits alone do not tell, e.g. for
    root or on a read-only mount)."""
    path = Path(path)
    if path.is_dir():
        raise MCATError(f"{what} {path} is a directory; give a file name such as {path / 'x.png'}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise MCATError(
            f"{what} {path}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(suffixes)}"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():  # made when the file is written (a run's own folder, say)
        check_creatable_dir(parent, f"the folder of {what}")
        return path
    if not parent.is_dir():
        raise MCATError(f"{what} {path}: {parent} is not a directory")
    _try_a_file_in(parent, f"cannot write {what} {path}")
    return path


def check_creatable_dir(path: Path, what: str) -> Path:
    """Check, creating nothing, that ``path`` is a folder or can be made one: its nearest
    existing ancestor is a folder in which a file can be created."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise MCATError(f"{what} {path} exists and is not a directory")
        return path
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise MCATError(f"cannot create {what} {path}: {ancestor} is not a directory")
    _try_a_file_in(ancestor, f"cannot create {what} {path}")
    return path


def _try_a_file_in(folder: Path, failure: str) -> None:
    """Create and remove a temporary file in ``folder``; ``failure`` starts the error line."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mcat-write-check-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise MCATError(f"{failure}: {exc.strerror or exc}") from None
