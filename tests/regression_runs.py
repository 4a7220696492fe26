"""The short ctd3 and MCAT runs whose logs are kept in tests/data/regression (see
tests/test_regression.py); ``python tests/regression_runs.py`` records them again. Also
:func:`assert_same_logs`, the comparison of logs made on another machine."""

import csv
import io
import json
import math
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_runs import TOY_AGENT, quiet, toy_config

DATA = Path(__file__).parent / "data" / "regression"
LOGS = ("metrics.csv", "episodes.csv", "transfer.csv")
# point-gain, 5 tasks, delay 5, 1,000 env steps: learning, C+F blocks, for MCAT also H blocks,
# SIL and policy-transfer episodes (from step 750) all happen inside the run. Recorded at 1,500
# steps before the algorithm interface; re-recorded at 1,000 on 2026-11-27 (commit 30bc244, whose
# 1,500-step logs still equalled the first recording byte for byte) to make the test shorter.
RUNS = {
    "ctd3": {"algo": "ctd3", "reward_delay": 5},
    "mcat": {
        "algo": "mcat",
        "reward_delay": 5,
        "agent": dict(TOY_AGENT, translator_warmup_steps=20, translator_steps=5),
    },
}


def machine() -> dict:
    """What the recorded bytes depend on besides the code: torch's build and the processor (its
    name, and its family and model, which the name alone does not tell apart: "AMD EPYC" is
    several generations). The first recording kept only the name."""
    fields = {"model name": "", "cpu family": "", "model": ""}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in fields and not fields[key.strip()]:
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    cpu_model = f"{fields['cpu family']}/{fields['model']}"
    return {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu": fields["model name"],
        "cpu_model": cpu_model,
    }


# Logs recorded on another processor may differ in a float's last bits: on 2026-12-07 an AMD EPYC
# of family 25 model 17 (AVX-512) wrote 2 of the 37 metrics rows of each recorded run 1 ulp
# (1.9e-16 relative) away from the recording, the episodes identical, and no torch, MKL, oneDNN,
# NumPy or glibc setting brought the recorded bits back. A change of what a run computes moves
# the numbers by far more than this bound (another random draw changes every later row).
REL = 1e-9


def assert_same_logs(got: str, want: str, what: str) -> None:
    """Two CSV logs have the same rows and cells: text cells equal, numbers equal within ``REL``."""
    rows, expected = (list(csv.reader(io.StringIO(t))) for t in (got, want))
    assert len(rows) == len(expected), f"{what}: {len(rows)} rows, recorded {len(expected)}"
    for i, (row, exp) in enumerate(zip(rows, expected, strict=True)):
        assert len(row) == len(exp), f"{what} row {i}: {row} != {exp}"
        for a, b in zip(row, exp, strict=True):
            if a != b:
                assert same_number(a, b), f"{what} row {i}: {row} != {exp}"


def same_number(a: str | float, b: str | float) -> bool:
    """Equal within ``REL`` (both numbers), or equal."""
    try:
        x, y = float(a), float(b)
    except ValueError:
        return a == b
    return math.isclose(x, y, rel_tol=REL, abs_tol=0.0)


def run(name: str, out: Path) -> Path:
    from mcat.train import Trainer

    cfg = toy_config(steps=1000, **RUNS[name])
    Trainer(cfg, out / name, log=quiet).run()
    return out / name


def record() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in RUNS:
            folder = run(name, Path(tmp))
            (DATA / name).mkdir(parents=True, exist_ok=True)
            for log in LOGS:
                if (folder / log).is_file():
                    (DATA / name / log).write_bytes((folder / log).read_bytes())
    (DATA / "machine.json").write_text(json.dumps(machine(), indent=1) + "\n")


if __name__ == "__main__":
    record()
