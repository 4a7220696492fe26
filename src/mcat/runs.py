"""A run's directory on disk: config, metrics, TensorBoard events, checkpoints and summary.

    DIR/config.json        every value the run used
    DIR/metrics.csv        one row per evaluation and task: step, task, split, return
    DIR/episodes.csv       one row per training episode: step, task, return, length
    DIR/tb/                TensorBoard events
    DIR/checkpoints/latest.pt   networks, optimisers and counters (tensors only)
    DIR/summary.json       final evaluation
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import torch

from mcat.config import RunConfig, load_json, run_config_from_dict, run_config_to_dict
from mcat.errors import MCATError

CONFIG, METRICS, EPISODES, SUMMARY, CHECKPOINT = "config.json", "metrics.csv", "episodes.csv", "summary.json", "checkpoints/latest.pt"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file, flush it to disk, then rename: readers see the old or the new
    file, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def prepare_run_dir(out: Path, cfg: RunConfig, overwrite: bool) -> None:
    """Create ``out`` for a new run. A directory holding another run (or anything else) is
    refused unless ``overwrite``; then only the files a run writes are replaced."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MCATError(f"output path {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        what = "a run" if (out / CONFIG).exists() else "files"
        raise MCATError(f"output directory {out} already holds {what}; pass --overwrite to replace it or choose another --out")
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        (out / "tb").mkdir(exist_ok=True)
    except OSError as exc:
        raise MCATError(f"cannot create output directory {out}: {exc.strerror}") from None
    if overwrite:
        for name in (METRICS, EPISODES, SUMMARY, CHECKPOINT):
            (out / name).unlink(missing_ok=True)
        for old in (out / "tb").glob("events.*"):
            old.unlink()
    write_json(out / CONFIG, run_config_to_dict(cfg))


def load_run_config(run_dir: Path) -> RunConfig:
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise MCATError(f"{run_dir} is not a run directory (no {CONFIG})")
    return run_config_from_dict(load_json(run_dir / CONFIG))


class CsvLog:
    """Appends rows to a CSV file with a fixed header, flushing each batch of rows."""

    def __init__(self, path: Path, header: list[str]):
        new = not path.exists()
        self.file = open(path, "a", newline="")
        self.writer = csv.writer(self.file)
        if new:
            self.writer.writerow(header)
            self.file.flush()

    def write(self, rows: list[list[Any]]) -> None:
        self.writer.writerows(rows)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    try:
        with open(path, newline="") as f:
            return [
                {"step": int(r["step"]), "task": float(r["task"]), "split": r["split"], "return": float(r["return"])}
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


def save_checkpoint(run_dir: Path, state: dict) -> Path:
    path = Path(run_dir) / CHECKPOINT
    atomic_torch_save(state, path)
    return path


def load_checkpoint(run_dir: Path) -> dict:
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise MCATError(f"{run_dir} has no checkpoint ({CHECKPOINT})")
    try:
        # weights_only: a checkpoint is data (tensors, numbers, strings), never code
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise MCATError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None
