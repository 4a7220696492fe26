"""The fast path's training loop: one run, or several seeds of one run, in one process.

Each seed is an ordinary :class:`Trainer` (its own collector and environments, exploration and
schedule generators, policy-transfer rule, logs, evaluation, checkpoints and run directory),
except that its replay is its rows of one :class:`DeviceReplay`, its collector steps as a row of
one :class:`CollectorGroup` (a round's transitions stored, contexts pushed and episodes counted
for all seeds at once) and its gradient steps are done for all seeds at once by one
:class:`FastLearner`. All seeds advance in lockstep: each
iteration computes every seed's actions in one call, steps every seed's environments, then does
the gradient steps they earned (the same number for every seed).

Several seeds write one directory each, ``OUT/seed<S>``, which holds exactly what a fast run of
that seed alone writes (``mcat train --fast --seed S``): the seeds share no random stream. A run
killed at any moment continues when the same command is run again; seeds whose newest
checkpoint is ahead of the others' are taken back to the newest step that all seeds have.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mcat.agents.fast import FastLearner
from mcat.collect import CollectorGroup
from mcat.config import RunConfig
from mcat.errors import MCATError, RunStopped
from mcat.policies import exploration_noise
from mcat.replay.device import DeviceReplay, SeedReplay
from mcat.runs import (
    CONFIG,
    discard_checkpoints_after,
    hold_run_dir,
    last_good_checkpoint,
    list_checkpoints,
    load_run_config,
    stop_on_signals,
)
from mcat.tasks import TaskValue
from mcat.train import Trainer, announced_warmup, config_differences
from mcat.validation import check_distinct


class SeedTrainer(Trainer):
    """One seed of a :class:`SeedGroup` (see the module docstring)."""

    def __init__(self, *args, group: SeedGroup, index: int, **kwargs):
        self.group, self.index = group, index
        self.saved_generator: torch.Tensor | None = None
        super().__init__(*args, **kwargs)

    def _make_replay(self, tasks: int, obs_dim: int, act_dim: int, capacity: int) -> SeedReplay:
        return self.group.replay_view(
            self.index, tasks, obs_dim, act_dim, capacity, self.cfg.agent.gamma
        )

    def state_dict(self) -> dict:
        self.group.sync()
        state = super().state_dict()
        state["fast_rng"] = self.group.generators[self.index].get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.saved_generator = state.get("fast_rng")

    def checkpoint(self) -> None:
        self.group.sync()  # the parameters checked for NaN and saved are the learner's
        super().checkpoint()

    def evaluate(self) -> tuple[dict[TaskValue, float], dict[TaskValue, float]]:
        self.group.sync()
        return super().evaluate()

    def _progress(self, rate: float) -> None:
        if self.group.learner is not None:
            self.metrics = self.group.learner.metrics(self.index)
        super()._progress(rate)


def seed_group(out: Path) -> tuple[RunConfig, list[int]] | None:
    """The config (of its first seed) and the seeds of the ``--seeds`` group whose runs are
    ``out/seed<S>`` (None when ``out`` is a run itself or holds no seed runs): what ``mcat train
    --resume OUT`` continues. Runs that are not one group (other settings, fewer than two) are a
    one-line error that names the way on."""
    out = Path(out)
    if (out / CONFIG).is_file() or not out.is_dir():
        return None
    found = {
        int(d.name[4:]): d
        for d in out.glob("seed*")
        if d.name[4:].isdigit() and (d / CONFIG).is_file()
    }
    if not found:
        return None
    seeds = sorted(found)
    if len(seeds) == 1:
        raise MCATError(
            f"{out} holds the run of one seed only: mcat train --resume {found[seeds[0]]}"
        )
    cfgs = {s: load_run_config(found[s]) for s in seeds}
    first = cfgs[seeds[0]]
    for s in seeds[1:]:
        differ = config_differences(dataclasses.replace(cfgs[s], seed=first.seed), first)
        if differ or cfgs[s].seed != s or not cfgs[s].fast:
            what = f"{differ[0][0]} differs" if differ else "it is not a fast run of that seed"
            raise MCATError(
                f"{found[s]} is not a seed of the group in {out} ({what}): resume each run "
                f"alone with mcat train --resume DIR"
            )
    return first, seeds


def common_checkpoint_step(dirs: list[Path]) -> int | None:
    """The newest checkpoint step that every run directory has (None if one has none)."""
    steps = [{s for s, _ in list_checkpoints(d)} for d in dirs]
    shared = set.intersection(*steps) if steps else set()
    return max(shared) if shared else None


class SeedGroup:
    """Seeds ``seeds`` of ``cfg`` trained together; one run directory each (``out`` itself for
    one seed, ``out/seed<S>`` for several)."""

    def __init__(
        self,
        cfg: RunConfig,
        seeds: list[int],
        out: Path,
        overwrite: bool = False,
        log: Callable[[str], None] = print,
        resume: bool = False,
    ):
        check_distinct("seeds", [int(s) for s in seeds], "seed")
        cfg = dataclasses.replace(cfg, fast=True)
        cfg.validate()
        self.seeds = seeds
        self.log = log
        self.device = torch.device(cfg.device)
        self.generators = [torch.Generator(self.device).manual_seed(int(s)) for s in seeds]
        self.store: DeviceReplay | None = None
        self.learner: FastLearner | None = None
        self.pending = 0  # gradient steps earned and not yet run (act_ahead)
        out = Path(out)
        dirs = [out] if len(seeds) == 1 else [out / f"seed{s}" for s in seeds]
        with contextlib.ExitStack() as held:
            # every seed's directory held before _align removes any checkpoint
            for d in dirs:
                held.enter_context(hold_run_dir(d))
            self.trainers: list[SeedTrainer] = []
            try:
                self._open(cfg, seeds, dirs, overwrite, resume)
            except BaseException:
                for tr in self.trainers:  # their environments closed, their holds dropped
                    tr.close()
                raise

    def _open(
        self, cfg: RunConfig, seeds: list[int], dirs: list[Path], overwrite: bool, resume: bool
    ) -> None:
        log = self.log
        if not resume and not overwrite:
            self._align(cfg, seeds, dirs)
        for i, (s, d) in enumerate(zip(seeds, dirs, strict=True)):
            seed_log = log if len(seeds) == 1 else (lambda m, s=s: log(f"[seed {s}] {m}"))
            c = dataclasses.replace(cfg, seed=int(s), fast=True)
            if resume:
                tr = SeedTrainer.resume(d, log=seed_log, group=self, index=i)
            else:
                tr = SeedTrainer.open(c, d, overwrite, seed_log, group=self, index=i)
            assert isinstance(tr, SeedTrainer)
            self.trainers.append(tr)
        steps = {tr.env_steps for tr in self.trainers}
        if len(steps) > 1:
            raise MCATError(
                f"the seeds' runs are at different env steps {sorted(steps)}: continue each "
                "alone with mcat train --resume DIR, or start them again with --overwrite"
            )
        for tr, gen in zip(self.trainers, self.generators, strict=True):
            if tr.saved_generator is not None:
                gen.set_state(tr.saved_generator)
        assert self.store is not None
        self.store.flush()
        self.collectors = CollectorGroup([tr.collector for tr in self.trainers], self.store)
        self.learner = FastLearner(
            [tr.agent for tr in self.trainers],
            self.store,
            self.generators,
            log=log,
            compile=cfg.compile,
        )

    def _align(self, cfg: RunConfig, seeds: list[int], dirs: list[Path]) -> None:
        """Take seeds whose checkpoints are ahead back to the newest step all seeds have, so
        that they continue in lockstep (a run killed while writing its seeds' checkpoints).
        Only when every directory holds this same run: anything else is left to
        :meth:`Trainer.open` to continue or refuse."""
        if len(dirs) < 2 or not all((d / CONFIG).is_file() for d in dirs):
            return
        for s, d in zip(seeds, dirs, strict=True):
            try:
                if config_differences(
                    load_run_config(d), dataclasses.replace(cfg, seed=int(s), fast=True)
                ):
                    return
            except MCATError:
                return
        step = common_checkpoint_step(dirs)
        if step is None:
            return
        for d in dirs:
            gone = discard_checkpoints_after(d, step)
            if gone:
                self.log(
                    f"{d}: back to the checkpoint at step {step:,} (removed {', '.join(gone)})"
                )

    def replay_view(
        self, index: int, tasks: int, obs_dim: int, act_dim: int, capacity: int, gamma: float
    ) -> SeedReplay:
        """Seed ``index``'s rows of the shared device replay (made by the first seed's call)."""
        if self.store is None:
            self.store = DeviceReplay(
                len(self.seeds), tasks, obs_dim, act_dim, capacity, gamma, self.device
            )
        return self.store.views[index]

    def sync(self) -> None:
        """The agents' parameters brought up to date, every gradient step earned run first."""
        if self.learner is not None:
            self._learn()
            self.learner.sync_to_agents()

    # ------------------------------------------------------------------ the loop
    @property
    def env_steps(self) -> int:
        return self.trainers[0].env_steps

    def iterate(self) -> None:
        trs = self.trainers
        assert self.learner is not None and self.store is not None
        cfg = trs[0].cfg
        # every seed's actions go out before any seed's results are read: with
        # vector_envs async or worker all seeds' environments step at once, in their processes
        if self.env_steps >= cfg.learning_starts:
            sources = np.stack([self._sources(tr) for tr in trs])
            self.collectors.send(self._explore(self._actions(sources), sources >= 0))
        else:
            for tr in trs:
                tr.collect_send(tr.policy)
        # act_ahead: the last round's gradient steps go to the GPU now, and run while the
        # environments step (the replay's writes below wait for them)
        self._learn()
        for tr, finished in zip(trs, self.collectors.receive(), strict=True):
            tr.after_collect(finished)
        self.store.flush()
        due = [tr.due_gradient_steps() for tr in trs]  # the same for every seed
        self.pending += due[0]
        if not cfg.act_ahead:
            self._learn()

    def _learn(self) -> None:
        """Run the gradient steps earned so far (on CUDA: launch them)."""
        steps, self.pending = self.pending, 0
        if not steps:
            return
        assert self.learner is not None and self.store is not None
        what = None
        if self.learner.rl_steps == 0:
            empty = [
                s for s, v in zip(self.seeds, self.store.views, strict=True) if not v.size.all()
            ]
            if empty:
                raise MCATError(f"cannot sample: seed {empty[0]} has tasks without transitions")
            what = self.learner.warmup_description()
        with announced_warmup(self.log, self.env_steps, what):
            for _ in range(steps):
                self.learner.train_step()

    def _actions(self, sources: np.ndarray) -> np.ndarray:
        """Every seed's noise-free actions in one call (``sources``: each slot's source task,
        -1 for the learned policy); a seed whose last losses were not finite stops the run."""
        assert self.learner is not None
        group = self.collectors
        S, n = group.obs.shape[:2]
        mean, bad = self.learner.act(
            group.obs,
            group.ctx.delta.reshape(S, n, *group.ctx.delta.shape[1:]),
            group.ctx.act.reshape(S, n, *group.ctx.act.shape[1:]),
            group.ctx.mask.reshape(S, n, -1),
            sources,
            group.slot_task,
        )
        if bad.any():
            tr = self.trainers[int(np.flatnonzero(bad)[0])]
            raise tr._fault(
                f"non-finite loss (by gradient step {self.learner.rl_steps:,})", self.env_steps
            )
        return mean

    @staticmethod
    def _sources(tr: Trainer) -> np.ndarray:
        """Each slot's source task of a transferred policy, -1 for the learned policy."""
        sources = tr.agent.slot_sources()
        return np.full(tr.collector.n, -1) if sources is None else sources

    def _explore(self, mean: np.ndarray, transfer: np.ndarray) -> np.ndarray:
        """``mean`` ([seeds, n, act]) plus each seed's exploration noise, drawn from its own
        generator in the order of the default path (:func:`add_exploration_noise` on its
        learned-policy slots first, then on the slots ``transfer`` that act with a transferred
        policy), clipped to the action bound."""
        noise, bound = self.trainers[0].cfg.agent.exploration_noise, self.collectors.max_action
        if noise <= 0:
            return mean
        drawn = np.empty(mean.shape, dtype=np.float64)
        for tr, row, moved in zip(self.trainers, drawn, transfer, strict=True):
            if not moved.any():
                row[...] = exploration_noise(row.shape, noise, bound, tr.rng)
                continue
            for part in (~moved, moved):
                if part.any():
                    row[part] = exploration_noise(row[part].shape, noise, bound, tr.rng)
        return np.clip(mean + drawn, -bound, bound)

    def run(self, stop_at: int | None = None) -> list[dict | None]:
        """Train every seed to the end (or to ``stop_at`` env steps, with a checkpoint); the
        seeds' summaries."""
        trs = self.trainers
        stop = trs[0].cfg.steps if stop_at is None else min(stop_at, trs[0].cfg.steps)
        try:
            clocks = [tr.start_loop() for tr in trs]
            with stop_on_signals() as request:  # SIGTERM, Ctrl-C: every seed saved, then out
                while self.env_steps < stop and not request:
                    self.iterate()
                    for tr, clock in zip(trs, clocks, strict=True):
                        tr.after_iterate(clock)
                summaries = [tr.finish() for tr in trs]
            if request.signum is not None and self.env_steps < stop:
                where = trs[0].out.parent if len(trs) > 1 else trs[0].out
                raise RunStopped(request.signum, f"env step {self.env_steps:,}", where)
            return summaries
        except OSError as exc:
            raise MCATError(
                f"cannot write to a run directory: {exc.strerror or exc}; "
                f"{last_good_checkpoint(trs[0].out)}"
            ) from None
        finally:
            for tr in trs:
                tr.close()
