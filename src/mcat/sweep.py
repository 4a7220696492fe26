"""`mcat sweep`: a grid of runs from one readable spec, executed on Ray (a local Ray started and
stopped by the command, or an existing cluster with ``--address``), resumable.

A spec (YAML or JSON; shipped specs live in ``mcat/sweeps/``)::

    name: table34                  # required: names the sweep
    description: ...               # optional
    preset: "table4-{family}-delay{reward_delay}"   # optional, formatted per trial
    base: {steps: 300000, eval_episodes: 3}         # optional: run-config keys for every trial
    grid:                          # required: config keys -> values (the product is taken)
      family: [halfcheetah-armature, halfcheetah-mass]
      reward_delay: [200, 350, 500]
      seed: [0, 1, 2]
      variant:                     # an axis of named config overrides (any name not a key)
        mcat: {}
        nopt: {agent: {policy_transfer: false}}
    exclude: [{family: halfcheetah-mass, reward_delay: 200}]   # optional: partial matches
    trial: "{family}-delay{reward_delay}-{variant}-seed{seed}" # optional: run folder names
    resources: {cpus: 1, gpus: 0}  # optional: per trial; torch threads = cpus unless set

``experiment`` (default ``train``) may be ``transfer`` or ``transfer-matrix``: the trials are then
`mcat transfer` / `mcat transfer-matrix` runs (keys: those of their configs), sharing the cache
folder ``cache`` (default ``OUT/cache``). A trial's config is the preset, then ``base``, then its
grid values, then the overrides of its named axes in grid order; the trial name may use any grid
key and any top-level config key (``{source}``).

Every trial is an ordinary run directory ``OUT/TRIAL`` (so ``mcat eval``, ``mcat plot`` and
``mcat train --resume`` work on it), and every trial config is checked before anything runs.
Re-running the same command continues a sweep however it was stopped: finished trials are kept,
unfinished ones resume from their own checkpoints (``mcat.train.train``; a transfer trial
restarts, reusing what its cache holds), failed ones are tried again. A failing trial is
reported with its one-line error and does not stop the others. A train sweep's budget can be
raised: the same spec with larger ``steps`` (in ``base``, say), re-run on the same ``--out``,
trains every trial on from its newest checkpoint (``mcat train --resume DIR --steps N``).
``OUT/sweep.json`` records the spec and its trials; ``OUT/failed.json`` the errors.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import os
import signal
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcat.errors import MCATError, RunDirBusy
from mcat.runs import atomic_write_bytes
from mcat.validation import check_int, check_number

SPEC_DIR = Path(__file__).parent / "sweeps"
SPEC_KEYS = (
    "name",
    "description",
    "experiment",
    "preset",
    "base",
    "grid",
    "exclude",
    "trial",
    "cache",
    "resources",
)
EXPERIMENTS = ("train", "transfer", "transfer-matrix")
SWEEP_FILE, FAILED_FILE = "sweep.json", "failed.json"
FORMAT = 1


@dataclass(frozen=True)
class Trial:
    name: str
    labels: dict[str, Any]  # the trial's grid values (a named axis: the name)
    config: dict[str, Any]  # the run config, as config.json holds it


@dataclass
class SweepSpec:
    name: str
    grid: dict[str, Any]
    description: str = ""
    experiment: str = "train"
    preset: str | None = None
    base: dict[str, Any] = field(default_factory=dict)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    trial: str | None = None
    cache: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def cpus(self) -> int:
        return int(self.resources.get("cpus", 1))

    @property
    def gpus(self) -> float:
        return float(self.resources.get("gpus", 0.0))


def list_specs() -> list[str]:
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml"))


def load_spec(name_or_path: str) -> SweepSpec:
    """A spec from a YAML/JSON file or a shipped name; any problem is a one-line error."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SPEC_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise MCATError(
                f"no sweep spec {name_or_path!r} (a file, or one of {', '.join(list_specs())})"
            )
    try:
        text = path.read_text()
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml  # type: ignore[import-untyped]

            data = yaml.safe_load(text)
    except (OSError, ValueError) as exc:  # JSON and YAML errors are ValueErrors or YAMLError
        raise MCATError(f"cannot read sweep spec {path}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # yaml.YAMLError
        raise MCATError(
            f"sweep spec {path} is not valid YAML: {str(exc).splitlines()[0]}"
        ) from None
    return spec_from_dict(data, str(path))


def spec_from_dict(data: Any, where: str = "the spec") -> SweepSpec:
    if not isinstance(data, dict):
        raise MCATError(f"{where} must be a mapping of {', '.join(SPEC_KEYS)}")
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise MCATError(f"{where}: unknown key {unknown[0]!r}; a spec has {', '.join(SPEC_KEYS)}")
    for key in ("name", "grid"):
        if key not in data:
            raise MCATError(f"{where} needs {key!r}")
    if not isinstance(data["name"], str) or not data["name"].strip():
        raise MCATError(f"{where}: name must be a non-empty string")
    grid = data["grid"]
    if not isinstance(grid, dict) or not grid:
        raise MCATError(f"{where}: grid must map run-config keys to lists of values")
    experiment = data.get("experiment", "train")
    if experiment not in EXPERIMENTS:
        raise MCATError(f"{where}: experiment must be one of {', '.join(EXPERIMENTS)}")
    known = {f.name for f in dataclasses.fields(_config_class(experiment))}
    for key, values in grid.items():
        if isinstance(values, dict):  # a named axis: name -> overrides
            if key in known:
                raise MCATError(f"{where}: grid.{key} is a config key: give it a list of values")
            if not values:
                raise MCATError(f"{where}: grid.{key} must map names to config overrides")
            for name, overrides in values.items():
                if not isinstance(overrides, dict):
                    raise MCATError(f"{where}: {key} {name!r} must be a mapping of overrides")
        elif key not in known:
            raise MCATError(f"{where}: grid key {key!r} is not a {experiment} config key")
        elif not isinstance(values, list) or not values:
            raise MCATError(f"{where}: grid.{key} must be a non-empty list")
    for key in ("base", "resources"):
        if not isinstance(data.get(key, {}), dict):
            raise MCATError(f"{where}: {key} must be a mapping")
    for key in set(data.get("resources", {})) - {"cpus", "gpus"}:
        raise MCATError(f"{where}: unknown resource {key!r} (cpus, gpus)")
    exclude = data.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(e, dict) for e in exclude):
        raise MCATError(f"{where}: exclude must be a list of mappings")
    spec = SweepSpec(**data)
    check_int("resources.cpus", spec.cpus, 1)
    check_number("resources.gpus", spec.gpus, 0.0)
    return spec


