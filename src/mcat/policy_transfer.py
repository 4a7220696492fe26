"""Policy transfer during data collection (paper Sec. 3.4, Fig. 2e): which policy collects the
next episode of each training task.

On a target task i, a source task j is a *candidate* when the learned policy currently does
better on j than on i. The transferred policy H(s, pi(s, z_j), z_j, z_i) then competes with the
learned policy on i, and each episode is collected by whichever did better in recent episodes.
The paper leaves the exact rule open; ours (all knobs in :class:`PTConfig`):

1. Scores are means of the last ``window`` episode returns of each option on task i (the learned
   policy, and each source j's transferred policy), counting only episodes among the last
   ``stale_after`` episodes of task i: older results describe policies that have changed since,
   so they are dropped rather than trusted.
2. No recent score for the learned policy on i: collect with it (it is the baseline).
3. Candidates: tasks j != i whose learned-policy score beats task i's by more than ``margin``.
   None: collect with the learned policy.
4. A candidate without a recent transferred score is tried first, once, best learned-policy
   score first (optimistic first trial; dropping stale scores makes this a periodic re-trial).
5. Otherwise the candidate with the best transferred score collects if that score beats the
   learned policy's; else the learned policy does.

Every transition, whoever collected it, goes to task i's buffer (the caller's job). The object
holds only plain numbers, so its state goes into checkpoints as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mcat.errors import MCATError
from mcat.tasks.family import TaskValue, task_key

OWN = -1  # "source" index meaning the learned policy itself


@dataclass
class PTConfig:
    """Knobs of the policy-transfer rule (our choices; the paper gives none)."""

    window: int = 3
    """Recent episodes averaged into an option's score."""
    stale_after: int = 20
    """Episodes of the target task after which an option's result is no longer used."""
    margin: float = 0.0
    """How much better (in return) a source task must be to become a candidate."""

    def validate(self) -> None:
        if self.window < 1 or self.stale_after < self.window:
            raise MCATError(
                "policy transfer needs window >= 1 and stale_after >= window, "
                f"got {self.window}, {self.stale_after}"
            )
        if self.margin < 0:
            raise MCATError(f"policy-transfer margin must be >= 0, got {self.margin}")


class PolicyTransfer:
    """Per-task histories of (episode index, source, return) and the choice rule above."""

    def __init__(self, n_tasks: int, cfg: PTConfig | None = None):
        if n_tasks < 2:
            raise MCATError(
                "policy transfer needs at least two training tasks (a source and a target)"
            )
        self.cfg = cfg or PTConfig()
        self.cfg.validate()
        self.n_tasks = n_tasks
        # (episode, source, return)
        self.history: list[list[tuple[int, int, float]]] = [[] for _ in range(n_tasks)]
        self.episodes = [0] * n_tasks

    def score(self, task: int, source: int) -> float | None:
        """Mean of the last ``window`` fresh returns of ``source``'s policy on ``task`` (OWN: the
        learned policy), or None when there is none."""
        fresh = self.episodes[task] - self.cfg.stale_after
        returns = [r for e, s, r in self.history[task] if s == source and e >= fresh]
        return float(np.mean(returns[-self.cfg.window :])) if returns else None

    def choose(self, task: int) -> int:
        """The source whose transferred policy collects the next episode of ``task``, or OWN."""
        own = self.score(task, OWN)
        if own is None:
            return OWN
        learned = {j: self.score(j, OWN) for j in range(self.n_tasks) if j != task}
        better = {j: s for j, s in learned.items() if s is not None and s > own + self.cfg.margin}
        candidates = list(better)
        if not candidates:
            return OWN
        scores = {j: self.score(task, j) for j in candidates}
        untried = [j for j, s in scores.items() if s is None]
        if untried:
            return max(untried, key=lambda j: better[j])
        tried = {j: s for j, s in scores.items() if s is not None}  # all of them, here
        best = max(tried, key=lambda j: tried[j])
        return best if tried[best] > own else OWN

    def record(self, task: int, source: int, ret: float) -> None:
        """An episode of ``task`` collected by ``source`` (OWN: the learned policy) ended with
        ``ret``."""
        self.history[task].append((self.episodes[task], source, float(ret)))
        self.episodes[task] += 1
        keep = self.episodes[task] - self.cfg.stale_after
        # older ones are never read
        self.history[task] = [h for h in self.history[task] if h[0] >= keep]

    def state_dict(self) -> dict:
        return {
            "history": [[list(h) for h in hs] for hs in self.history],
            "episodes": list(self.episodes),
        }

    def load_state_dict(self, state: dict) -> None:
        self.history = [[(int(e), int(s), float(r)) for e, s, r in hs] for hs in state["history"]]
        self.episodes = [int(n) for n in state["episodes"]]


