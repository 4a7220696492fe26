"""MCAT (paper Sec. 3.4, Fig. 2): context-conditioned TD3 + self-imitation learning + an action
translator H trained online from the replay data, which policy transfer uses while collecting.

Training alternates, as in the paper: C+F blocks (forward + contrastive losses), then an H block
with C and F frozen (Eq. 3 over every ordered pair of training tasks), then TD3 steps with C
frozen, whose critic and actor losses get the SIL terms. The H block runs right after each C+F
block (every ``model_every`` TD3 steps; ``translator_warmup_steps`` after the C+F warm-up), so H
always fits the current F; the task features z^(i) it is conditioned on are refreshed from the
buffers at each block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mcat.agents.ctd3 import CTD3Agent, CTD3Config, batch_to_torch
from mcat.collect import ActInput
from mcat.errors import MCATError
from mcat.learners.sil import sil_actor_loss, sil_critic_loss
from mcat.learners.translator import OBJECTIVES, all_pairs_loss
from mcat.models.translator import ActionTranslator
from mcat.policies import add_exploration_noise
from mcat.policy_transfer import (
    TRANSFER,
    TRANSFER_COLUMNS,
    TRANSFER_SUMMARY,
    TRANSFER_SUMMARY_COLUMNS,
    PTConfig,
    TransferActing,
)
from mcat.replay import MultiTaskReplay
from mcat.tasks import TaskValue
from mcat.validation import check_int, check_number


@dataclass
class MCATConfig(CTD3Config):
    """Context-TD3's settings plus SIL, the online translator and policy transfer."""

    # --- self-imitation learning (Oh et al. 2018; our deterministic form, mcat.learners.sil)
    sil: bool = True
    """Self-imitation losses on (``--no-sil`` turns them off)."""
    sil_critic_weight: float = 1.0
    """Weight of the SIL critic term (return units, like the TD3 critic loss)."""
    sil_actor_weight: float = 1.0
    """Weight of the SIL actor term (squared action distance on the transitions that beat Q)."""
    sil_weighting: str = "mask"
    """mask: imitate every transition that beat Q once; advantage: weight it by (R - Q)_+."""
    # --- action translator H, trained online
    translator_objective: str = "l1"
    """l1 (the authors' code, and the objective that works in our Table 1) or nll (Eq. 3)."""
    translator_lr: float = 3e-4
    """Adam learning rate of H (authors: 3e-4)."""
    translator_batch_size: int = 64
    """Transitions per task in one H step; each is translated to every other task."""
    translator_steps: int = 25
    """H steps after each C+F block."""
    translator_warmup_steps: int = 500
    """H steps after the C+F warm-up."""
    feature_segments: int = 256
    """Context segments per task averaged into the task feature z^(i)."""
    # --- policy transfer while collecting (mcat.policy_transfer)
    policy_transfer: bool = True
    """Policy transfer on (``--no-pt`` turns it off)."""
    pt_window: int = 3
    """Recent episodes averaged into a policy's score on a task."""
    pt_stale_after: int = 20
    """Episodes of a task after which a score is dropped (and the option re-tried)."""
    pt_margin: float = 0.0
    """How much better a source task must score to become a candidate."""

    def validate(self) -> None:
        super().validate()
        if not self.use_context:
            raise MCATError("MCAT needs the context encoder (use_context=True)")
        if self.translator_objective not in OBJECTIVES:
            raise MCATError(
                f"translator_objective must be one of {', '.join(OBJECTIVES)}, "
                f"got {self.translator_objective!r}"
            )
        if self.sil_weighting not in ("mask", "advantage"):
            raise MCATError(f"sil_weighting must be mask or advantage, got {self.sil_weighting!r}")
        for name in ("translator_batch_size", "feature_segments"):
            check_int(f"agent.{name}", getattr(self, name), 1)
        for name in ("translator_steps", "translator_warmup_steps"):
            check_int(f"agent.{name}", getattr(self, name), 0)
        for name in ("sil_critic_weight", "sil_actor_weight"):
            check_number(f"agent.{name}", getattr(self, name), 0.0)
        check_number("agent.translator_lr", self.translator_lr, 0.0, low_open=True)
        check_int("pt_window", self.pt_window, 1)
        check_int("pt_stale_after", self.pt_stale_after, self.pt_window)
        check_number("pt_margin", self.pt_margin, 0.0)
        self.pt_config().validate()

    def validate_tasks(self, train_tasks: int) -> None:
        """The check that needs the number of training tasks (called by the run config)."""
        if self.policy_transfer and train_tasks < 2:
            raise MCATError(
                "MCAT's policy transfer needs at least two training tasks "
                "(a source and a target), "
                f"got {train_tasks}; add training tasks or turn it off (--no-pt)"
            )

    def pt_config(self) -> PTConfig:
        return PTConfig(
            window=self.pt_window, stale_after=self.pt_stale_after, margin=self.pt_margin
        )


