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

from mcat.errors import MCATError

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
            raise MCATError(f"policy transfer needs window >= 1 and stale_after >= window, got {self.window}, {self.stale_after}")
        if self.margin < 0:
            raise MCATError(f"policy-transfer margin must be >= 0, got {self.margin}")


class PolicyTransfer:
    """Per-task histories of (episode index, source, return) and the choice rule above."""

    def __init__(self, n_tasks: int, cfg: PTConfig | None = None):
        if n_tasks < 2:
            raise MCATError("policy transfer needs at least two training tasks (a source and a target)")
        self.cfg = cfg or PTConfig()
        self.cfg.validate()
        self.n_tasks = n_tasks
        self.history: list[list[tuple[int, int, float]]] = [[] for _ in range(n_tasks)]  # (episode, source, return)
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
        candidates = [j for j, s in learned.items() if s is not None and s > own + self.cfg.margin]
        if not candidates:
            return OWN
        untried = [j for j in candidates if self.score(task, j) is None]
        if untried:
            return max(untried, key=lambda j: learned[j])
        best = max(candidates, key=lambda j: self.score(task, j))
        return best if self.score(task, best) > own else OWN

    def record(self, task: int, source: int, ret: float) -> None:
        """An episode of ``task`` collected by ``source`` (OWN: the learned policy) ended with ``ret``."""
        self.history[task].append((self.episodes[task], source, float(ret)))
        self.episodes[task] += 1
        keep = self.episodes[task] - self.cfg.stale_after
        self.history[task] = [h for h in self.history[task] if h[0] >= keep]  # older ones are never read

    def state_dict(self) -> dict:
        return {"history": [[list(h) for h in hs] for hs in self.history], "episodes": list(self.episodes)}

    def load_state_dict(self, state: dict) -> None:
        self.history = [[(int(e), int(s), float(r)) for e, s, r in hs] for hs in state["history"]]
        self.episodes = [int(n) for n in state["episodes"]]