RANDOM = -2  # an episode begun before learning started (random actions): not scored
TRANSFER, TRANSFER_SUMMARY = "transfer.csv", "transfer_summary.csv"  # the logs of a run
TRANSFER_COLUMNS = ["step", "task", "policy", "source", "return", "own_recent", "source_recent"]
TRANSFER_SUMMARY_COLUMNS = [
    "step",
    "task",
    "episodes",
    "transferred",
    "sources",
    "own_recent",
    "best_source",
    "best_transfer_recent",
]


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


class TransferActing:
    """Policy transfer inside data collection: which policy runs the current episode of each
    environment slot, batched acting for all slots, and the rows of the transfer logs.

    ``agent`` needs ``act``, ``act_transferred`` and ``features`` (the task features z^(i) of
    the translator; None until it is first trained, and until then every episode is the learned
    policy's)."""

    def __init__(
        self, agent, tasks: list[TaskValue], n_slots: int, cfg: PTConfig, learning_starts: int
    ):
        self.agent, self.tasks = agent, list(tasks)
        self.rule = PolicyTransfer(len(tasks), cfg)
        self.slot_source = np.full(n_slots, RANDOM if learning_starts > 0 else OWN, dtype=np.int64)
        self._reset_period()

    def _reset_period(self) -> None:
        # episodes per task since the last evaluation, by source (OWN, RANDOM or a task index)
        self.period: list[dict[int, int]] = [{} for _ in self.tasks]

    def act(
        self, obs: np.ndarray, z, slot_task: np.ndarray, noise: float, rng: np.random.Generator
    ) -> np.ndarray:
        """Actions of every slot: the learned policy where its episode is the learned policy's,
        the transferred policy of its source elsewhere (one batched call each)."""
        transfer = self.slot_source >= 0
        if not transfer.any():  # the common case: exactly ctd3's acting
            return self.agent.act(obs, z, noise=noise, rng=rng)
        actions = np.empty((len(obs), self.agent.act_dim), dtype=np.float32)
        own = ~transfer
        if own.any():
            actions[own] = self.agent.act(
                obs[own], z[torch.as_tensor(own, device=z.device)], noise=noise, rng=rng
            )
        actions[transfer] = self.agent.act_transferred(
            obs[transfer], self.slot_source[transfer], slot_task[transfer], noise=noise, rng=rng
        )
        return actions

    def choose(self, task: int) -> int:
        return OWN if self.agent.features is None else self.rule.choose(task)

    def episode_ended(
        self, task: int, slot: int, ret: float, next_task: int, step: int, learning: bool
    ) -> list:
        """Score the episode that ended in ``slot``, pick the policy of the slot's next episode
        (on ``next_task``), and return the episode's row of the transfer log."""
        source = int(self.slot_source[slot])
        if source != RANDOM:
            self.rule.record(task, source, ret)
        self.period[task][source] = self.period[task].get(source, 0) + 1
        own = self.rule.score(task, OWN)
        src_score = self.rule.score(task, source) if source >= 0 else None
        policy = {RANDOM: "random", OWN: "own"}.get(source, "transfer")
        row = [
            step,
            task_key(self.tasks[task]),
            policy,
            task_key(self.tasks[source]) if source >= 0 else "",
            ret,
            _fmt(own),
            _fmt(src_score),
        ]
        self.slot_source[slot] = self.choose(next_task) if learning else RANDOM
        return row

    def summary_rows(self, step: int) -> list[list]:
        """Per task, the episodes since the last call: how many, how many transferred and from
        which sources, and the current recent returns of the learned and best transferred policy."""
        rows = []
        for i, counts in enumerate(self.period):
            sources = {j: n for j, n in counts.items() if j >= 0}
            scores = {j: self.rule.score(i, j) for j in range(len(self.tasks)) if j != i}
            fresh = {j: s for j, s in scores.items() if s is not None}
            best = max(fresh, key=lambda j: fresh[j]) if fresh else None
            rows.append(
                [
                    step,
                    task_key(self.tasks[i]),
                    sum(counts.values()),
                    sum(sources.values()),
                    " ".join(f"{task_key(self.tasks[j])}x{n}" for j, n in sorted(sources.items())),
                    _fmt(self.rule.score(i, OWN)),
                    task_key(self.tasks[best]) if best is not None else "",
                    _fmt(fresh[best] if best is not None else None),
                ]
            )
        self._reset_period()
        return rows

    def state_dict(self) -> dict:
        return {
            "rule": self.rule.state_dict(),
            "slot_source": self.slot_source.tolist(),
            "period": [[[int(j), int(n)] for j, n in c.items()] for c in self.period],
        }

    def load_state_dict(self, state: dict) -> None:
        self.rule.load_state_dict(state["rule"])
        self.slot_source[...] = np.asarray(state["slot_source"], dtype=np.int64)
        self.period = [{int(j): int(n) for j, n in c} for c in state["period"]]