def _fill(template: str, labels: dict[str, Any], what: str) -> str:
    try:
        return string.Formatter().vformat(template, (), labels)
    except (KeyError, IndexError, ValueError) as exc:
        raise MCATError(f"{what} {template!r} names {exc} that is not a grid key") from None


def _config_class(experiment: str) -> type:
    if experiment == "transfer":
        from mcat.experiments.transfer import TransferConfig

        return TransferConfig
    if experiment == "transfer-matrix":
        from mcat.experiments.transfer_matrix import MatrixConfig

        return MatrixConfig
    from mcat.config import RunConfig

    return RunConfig


def checked_config(experiment: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as the experiment's validated config, back as a plain dict."""
    if experiment == "train":
        from mcat.config import run_config_from_dict, run_config_to_dict

        cfg = run_config_from_dict(config)
        cfg.validate()
        return run_config_to_dict(cfg)
    cls = _config_class(experiment)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise MCATError(f"unknown {experiment} setting {unknown[0]!r}")
    try:
        cfg = cls(**config)
    except TypeError as exc:  # a required key missing
        raise MCATError(f"{experiment} config: {exc}") from None
    cfg.validate()
    return dataclasses.asdict(cfg)


def expand(spec: SweepSpec) -> list[Trial]:
    """The trials of ``spec`` with their configs, each checked; a bad one is a one-line error
    naming the trial."""
    from mcat.config import merge_config
    from mcat.presets import load_preset

    keys = list(spec.grid)
    named = [k for k in keys if isinstance(spec.grid[k], dict)]
    axes = [list(spec.grid[k]) if k in named else spec.grid[k] for k in keys]
    template = spec.trial or "-".join(
        [f"{{{k}}}" for k in keys if k != "seed"] + (["seed{seed}"] if "seed" in keys else [])
    )
    trials: list[Trial] = []
    for values in itertools.product(*axes):
        labels = dict(zip(keys, values, strict=True))
        if any(all(labels.get(k) == v for k, v in ex.items()) for ex in spec.exclude):
            continue
        config: dict[str, Any] = {}
        if spec.preset:
            config = load_preset(_fill(spec.preset, labels, "preset"))
        # copies: the spec's own dicts must not change from one trial to the next
        merge_config(config, copy.deepcopy(spec.base))
        merge_config(config, {k: v for k, v in labels.items() if k not in named})
        for key in named:
            merge_config(config, copy.deepcopy(spec.grid[key][labels[key]]))
        config.setdefault("threads", spec.cpus)
        flat = {k: v for k, v in config.items() if not isinstance(v, dict | list)}
        name = _fill(template, {**flat, **labels}, "trial name")
        if not name or "/" in name or name.startswith("."):
            raise MCATError(f"trial name {name!r} is not a folder name")
        try:
            checked = checked_config(spec.experiment, config)
        except MCATError as exc:
            raise MCATError(f"trial {name}: {exc}") from None
        trials.append(Trial(name, labels, checked))
    if not trials:
        raise MCATError(f"sweep {spec.name} has no trials (an empty grid, or all excluded)")
    seen: set[str] = set()
    for t in trials:
        if t.name in seen:
            raise MCATError(f"two trials are named {t.name!r}; put every grid key in 'trial'")
        seen.add(t.name)
    return trials


# ---------------------------------------------------------------------------- the sweep folder
def prepare(spec: SweepSpec, out: Path, write: bool = True) -> list[Trial]:
    """Expand and check ``spec`` against ``out`` (which may hold this same sweep, or runs of it,
    but not another sweep), and record it there unless ``write`` is false."""
    trials = expand(spec)
    record = {"format": FORMAT, "spec": spec.to_dict(), "trials": [t.name for t in trials]}
    path = out / SWEEP_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict) or old.get("spec") != record["spec"]:
            if not _raises_budget(old, spec, trials, out):
                other = old.get("spec", {}).get("name") if isinstance(old, dict) else None
                raise MCATError(
                    f"{out} holds another sweep ({other or 'unreadable'}); choose another --out"
                )
            if write:  # the larger budget is the sweep's from now on
                atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())
        return trials
    if out.exists() and not out.is_dir():
        raise MCATError(f"--out {out} is a file")
    if write:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())
    return trials


