"""Meta-training loop: collect from the training tasks, train, evaluate on train and test tasks,
and write everything a run produces (see :mod:`mcat.runs`)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch

from mcat.agents.ctd3 import CTD3Agent
from mcat.algos import get_algo
from mcat.collect import Collector, EpisodeRecord, space_dims
from mcat.config import RunConfig, run_config_to_dict
from mcat.errors import MCATError, RunStopped
from mcat.evaluation import evaluate_agent, random_policy_returns  # noqa: F401 (re-exported)
from mcat.faults import install_fault_hooks
from mcat.replay import MultiTaskReplay
from mcat.runs import (
    CHECKPOINT_FORMAT,
    CONFIG,
    EPISODES,
    METRICS,
    SUMMARY,
    Checkpoint,
    CsvLog,
    RunDirLock,
    checkpoints_not_kept,
    discard_checkpoints_after,
    find_checkpoint,
    fmt_duration,
    from_saved,
    has_checkpoint_files,
    hold_run_dir,
    last_good_checkpoint,
    list_checkpoints,
    load_run_config,
    prepare_run_dir,
    stop_on_signals,
    to_saveable,
    write_checkpoint,
    write_json,
)
from mcat.tasks import TaskValue, get_family, task_key

# Config keys that may differ between a run and the one continuing it: the thread count can
# change the low bits of CPU float sums (a valid continuation, but not a bit-identical one); the
# vector mode and the progress interval change nothing computed.
_RESUMABLE_CHANGES = ("threads", "log_interval", "vector_envs")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_tasks(cfg: RunConfig) -> tuple[list[TaskValue], list[TaskValue]]:
    family = get_family(cfg.family)
    train = [family.check_task(v) for v in (cfg.train_tasks or family.train_tasks)]
    # an explicit empty list means "no test tasks" (single-task runs)
    test = [
        family.check_task(v)
        for v in (family.test_tasks if cfg.test_tasks is None else cfg.test_tasks)
    ]
    return train, test


def build_agent(cfg: RunConfig, obs_dim: int, act_dim: int, max_action: float) -> CTD3Agent:
    """The agent of ``cfg.algo`` (see :mod:`mcat.algos`)."""
    cls = get_algo(cfg.algo).agent
    extra: dict[str, Any] = {}
    if "train_tasks" in inspect.signature(cls).parameters:  # a part per training task
        extra["train_tasks"] = run_tasks(cfg)[0]  # checked: the values evaluation uses
    return cls(obs_dim, act_dim, cfg.agent, max_action=max_action, device=cfg.device, **extra)


def check_checkpoint_fits(ckpt: Checkpoint, cfg: RunConfig, resume: bool = True) -> None:
    """A one-line error when ``ckpt`` was not written by a run of ``cfg``'s algo and family or,
    with ``resume``, by a run with other settings, or holds no training state."""
    meta = ckpt.state.get("meta")
    if meta is None:
        if resume:
            raise MCATError(
                f"{ckpt.path} is an old checkpoint with networks only; "
                "it can be evaluated but not resumed"
            )
        return
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise MCATError(
            f"{ckpt.path} has checkpoint format {meta.get('format')!r}; "
            f"this mcat reads format {CHECKPOINT_FORMAT}"
        )
    if (meta["algo"], meta["family"]) != (cfg.algo, cfg.family):
        raise MCATError(
            f"checkpoint {ckpt.path} is from a {meta['algo']} run on {meta['family']}, "
            f"not this run's {cfg.algo} on {cfg.family}"
        )
    if not resume:
        return  # for evaluation, the networks' shapes are checked when they are loaded
    differ = [
        d
        for d in _differences(json.loads(meta["config"]), run_config_to_dict(cfg))
        if not (d[0] == "steps" and d[1] <= d[2])  # a budget raised since (extend_run)
    ]
    if differ:
        k, there, here = differ[0]
        raise MCATError(
            f"checkpoint {ckpt.path} was written with another config: {k} is {there!r} there "
            f"and {here!r} in {CONFIG}"
            + (f" ({len(differ) - 1} more differences)" if len(differ) > 1 else "")
        )


def extend_run(run_dir: Path, steps: int, log: Callable[[str], None] = print) -> None:
    """Raise the budget of the run in ``run_dir`` to ``steps`` env steps (``mcat train --resume
    DIR --steps N``): its config.json says ``steps`` and the summary of the old end is removed,
    so that resuming continues from the newest checkpoint to the new end. The continued run is
    the run a larger budget would have made from the start when the old end was on its
    evaluation and checkpoint schedules (a multiple of ``eval_every`` and ``checkpoint_every``;
    a finished run also evaluated and checkpointed there), as nothing else reads the budget
    (tests/test_resume.py); off the schedules its logs keep the old end's final evaluation."""
    run_dir = Path(run_dir)
    load_run_config(run_dir)  # its error first: no directory is held where no run is
    with hold_run_dir(run_dir):
        cfg = load_run_config(run_dir)
        if steps == cfg.steps:
            return
        if steps < cfg.steps:
            raise MCATError(
                f"--steps {steps:,} with --resume can only raise the run's budget "
                f"({cfg.steps:,} env steps in {run_dir / CONFIG})"
            )
        lost = checkpoints_not_kept(run_dir)
        if lost:
            raise MCATError(lost)
        longer = dataclasses.replace(cfg, steps=int(steps))
        longer.validate()
        # the summary first: a crash between the two writes leaves an unfinished run of the
        # old budget, which resumes as before
        (run_dir / SUMMARY).unlink(missing_ok=True)
        write_json(run_dir / CONFIG, run_config_to_dict(longer))
    log(f"{run_dir}: budget raised from {cfg.steps:,} to {steps:,} env steps")