class MCATAgent(CTD3Agent):
    cfg: MCATConfig

    def __post_init__(self) -> None:
        super().__post_init__()
        c = self.cfg
        self.translator = ActionTranslator(
            self.obs_dim, self.act_dim, c.z_dim, conditioned=True, max_action=self.max_action
        ).to(self.device)
        self.translator_opt = torch.optim.Adam(self.translator.parameters(), lr=c.translator_lr)
        self.features: torch.Tensor | None = None  # z^(i) of every training task, [T, z]
        self.translator_steps_done = 0

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act_transferred(
        self,
        obs: np.ndarray,
        sources: np.ndarray,
        targets: np.ndarray,
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """H(s, pi(s, z_src), z_src, z_tgt) for a batch of states, each with its own source and
        target task index; Gaussian exploration noise as in :meth:`act`."""
        if self.features is None:
            raise RuntimeError(
                "act_transferred needs the task features: train the translator first"
            )
        s = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        z_src = self.features[torch.as_tensor(sources, device=self.device)]
        z_tgt = self.features[torch.as_tensor(targets, device=self.device)]
        action = self.translator(s, self.actor(s, z_src), z_src, z_tgt).cpu().numpy()
        return add_exploration_noise(action, noise, self.max_action, rng)

    # ------------------------------------------------------------------ learning
    def update_translator(self, replay: MultiTaskReplay, steps: int) -> dict[str, float]:
        """Refresh the task features, then ``steps`` H steps on every ordered pair (C, F frozen)."""
        c = self.cfg
        self.features = features = self.task_features(replay, c.feature_segments)
        _, forward_model, _ = self._models()
        metrics: dict[str, float] = {}
        for _ in range(steps):
            b = batch_to_torch(
                replay.sample(c.translator_batch_size), self.device, ("obs", "act", "next_obs")
            )
            loss = all_pairs_loss(
                self.translator,
                forward_model,
                b["obs"],
                b["act"],
                b["next_obs"] - b["obs"],
                features,
                c.translator_objective,
            )
            self.translator_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.translator_opt.step()
            self.translator_steps_done += 1
            metrics = {"translator/loss": loss.item()}
        return metrics

    def warmup_description(self) -> str | None:
        what = super().warmup_description()
        if what and self.cfg.policy_transfer and self.cfg.translator_warmup_steps:
            what += f", then {self.cfg.translator_warmup_steps} H steps"
        return what

    def update_models(self, replay: MultiTaskReplay, steps: int) -> dict[str, float]:
        """A C+F block, then the H block that follows it."""
        first = self.model_steps_done == 0
        metrics = super().update_models(replay, steps)
        if self.cfg.policy_transfer and replay.num_tasks > 1:  # H serves policy transfer only
            metrics.update(
                self.update_translator(
                    replay, self.cfg.translator_warmup_steps if first else self.cfg.translator_steps
                )
            )
        return metrics

    # SIL terms, added by CTD3Agent.update_rl to its critic and actor losses
    def critic_extra_loss(self, b: dict[str, torch.Tensor], q1, q2) -> torch.Tensor | None:
        c = self.cfg
        if not c.sil or c.sil_critic_weight == 0:
            return None
        ret, valid = b["mc_return"].reshape(-1), b["mc_valid"].reshape(-1)
        return c.sil_critic_weight * sil_critic_loss(q1, q2, ret, valid)

    def actor_extra_loss(self, b: dict[str, torch.Tensor], pi, act, q_min) -> torch.Tensor | None:
        c = self.cfg
        if not c.sil or c.sil_actor_weight == 0:
            return None
        ret, valid = b["mc_return"].reshape(-1), b["mc_valid"].reshape(-1)
        return c.sil_actor_weight * sil_actor_loss(pi, act, q_min, ret, valid, c.sil_weighting)

    rl_extra_fields = ("mc_return", "mc_valid")

    # ------------------------------------------------------------------ policy transfer
    # (paper Sec. 3.4: which policy collects each episode; mcat.policy_transfer has the rule)
    pt: TransferActing | None = None

    def start_collection(self, tasks: list[TaskValue], slots: int, learning_starts: int) -> None:
        if self.cfg.policy_transfer:
            self.pt = TransferActing(self, tasks, slots, self.cfg.pt_config(), learning_starts)

    def act_collect(self, inp: ActInput, noise: float, rng: np.random.Generator) -> np.ndarray:
        if self.pt is None:
            return super().act_collect(inp, noise, rng)
        z = self.context(inp.ctx_delta, inp.ctx_act, inp.ctx_mask)
        return self.pt.act(inp.obs, z, inp.slot_task, noise, rng)

    def slot_sources(self) -> np.ndarray | None:
        if self.pt is None:
            return None
        return np.where(self.pt.slot_source >= 0, self.pt.slot_source, -1)

    def log_files(self) -> dict[str, list[str]]:
        if self.pt is None:
            return {}
        return {TRANSFER: TRANSFER_COLUMNS, TRANSFER_SUMMARY: TRANSFER_SUMMARY_COLUMNS}

    def episode_ended(self, task, slot, ret, next_task, step, learning) -> dict[str, list[list]]:
        if self.pt is None:
            return {}
        return {TRANSFER: [self.pt.episode_ended(task, slot, ret, next_task, step, learning)]}

    def evaluation_report(self, step: int) -> tuple[dict[str, list[list]], dict[str, float], str]:
        if self.pt is None:
            return {}, {}, ""
        rows = self.pt.summary_rows(step)
        scalars = {f"pt/transferred_episodes/task_{row[1]}": row[3] for row in rows}
        message = (
            f" | policy transfer: {sum(r[3] for r in rows)} of {sum(r[2] for r in rows)} "
            "episodes since the last evaluation"
        )
        return {TRANSFER_SUMMARY: rows}, scalars, message

    def collection_state(self) -> dict | None:
        return None if self.pt is None else self.pt.state_dict()

    def load_collection_state(self, state: dict | None) -> None:
        if self.pt is not None and state is not None:
            self.pt.load_state_dict(state)

    # ------------------------------------------------------------------ saving
    def modules(self) -> dict:
        return super().modules() | {
            "translator": self.translator,
            "translator_opt": self.translator_opt,
        }

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["mcat"] = {
            "translator_steps_done": self.translator_steps_done,
            "features": self.features,
        }
        return state

    def load_state_dict(self, state: dict, policy_only: bool = False) -> None:
        # the translator and its optimiser are among modules()
        super().load_state_dict(state, policy_only)
        self.features = state["mcat"]["features"]
        if not policy_only:
            self.translator_steps_done = int(state["mcat"]["translator_steps_done"])