def _raises_budget(old: Any, spec: SweepSpec, trials: list[Trial], out: Path) -> bool:
    """Whether ``spec`` is the train sweep recorded in ``old`` with only larger budgets
    (``steps``); a lower one is a one-line error (trained steps cannot be taken back)."""
    try:
        recorded = spec_from_dict(old["spec"], f"{out / SWEEP_FILE}")
        before = expand(recorded)
    except (MCATError, KeyError, TypeError):
        return False
    if spec.experiment != "train" or recorded.experiment != "train":
        return False
    if [t.name for t in before] != [t.name for t in trials]:
        return False
    raised = False
    for a, b in zip(before, trials, strict=True):
        if {**a.config, "steps": 0} != {**b.config, "steps": 0}:
            return False
        if b.config["steps"] < a.config["steps"]:
            raise MCATError(
                f"trial {b.name} of the sweep in {out} has a budget of {a.config['steps']:,} env "
                f"steps, the spec {b.config['steps']:,}: a sweep's budget can only be raised "
                "(a shorter sweep: another --out)"
            )
        raised |= b.config["steps"] > a.config["steps"]
    return raised


def _finished(out: Path, trial: Trial, train: bool = True) -> bool:
    """Whether ``trial``'s run folder holds its finished run: a summary, and for a train trial
    no smaller budget than the trial's (a sweep whose budget was raised trains it on)."""
    run = out / trial.name
    if not (run / "summary.json").is_file():
        return False
    if not train:
        return True
    try:
        return int(json.loads((run / "config.json").read_text())["steps"]) >= trial.config["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return True  # not ours to judge: the trial's own run checks its folder


def _failed(out: Path) -> dict[str, str]:
    try:
        return dict(json.loads((out / FAILED_FILE).read_text()))
    except (OSError, ValueError):
        return {}


def trial_state(
    out: Path, name: str, failed: dict[str, str], trial: Trial | None = None
) -> tuple[str, int | None, Any]:
    """(state, last evaluated step, latest mean test return) of one trial's run folder; with
    ``trial``, a run finished at a smaller budget than the trial's is "to extend"."""
    run = out / name
    step, ret = None, None
    if (run / "metrics.csv").is_file():
        from mcat.runs import read_metrics

        rows = [r for r in read_metrics(run) if r["split"] == "test"]
        if rows:
            step = rows[-1]["step"]
            last = [r["return"] for r in rows if r["step"] == step]
            ret = sum(last) / len(last)
    if (run / "summary.json").is_file():
        return ("done" if trial is None or _finished(out, trial) else "to extend"), step, ret
    if name in failed:
        return "failed", step, ret
    if (run / "config.json").is_file():
        return "started", step, ret
    return "pending", step, ret


def status(out: Path) -> list[tuple[str, str, int | None, Any]]:
    """Each trial's (name, state, last evaluated step, latest mean test return)."""
    path = out / SWEEP_FILE
    if not path.is_file():
        raise MCATError(f"{out} holds no sweep ({SWEEP_FILE} missing)")
    record = json.loads(path.read_text())
    try:
        spec = spec_from_dict(record["spec"])
        trials = {t.name: t for t in expand(spec)} if spec.experiment == "train" else {}
    except MCATError:  # a spec this version cannot expand: states without budgets
        trials = {}
    failed = _failed(out)
    return [(n, *trial_state(out, n, failed, trials.get(n))) for n in record["trials"]]


# ---------------------------------------------------------------------------- running on Ray
# A trial whose directory another process holds waits this long before it counts as failed: the
# workers of a sweep killed a moment ago may still be writing their trials while Ray stops them.
BUSY_WAIT_S = 120.0


def _run_trial(experiment: str, config: dict, run_dir: str, cache: str) -> tuple[str, str]:
    """One trial, in a Ray worker: ("done", summary line) or ("failed", one-line error)."""
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            return _trial(experiment, config, run_dir, cache)
        except RunDirBusy as exc:  # raised before anything is written: trying again is safe
            if time.monotonic() > deadline:
                return "failed", str(exc)
            time.sleep(1.0)


def _trial(experiment: str, config: dict, run_dir: str, cache: str) -> tuple[str, str]:
    quiet = lambda _m: None  # noqa: E731
    try:
        if experiment == "train":
            from mcat.config import run_config_from_dict
            from mcat.runs import load_run_config
            from mcat.train import extend_run, train

            cfg = run_config_from_dict(config)
            run = Path(run_dir)
            if (run / "config.json").is_file() and load_run_config(run).steps < cfg.steps:
                extend_run(run, cfg.steps, log=quiet)  # the sweep's budget was raised
            summary = train(cfg, run, log=quiet)
            return "done", f"test {summary['test_return']:.1f}, train {summary['train_return']:.1f}"
        if experiment == "transfer":
            from mcat.experiments.transfer import TransferConfig, run_transfer

            run_transfer(TransferConfig(**config), Path(run_dir), Path(cache), log=quiet)
        else:
            from mcat.experiments.transfer_matrix import MatrixConfig, run_matrix

            run_matrix(MatrixConfig(**config), Path(run_dir), Path(cache), log=quiet)
        return "done", "result written"
    except RunDirBusy:
        raise
    except MCATError as exc:
        return "failed", str(exc)
    except Exception as exc:  # reported, and the other trials go on
        return "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _start_ray(address: str | None) -> Any:
    try:
        import ray
    except ImportError:
        raise MCATError("mcat sweep runs on Ray: pip install 'ray>=2.9'") from None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, private Ray
    # Ray starts its workers at niceness 15 by default; trials at 0 compete for the CPUs as the
    # same runs launched directly would (set RAY_worker_niceness to keep Ray's default)
    os.environ.setdefault("RAY_worker_niceness", "0")
    if address and address != "auto":
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            ray.init(
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise MCATError(f"cannot start {where}: {str(exc).splitlines()[0]}") from None
    return ray


def _check_reachable(address: str) -> None:
    """A one-line error for a cluster address nothing answers at (Ray itself retries for
    minutes)."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise MCATError(
            f"--address must be HOST:PORT (or ray://HOST:PORT, or auto), got {address!r}"
        )
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise MCATError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None


def run(
    spec: SweepSpec,
    out: Path,
    address: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Run every unfinished trial of ``spec`` under ``out`` on Ray; returns name -> "done" or the
    failed trial's error. Safe to stop at any moment and run again."""
    from mcat.validation import check_creatable_dir

    check_creatable_dir(out, "--out")
    trials = prepare(spec, out, write=False)
    failed = _failed(out)
    todo = [t for t in trials if not _finished(out, t, spec.experiment == "train")]
    log(
        f"sweep {spec.name}: {len(trials)} trials, {len(trials) - len(todo)} finished, "
        f"{len(todo)} to run ({spec.cpus} CPU{'s' * (spec.cpus > 1)} each)"
    )
    results = {t.name: "done" for t in trials if t not in todo}
    if not todo:
        prepare(spec, out)
        return results
    ray = _start_ray(address)
    prepare(spec, out)  # recorded once Ray is up: a failed start writes nothing
    pending: dict[Any, str] = {}
    previous = signal.getsignal(signal.SIGTERM)
    try:
        # a fresh worker process per trial (max_calls=1): torch's thread settings and memory
        # do not carry from one trial to the next
        remote = ray.remote(num_cpus=spec.cpus, num_gpus=spec.gpus, max_calls=1)(_run_trial)
        cache = str(Path(spec.cache) if spec.cache else out / "cache")
        pending.update(
            {
                remote.remote(spec.experiment, t.config, str(out / t.name), cache): t.name
                for t in todo
            }
        )
        started = time.monotonic()
        # SIGTERM (a cluster's scheduler, `timeout`) stops the sweep like Ctrl-C: Ray is shut
        # down, the trials keep their checkpoints, and the same command continues them
        previous = signal.signal(signal.SIGTERM, _interrupt)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(ready[0])
            state, message = ray.get(ready[0])
            if state == "done":
                failed.pop(name, None)
                results[name] = "done"
            else:
                failed[name] = results[name] = message
            _write_failed(out, failed)
            done = len(results)
            log(
                f"[{done}/{len(trials)}] {name}: {state}, {message} "
                f"({(time.monotonic() - started) / 60:.1f} min)"
            )
    except KeyboardInterrupt:
        raise MCATError(
            f"sweep stopped with {len(pending)} trial(s) unfinished; re-run the same command to "
            "continue them from their checkpoints"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        ray.shutdown()
    return results


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _write_failed(out: Path, failed: dict[str, str]) -> None:
    if failed:
        atomic_write_bytes(out / FAILED_FILE, (json.dumps(failed, indent=1) + "\n").encode())
    elif (out / FAILED_FILE).exists():
        (out / FAILED_FILE).unlink()


def iter_run_dirs(paths: list[Path]) -> Iterator[Path]:
    """Run folders named by ``paths``: a run folder itself, a sweep's trials, or every run
    folder below a folder."""
    for path in paths:
        if (path / "config.json").is_file():
            yield path
        elif (path / SWEEP_FILE).is_file():
            for name in json.loads((path / SWEEP_FILE).read_text())["trials"]:
                if (path / name / "config.json").is_file():
                    yield path / name
        elif path.is_dir():
            yield from sorted(p.parent for p in path.rglob("config.json"))
        else:
            raise MCATError(f"no such run or sweep folder: {path}")