def config_differences(saved: RunConfig, current: RunConfig) -> list[tuple[str, Any, Any]]:
    """(key, saved value, current value) for every setting in which two run configs differ,
    leaving out those a run may change when it continues (the thread count, the log interval)."""
    return _differences(run_config_to_dict(saved), run_config_to_dict(current))


def _differences(saved: dict, current: dict) -> list[tuple[str, Any, Any]]:
    a, b = _flat_config(saved), _flat_config(current)
    # keys both know (a key added to RunConfig later is not a difference)
    return [
        (k, a[k], b[k])
        for k in sorted(set(a) & set(b))
        if a[k] != b[k] and k not in _RESUMABLE_CHANGES
    ]


def _flat_config(data: dict, prefix: str = "") -> dict:
    data = json.loads(json.dumps(data))  # tuples as lists, as in the saved JSON
    out = {}
    for k, v in data.items():
        out.update(_flat_config(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def load_run_agent(run_dir: Path, policy_only: bool = True) -> tuple[RunConfig, CTD3Agent, dict]:
    """The agent of a saved run (its config, networks from the newest complete checkpoint, and
    that checkpoint's contents); a checkpoint that does not fit the config is a one-line error."""
    cfg = load_run_config(run_dir)
    ckpt = find_checkpoint(run_dir)
    check_checkpoint_fits(ckpt, cfg, resume=False)
    state = ckpt.state
    family = get_family(cfg.family)
    probe = family.make_env((cfg.train_tasks or family.train_tasks)[0], style=cfg.style)
    agent = build_agent(cfg, *space_dims(probe))
    probe.close()
    # an algorithm whose adaptation trains (MQL) needs all of its networks
    policy_only = policy_only and not getattr(agent, "adaptation_uses_replay", False)
    try:
        agent.load_state_dict(state["agent"], policy_only=policy_only)
    except (KeyError, RuntimeError) as exc:
        raise MCATError(
            f"checkpoint in {run_dir} does not fit its config: {str(exc).splitlines()[0]}"
        ) from None
    return cfg, agent, state


def load_run_replay(cfg: RunConfig, state: dict) -> MultiTaskReplay:
    """The training data saved in a checkpoint's ``state`` (for an adaptation that uses it: MQL's);
    a one-line error when the run saved no replay contents (``checkpoint_replay: false``)."""
    saved = from_saved(state["data"]["replay"])
    if "arrays" not in saved:
        raise MCATError(
            f"{cfg.algo}'s adaptation trains on the run's replay, and this run's checkpoints "
            "hold none (checkpoint_replay is false); evaluate it while training instead"
        )
    tasks, capacity, obs_dim, act_dim = saved["shape"]
    replay = MultiTaskReplay(
        tasks, obs_dim, act_dim, capacity, gamma=cfg.agent.gamma, seed=cfg.seed
    )
    replay.load_state_dict(saved)
    return replay


def summarize(
    cfg: RunConfig, step: int, train: dict[TaskValue, float], test: dict[TaskValue, float]
) -> dict:
    per_task = {task_key(v): {"split": "train", "return": r} for v, r in train.items()}
    per_task.update({task_key(v): {"split": "test", "return": r} for v, r in test.items()})
    return {
        "algo": cfg.algo,
        "family": cfg.family,
        "steps": step,
        "seed": cfg.seed,
        "reward_delay": cfg.reward_delay,
        "train_return": float(np.mean(list(train.values()))),
        "test_return": float(np.mean(list(test.values()))) if test else None,
        "per_task": per_task,
    }


@contextmanager
def announced_warmup(log: Callable[[str], None], step: int, what: str | None) -> Iterator[None]:
    """Around the first gradient steps: say that learning starts with the model warm-up
    ``what`` (minutes on a CPU, which would otherwise look like a stall), then how long it took;
    nothing when ``what`` is None."""
    if what is None:
        yield
        return
    log(f"step {step:,}: learning starts with the model warm-up ({what})")
    start = time.perf_counter()
    yield
    log(f"  warm-up done in {fmt_duration(time.perf_counter() - start)}")


class Trainer:
    """One run: set-up, the collect-and-learn iteration, evaluation, checkpoints and the files it
    writes.

    ``run()`` goes to the end; ``iterate()`` does one collection step in every running
    environment and the gradient steps it earns (benchmarks time exactly this).
    ``Trainer.resume(DIR)`` continues a run from its newest complete checkpoint, and
    ``Trainer.start_or_resume(cfg, DIR)`` does that when DIR holds the same run, else starts it.

    A checkpoint holds :meth:`state_dict`: ``agent`` (networks, optimisers, normalisers and
    counters, tensors), ``rng_torch`` (torch generators) and ``data`` (NumPy/Python: replay,
    collector with every environment's state, trainer counters and generator, Python and NumPy
    generators, CSV lengths) and ``data["pt"]``, the algorithm's collection state when it has
    one (MCAT with policy transfer: the rule's history and each slot's current choice; the key
    keeps its old name so that older checkpoints resume). An algorithm with more state extends
    :meth:`state_dict` and :meth:`load_state_dict` in a subclass, adding its own key under
    ``data`` (or a key of tensors at the top).
    """

    def __init__(
        self,
        cfg: RunConfig,
        out: Path,
        overwrite: bool = False,
        log: Callable[[str], None] = print,
        *,
        checkpoint: Checkpoint | None = None,
    ):
        cfg.validate()
        if cfg.fast and type(self) is Trainer:
            raise MCATError(
                "this run is on the fast path (fast: true): run it with mcat.train.train, "
                "mcat.seeds.SeedGroup or `mcat train` (--resume DIR continues it)"
            )
        self.cfg, self.out, self.log = cfg, Path(out), log
        # refused before anything is written when another process writes this run
        self._hold: RunDirLock | None = hold_run_dir(self.out)
        try:
            self._setup(overwrite, checkpoint)
        except BaseException:
            self._release(failed=True)
            raise

    def _setup(self, overwrite: bool, checkpoint: Checkpoint | None) -> None:
        cfg = self.cfg
        self.train_tasks, self.test_tasks = run_tasks(cfg)
        if checkpoint is None:
            prepare_run_dir(self.out, cfg, overwrite)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.deterministic:
            # read when cuBLAS first starts
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        seed_everything(cfg.seed)
        family = get_family(cfg.family)
        self.collector = Collector(
            family,
            self.train_tasks,
            cfg.agent.history,
            reward_delay=cfg.reward_delay,
            seed=cfg.seed,
            style=cfg.style,
            envs_per_round=cfg.envs_per_round,
            schedule=cfg.schedule,
            max_episode_steps=cfg.max_episode_steps,
            vector_envs=cfg.vector_envs,
        )
        T = len(self.train_tasks)
        self.episode_len = cfg.max_episode_steps or family.max_episode_steps
        capacity = min(cfg.replay_capacity, cfg.steps // T + self.episode_len + 2)
        col = self.collector
        self.replay = self._make_replay(T, col.obs_dim, col.act_dim, capacity)
        self.agent = build_agent(cfg, col.obs_dim, col.act_dim, col.max_action)
        # the algorithm's own part of collection (MCAT: which policy collects each episode)
        self.agent.start_collection(self.train_tasks, col.n, cfg.learning_starts)
        self.rng = np.random.default_rng(cfg.seed + 1)
        self.credit = 0.0  # gradient steps earned and not yet done
        self.metrics: dict[str, float] = {}
        self.next_eval, self.next_ckpt = cfg.eval_every, cfg.checkpoint_every
        self.last_eval: tuple[int, dict[TaskValue, float], dict[TaskValue, float]] | None = None
        self.wall_time = 0.0  # seconds spent in earlier sessions of this run
        # after resuming without replay contents: no learning before this step
        self.refill_until = 0
        self.checkpoint_step = -1
        self.last_episode_step = 0  # for the progress line only
        self._session_start = time.perf_counter()
        self._log_offsets: dict[str, int] = {}
        if checkpoint is not None:
            self.load_state_dict(checkpoint.state)
            self.checkpoint_step = checkpoint.step
        try:
            self._open_outputs(checkpoint)
        except OSError as exc:
            raise MCATError(
                f"cannot write to the run directory {self.out}: {exc.strerror or exc}"
            ) from None
        install_fault_hooks(self)  # tests only: nothing happens unless their variables are set

    def _make_replay(
        self, tasks: int, obs_dim: int, act_dim: int, capacity: int
    ) -> MultiTaskReplay:
        return MultiTaskReplay(
            tasks, obs_dim, act_dim, capacity, gamma=self.cfg.agent.gamma, seed=self.cfg.seed
        )

    def _open_outputs(self, checkpoint: Checkpoint | None) -> None:
        if checkpoint is not None:
            gone = discard_checkpoints_after(self.out, checkpoint.step)
            if gone:
                self.log(f"removed files written after {checkpoint.path.name}: {', '.join(gone)}")
        self.metrics_log = CsvLog(
            self.out / METRICS, ["step", "task", "split", "return"], self._log_offsets.get(METRICS)
        )
        self.episodes_log = CsvLog(
            self.out / EPISODES,
            ["step", "task", "return", "length"],
            self._log_offsets.get(EPISODES),
        )
        # the algorithm's extra logs (MCAT: transfer.csv and transfer_summary.csv)
        self.extra_logs = {
            name: CsvLog(self.out / name, columns, self._log_offsets.get(name))
            for name, columns in self.agent.log_files().items()
        }
        from torch.utils.tensorboard import SummaryWriter

        # purge_step hides events the killed session logged after the checkpoint (TensorBoard
        # still finds them in the older event file; see README, Resuming runs)
        self.tb = SummaryWriter(
            str(self.out / "tb"), purge_step=self.env_steps if checkpoint is not None else None
        )

    @classmethod
    def resume(cls, run_dir: Path, log: Callable[[str], None] = print, **extra: Any) -> Trainer:
        """The run in ``run_dir`` (its config.json), continued from its newest complete
        checkpoint: incomplete or corrupt newer checkpoint files are passed over and removed, and
        CSV rows written after the checkpoint are dropped."""
        run_dir = Path(run_dir)
        cfg = load_run_config(run_dir)  # its error first: no directory is held where no run is
        with hold_run_dir(run_dir):  # held before a damaged checkpoint file is removed
            return cls._resume(run_dir, cfg, log, **extra)

    @classmethod
    def _resume(
        cls, run_dir: Path, cfg: RunConfig, log: Callable[[str], None], **extra: Any
    ) -> Trainer:
        if not has_checkpoint_files(run_dir):
            lost = checkpoints_not_kept(run_dir)  # starting again would replace its logs
            if lost:
                raise MCATError(lost)
            # stopped (or failed) before its first checkpoint: nothing to continue from, and the
            # same config and seed give the same run, so it starts again
            log(
                f"{run_dir} has no checkpoint yet: starting the run again from step 0 "
                f"with its {CONFIG}"
            )
            return cls(cfg, run_dir, overwrite=True, log=log, **extra)
        ckpt = find_checkpoint(run_dir, log=log)
        check_checkpoint_fits(ckpt, cfg)
        return cls(cfg, run_dir, log=log, checkpoint=ckpt, **extra)

    @classmethod
    def open(
        cls,
        cfg: RunConfig,
        out: Path,
        overwrite: bool = False,
        log: Callable[[str], None] = print,
        **extra: Any,
    ) -> Trainer:
        """``cfg`` as a new run in ``out``; when ``out`` already holds this same run (same
        config, the thread count aside) it is continued (or started again when it has no
        checkpoint), so re-running a command carries on where it stopped. Another run there is
        refused unless ``overwrite``."""
        out = Path(out)
        cfg.validate()
        if overwrite or not (out / CONFIG).is_file():
            return cls(cfg, out, overwrite, log, **extra)
        try:
            saved = load_run_config(out)
        except MCATError as exc:
            raise MCATError(
                f"output directory {out} holds an unreadable run ({exc}); "
                "pass --overwrite to replace it or choose another --out"
            ) from None
        differ = config_differences(saved, cfg)
        if differ:
            k, there, here = differ[0]
            longer = (
                f"; to train that run on to {here:,} env steps: mcat train --resume {out} "
                f"--steps {here}"
                if [k for k, _, _ in differ] == ["steps"] and here > there
                else ""
            )
            raise MCATError(
                f"output directory {out} already holds another run ({k} is {there!r} there, "
                f"{here!r} here); pass --overwrite to replace it or choose another --out{longer}"
            )
        if (out / SUMMARY).is_file() and has_checkpoint_files(out):  # else resume says why not
            log(f"{out} already holds this run, finished: showing its final evaluation")
        elif has_checkpoint_files(out):
            log(f"{out} already holds this run: continuing it")
        return cls.resume(out, log, **extra)

    @classmethod
    def start_or_resume(
        cls, cfg: RunConfig, out: Path, log: Callable[[str], None] = print
    ) -> Trainer:
        """Resume the run in ``out`` when it is this run (same config) and has a checkpoint; start
        it afresh in ``out`` (replacing what is there) otherwise."""
        out = Path(out)
        if (out / CONFIG).is_file() and list_checkpoints(out):
            try:
                if not config_differences(load_run_config(out), cfg):
                    return cls.resume(out, log)
                log(f"{out} holds a run with other settings; starting afresh")
            except MCATError as exc:
                log(f"cannot resume {out} ({exc}); starting afresh")
        return cls(cfg, out, overwrite=True, log=log)

    @property
    def env_steps(self) -> int:
        return self.collector.env_steps

    def policy(self, obs: np.ndarray, col: Collector) -> np.ndarray:
        if col.env_steps < self.cfg.learning_starts:
            return self.rng.uniform(-col.max_action, col.max_action, size=(col.n, col.act_dim))
        return self.agent.act_collect(
            col.act_input(obs), self.cfg.agent.exploration_noise, self.rng
        )

    def iterate(self) -> None:
        self.collect(self.policy)
        steps = self.due_gradient_steps()
        if not steps:
            return
        what = self.agent.warmup_description() if self.agent.rl_steps == 0 else None
        with announced_warmup(self.log, self.env_steps, what):
            for _ in range(steps):
                self.metrics = self.agent.train_step(self.replay)
                if not math.isfinite(sum(self.metrics.values())):  # one check of a few floats
                    self._non_finite_loss(self.env_steps)

    def collect(self, policy: Callable[[np.ndarray, Collector], np.ndarray]) -> None:
        """One step in every running environment, and the logs of the episodes that ended."""
        self.collect_send(policy)
        self.collect_receive()

    def collect_send(self, policy: Callable[[np.ndarray, Collector], np.ndarray]) -> None:
        """:meth:`collect`'s first half: the actions sent (see :meth:`Collector.step_send`)."""
        self.collector.step_send(self.replay, policy)

    def collect_receive(self) -> None:
        """:meth:`collect`'s second half: the transitions stored, the episodes logged."""
        self.after_collect(self.collector.step_receive())

    def after_collect(self, finished: list[EpisodeRecord]) -> None:
        """After each collection step: the episodes that ended in it logged (and told to the
        agent)."""
        cfg = self.cfg
        step = self.env_steps
        if not finished:
            return
        self.episodes_log.write(
            [[step, task_key(self.train_tasks[e.task]), e.ret, e.length] for e in finished]
        )
        for e in finished:
            self.tb.add_scalar(
                f"train_episode/task_{task_key(self.train_tasks[e.task])}", e.ret, step
            )
        learning = step >= cfg.learning_starts
        rows: dict[str, list[list]] = {}
        for e in finished:
            next_task = int(self.collector.slot_task[e.slot])
            for name, new in self.agent.episode_ended(
                e.task, e.slot, e.ret, next_task, step, learning
            ).items():
                rows.setdefault(name, []).extend(new)
        self._write_extra(rows)
        self.last_episode_step = step

    def _write_extra(self, rows: dict[str, list[list]]) -> None:
        """Rows an algorithm gives for its extra log files."""
        for name, new in rows.items():
            if name not in self.extra_logs:
                raise MCATError(f"algo {self.cfg.algo} wrote to {name}, not among its log_files()")
            self.extra_logs[name].write(new)

    def due_gradient_steps(self) -> int:
        """The gradient steps the last collection step earned (none before learning starts,
        while some training task has no data yet, or while the replay refills)."""
        cfg, step = self.cfg, self.env_steps
        if step < cfg.learning_starts or (self.refill_until and not self._refilled(step)):
            return 0
        if not self.replay.size.all():  # fewer slots than tasks, tasks drawn at random: every
            return 0  # batch holds every task, so learning waits for each one's first episode
        self.credit += self.collector.n * cfg.utd / len(self.train_tasks)
        steps = 0
        while self.credit >= 1.0:
            self.credit -= 1.0
            steps += 1
        return steps

    def phase(self) -> str:
        """What the run is doing now, for the progress line."""
        if self.env_steps < self.cfg.learning_starts:
            return "random actions"
        if self.refill_until:
            return "refilling the replay"
        return "learning" if self.replay.size.all() else "waiting for every task's first data"

    def _refilled(self, step: int) -> bool:
        if step < self.refill_until or not self.replay.size.all():
            return False
        self.refill_until = 0
        return True

    def _fault(self, what: str, step: int) -> MCATError:
        return MCATError(
            f"{what} at env step {step:,}; stopped without writing a checkpoint, "
            f"{last_good_checkpoint(self.out)} (mcat train --resume {self.out})"
        )

    def _non_finite_loss(self, step: int) -> None:
        bad = [f"{k} = {v}" for k, v in self.metrics.items() if not math.isfinite(v)]
        if bad:  # else a sum of large finite values overflowed: nothing is wrong
            raise self._fault(
                f"non-finite loss {', '.join(bad)} (gradient step {self.agent.rl_steps:,})", step
            )

    def check_parameters(self) -> None:
        """Every network parameter and normaliser statistic is finite (checked before each
        checkpoint is written, so a checkpoint never holds NaN or inf)."""
        for name, module in self.agent.modules().items():
            if isinstance(module, torch.nn.Module):
                for pname, tensor in (*module.named_parameters(), *module.named_buffers()):
                    if not torch.isfinite(tensor).all():
                        raise self._fault(f"non-finite parameter {name}.{pname}", self.env_steps)

    def evaluate(self) -> tuple[dict[TaskValue, float], dict[TaskValue, float]]:
        step = self.env_steps
        # one lockstep evaluation for both splits (seeds depend on the task value, not the call)
        returns = evaluate_agent(
            self.agent, self.cfg, self.train_tasks + self.test_tasks, self.replay
        )
        tr = {v: returns[v] for v in self.train_tasks}
        te = {v: returns[v] for v in self.test_tasks}
        rows = [[step, task_key(v), "train", r] for v, r in tr.items()] + [
            [step, task_key(v), "test", r] for v, r in te.items()
        ]
        self.metrics_log.write(rows)
        for split, res in (("train", tr), ("test", te)):
            for v, r in res.items():
                self.tb.add_scalar(f"eval_{split}/task_{task_key(v)}", r, step)
            if res:
                self.tb.add_scalar(f"eval/{split}_mean", float(np.mean(list(res.values()))), step)
        test = f", test {np.mean(list(te.values())):.1f}" if te else ""
        extra_rows, scalars, extra = self.agent.evaluation_report(step)
        self._write_extra(extra_rows)
        for tag, value in scalars.items():
            self.tb.add_scalar(tag, value, step)
        self.log(f"  eval @ {step:,}: train {np.mean(list(tr.values())):.1f}{test}{extra}")
        return tr, te

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly (see the class docstring)."""
        rng_torch: dict[str, torch.Tensor | list[torch.Tensor]] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng_torch["cuda"] = torch.cuda.get_rng_state_all()
        state = {
            "agent": self.agent.state_dict(),
            "rng_torch": rng_torch,
            "data": {
                "replay": self.replay.state_dict(contents=self.cfg.checkpoint_replay),
                "collector": self.collector.state_dict(),
                "trainer": {
                    "rng": self.rng.bit_generator.state,
                    "credit": self.credit,
                    "metrics": dict(self.metrics),
                    "next_eval": self.next_eval,
                    "next_ckpt": self.next_ckpt,
                    "last_eval": self.last_eval,
                    "wall_time": self.wall_time + time.perf_counter() - self._session_start,
                    "refill_until": self.refill_until,
                },
                "rng": {"python": random.getstate(), "numpy": np.random.get_state(legacy=False)},
                "logs": {METRICS: self.metrics_log.tell(), EPISODES: self.episodes_log.tell()},
            },
        }
        collection = self.agent.collection_state()
        if collection is not None:  # MCAT's policy transfer (under its old key, "pt")
            state["data"]["pt"] = collection
        state["data"]["logs"].update({name: log.tell() for name, log in self.extra_logs.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (called before the CSV logs are opened)."""
        self.agent.load_state_dict(state["agent"])
        data = from_saved(state["data"])
        self.collector.load_state_dict(data["collector"])
        self.agent.load_collection_state(data.get("pt"))
        self.replay.load_state_dict(data["replay"])
        if (
            "arrays" not in data["replay"]
        ):  # collect afresh (with the current policy) before learning again
            self.refill_until = self.env_steps + max(
                self.cfg.learning_starts, self.episode_len * len(self.train_tasks)
            )
        t = data["trainer"]
        self.rng.bit_generator.state = t["rng"]
        self.credit, self.metrics = float(t["credit"]), dict(t["metrics"])
        self.next_eval, self.next_ckpt, self.wall_time = (
            int(t["next_eval"]),
            int(t["next_ckpt"]),
            float(t["wall_time"]),
        )
        self.last_eval = tuple(t["last_eval"]) if t["last_eval"] is not None else None
        self.refill_until = max(self.refill_until, int(t["refill_until"]))
        random.setstate(data["rng"]["python"])
        np.random.set_state(data["rng"]["numpy"])
        torch.set_rng_state(state["rng_torch"]["cpu"])
        if "cuda" in state["rng_torch"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_torch"]["cuda"])
        self._log_offsets = dict(data["logs"])

    def checkpoint(self) -> None:
        """Write the checkpoint of the current step (once per step), after checking that every
        parameter is finite."""
        step, cfg = self.env_steps, self.cfg
        if step == self.checkpoint_step:
            return
        self.check_parameters()
        meta = {
            "format": CHECKPOINT_FORMAT,
            "env_steps": step,
            "algo": cfg.algo,
            "family": cfg.family,
            "train_tasks": list(self.train_tasks),
            "replay": cfg.checkpoint_replay,
            "config": json.dumps(run_config_to_dict(cfg), sort_keys=True),
        }
        path, size = write_checkpoint(
            self.out, step, {"env_steps": step, **to_saveable(self.state_dict())}, meta
        )
        self.checkpoint_step = step
        self.log(
            f"  checkpoint @ {step:,}: {path.name}, {size / 1e6:.1f} MB "
            f"({'replay included' if cfg.checkpoint_replay else 'replay left out'})"
        )

    def _progress(self, rate: float) -> None:
        """A progress line; ``rate`` is measured within the current phase, so the time left
        comes from what the run does now (learning is far slower than random actions)."""
        cfg, col, step = self.cfg, self.collector, self.env_steps
        phase = self.phase()
        if phase == "random actions":
            left = f"learning starts at step {cfg.learning_starts:,}"
            left += f" (in {fmt_duration((cfg.learning_starts - step) / max(rate, 1e-9))})"
        else:
            left = f"ETA {fmt_duration((cfg.steps - step) / max(rate, 1e-9))}"
        recent = ", ".join(
            f"{task_key(self.train_tasks[t])}: {np.mean(col.recent_returns[t][-3:]):.0f}"
            for t in sorted(col.recent_returns)
        )
        episodes = "no episode finished yet"
        if recent:
            at = (
                f" (last ended at step {self.last_episode_step:,})"
                if self.last_episode_step
                else ""
            )
            episodes = f"episode returns{at} {recent}"
        self.log(
            f"step {step:,}/{cfg.steps:,} ({100 * step / cfg.steps:.0f}%) | {phase} | "
            f"{rate:.0f} steps/s | {left} | {episodes}"
        )
        for k, v in self.metrics.items():
            self.tb.add_scalar(k, v, step)
        self.tb.add_scalar("perf/steps_per_s", rate, step)

    @overload
    def run(self, stop_at: None = None) -> dict: ...  # runs to cfg.steps: always the summary

    @overload
    def run(self, stop_at: int) -> dict | None: ...

    def run(self, stop_at: int | None = None) -> dict | None:
        """Train to ``cfg.steps``, evaluating and checkpointing on schedule; returns the summary.
        With ``stop_at``, stop (with a checkpoint) once that many env steps are done and return
        None: the run continues later with :meth:`resume`. SIGTERM or Ctrl-C stops it the same
        way after the current iteration and raises :class:`~mcat.errors.RunStopped`
        (:func:`~mcat.runs.stop_on_signals`)."""
        try:
            return self._run(
                self.cfg, self.cfg.steps if stop_at is None else min(stop_at, self.cfg.steps)
            )
        except (
            OSError
        ) as exc:  # writes not already turned into a one-line error (TensorBoard's, say)
            raise MCATError(
                f"cannot write to the run directory {self.out}: {exc.strerror or exc}; "
                f"{last_good_checkpoint(self.out)}"
            ) from None
        finally:
            self.close()

    def _run(self, cfg: RunConfig, stop_at: int) -> dict | None:
        clock = self.start_loop()
        with stop_on_signals() as stop:  # SIGTERM, Ctrl-C: stop after this iteration, saved
            while self.env_steps < stop_at and not stop:
                self.iterate()
                self.after_iterate(clock)
            summary = self.finish()
        if stop.signum is not None and self.env_steps < stop_at:
            raise RunStopped(stop.signum, f"env step {self.env_steps:,}", self.out)
        return summary

    def start_loop(self) -> list:
        """Say what starts; the progress clock that :meth:`after_iterate` keeps."""
        cfg = self.cfg
        if self.checkpoint_step >= 0:
            self.log(
                f"resuming {cfg.algo} on {cfg.family} from env step {self.env_steps:,} "
                f"of {cfg.steps:,} -> {self.out}"
            )
        else:
            self.log(
                f"training {cfg.algo} on {cfg.family}: train tasks {self.train_tasks}, "
                f"test tasks {self.test_tasks}, "
                f"{cfg.steps:,} env steps, reward delay {cfg.reward_delay}, "
                f"seed {cfg.seed} -> {self.out}"
            )
        self._session_start = time.perf_counter()
        return [self.phase(), self._session_start, self.env_steps]

    def after_iterate(self, clock: list) -> None:
        """Evaluation, checkpoint and progress line when they are due; ``clock`` is
        [phase, time and step of the last progress line]."""
        cfg, step = self.cfg, self.env_steps
        if self.phase() != clock[0]:  # a new phase's rate starts now (after any warm-up)
            clock[:] = [self.phase(), time.perf_counter(), step]
        paused = time.perf_counter()
        if step >= self.next_eval:
            while self.next_eval <= step:
                self.next_eval += cfg.eval_every
            self.last_eval = (step, *self.evaluate())
        if step >= self.next_ckpt:
            while self.next_ckpt <= step:
                self.next_ckpt += cfg.checkpoint_every
            self.checkpoint()
        now = time.perf_counter()
        clock[1] += now - paused  # the rate (and ETA) is of training, evaluations left out
        if now - clock[1] >= cfg.log_interval:
            self._progress((step - clock[2]) / (now - clock[1]))
            clock[1:] = [now, step]

    def finish(self) -> dict | None:
        """After the loop: a checkpoint, and at the end of the run the final evaluation and the
        summary (returned; None when the run stopped early)."""
        cfg, step = self.cfg, self.env_steps
        if step < cfg.steps:
            self.checkpoint()
            return None
        if self.last_eval is None or self.last_eval[0] != step:
            self.last_eval = (step, *self.evaluate())
        self.checkpoint()
        wall = self.wall_time + time.perf_counter() - self._session_start
        summary = summarize(cfg, step, self.last_eval[1], self.last_eval[2])
        summary.update(wall_time_s=wall, env_steps_per_s=step / wall)
        write_json(self.out / SUMMARY, summary)
        return summary

    def close(self) -> None:
        self.collector.close()
        self.tb.close()
        for log in (self.metrics_log, self.episodes_log, *self.extra_logs.values()):
            log.close()
        self._release()

    def _release(self, failed: bool = False) -> None:
        if self._hold is not None:
            self._hold.release(failed)
            self._hold = None


def train(
    cfg: RunConfig, out: Path, overwrite: bool = False, log: Callable[[str], None] = print
) -> dict:
    """Run ``cfg`` and write its outputs under ``out`` (continuing it when ``out`` holds this
    run, see :meth:`Trainer.open`); returns the summary. ``cfg.fast`` runs it on the fast path
    (:class:`mcat.seeds.SeedGroup` with one seed)."""
    if cfg.fast:
        from mcat.seeds import SeedGroup

        summary = SeedGroup(cfg, [cfg.seed], out, overwrite, log).run()[0]
        assert summary is not None
        return summary
    return Trainer.open(cfg, out, overwrite, log).run()
