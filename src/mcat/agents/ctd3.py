"""Context-conditioned TD3 ("ctd3"): the off-policy meta-RL learner MCAT is built on (paper Sec.
3.2 and 3.4), and on its own the "MCAT w/o PT, w/o SIL" baseline.

The agent owns the context encoder C, the forward model F, the actor and the twin critics. Its
training alternates (paper Sec. 3.4): blocks of C+F steps (forward NLL + contrastive loss), and
TD3 steps with C frozen. One TD3 step samples ``batch_size`` transitions of every training task
and updates all tasks at once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from mcat.agents.base import AgentBase, adam_options
from mcat.errors import MCATError
from mcat.learners.dynamics import dynamics_losses, update_normalizers
from mcat.learners.td3 import actor_loss, critic_loss, soft_update, td3_target
from mcat.models import Actor, ContextEncoder, ForwardModel, TwinCritic
from mcat.policies import add_exploration_noise
from mcat.replay import MultiTaskReplay, ReplayBatch
from mcat.validation import check_int, check_number


@dataclass
class TD3Params:
    """TD3's hyper-parameters (Fujimoto et al. 2018), shared by the TD3-based algorithms (ctd3,
    td3, MCAT, MQL); an algorithm may override a default."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden layers of actor and critics."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    batch_size: int = 256
    """Transitions per task in one TD3 step."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Target network averaging rate."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise (times max action)."""
    noise_clip: float = 0.5
    """Clip of the target policy smoothing noise (times max action)."""
    policy_delay: int = 2
    """Critic steps per actor and target update."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise while collecting (times max action)."""

    def validate_td3(self) -> None:
        for name in ("batch_size", "policy_delay"):
            check_int(f"agent.{name}", getattr(self, name), 1)
        for name in ("actor_lr", "critic_lr"):
            check_number(f"agent.{name}", getattr(self, name), 0.0, low_open=True)
        for name in ("exploration_noise", "policy_noise", "noise_clip"):
            check_number(f"agent.{name}", getattr(self, name), 0.0)
        if not self.hidden:
            raise MCATError("agent.hidden needs at least one layer")
        for width in self.hidden:
            check_int("agent.hidden", width, 1)
        check_number("agent.gamma", self.gamma, 0.0, 1.0)
        check_number("agent.tau", self.tau, 0.0, 1.0, low_open=True)


@dataclass
class CTD3Config(TD3Params):
    """Hyper-parameters of context-conditioned TD3. Defaults: TD3 (Fujimoto et al. 2018) and the
    authors' context/model settings (method.md); schedule choices are ours and documented."""

    # --- context encoder C and forward model F
    use_context: bool = True
    """False gives plain (multi-task) TD3: no context, no C or F (algo ``td3``)."""
    history: int = 10
    """K: past transitions of the episode fed to the context encoder."""
    z_dim: int = 10
    """Size of the context vector z."""
    encoder_hidden: tuple[int, ...] = (256, 128, 64)
    """Hidden layers of the context encoder."""
    future: int = 10
    """M: future steps predicted with one context in the forward loss (Eq. 1)."""
    model_hidden: int = 200
    """Width of the forward model's hidden layers."""
    model_layers: int = 4
    """Number of hidden layers of the forward model."""
    model_lr: float = 1e-3
    """Adam learning rate of C and F."""
    model_batch_size: int = 64
    """Segments per task in one C+F step."""
    contrastive_weight: float = 1.0
    """Weight of the contrastive loss (Eq. 2); 0 turns it off."""
    contrastive_margin: float = 1.0
    """Margin m of the contrastive loss."""
    contrastive_samples: int = 32
    """Contexts per task entering the contrastive loss (all pairs are used)."""
    model_every: int = 250
    """TD3 steps between two blocks of C+F training (our choice: the paper alternates)."""
    model_steps: int = 25
    """C+F gradient steps per block (so C+F get 10% of the gradient steps by default)."""
    model_warmup_steps: int = 500
    """C+F gradient steps done once when learning starts, before the first TD3 step."""

    def validate(self) -> None:
        self.validate_td3()
        for name in (
            "history",
            "z_dim",
            "future",
            "model_hidden",
            "model_layers",
            "model_batch_size",
            "contrastive_samples",
            "model_every",
        ):
            check_int(f"agent.{name}", getattr(self, name), 1)
        for name in ("model_steps", "model_warmup_steps"):
            check_int(f"agent.{name}", getattr(self, name), 0)
        check_number("agent.model_lr", self.model_lr, 0.0, low_open=True)
        for name in ("contrastive_weight", "contrastive_margin"):
            check_number(f"agent.{name}", getattr(self, name), 0.0)
        if not self.encoder_hidden:
            raise MCATError("agent.encoder_hidden needs at least one layer")
        for width in self.encoder_hidden:
            check_int("agent.encoder_hidden", width, 1)


def batch_to_torch(
    batch: ReplayBatch, device: torch.device | str, fields: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    return {
        f: torch.as_tensor(np.ascontiguousarray(getattr(batch, f)), device=device) for f in fields
    }


MODEL_FIELDS = ("ctx_delta", "ctx_act", "ctx_mask", "fut_obs", "fut_act", "fut_delta", "fut_mask")
RL_FIELDS = (
    "obs",
    "act",
    "rew",
    "next_obs",
    "done",
    "ctx_delta",
    "ctx_act",
    "ctx_mask",
    "next_ctx_delta",
    "next_ctx_act",
    "next_ctx_mask",
)


@dataclass
class TD3Config(CTD3Config):
    """Plain TD3 over all training tasks, without context (algo ``td3``): the policy cannot tell
    the tasks apart. Also the source-policy learner of the fixed-dataset transfer experiment."""

    use_context: bool = False
    """Off: no context encoder or forward model."""


@dataclass
class CTD3Agent(AgentBase):
    policy_modules: ClassVar[tuple[str, ...]] = ("encoder", "actor")
    counters: ClassVar[tuple[str, ...]] = ("rl_steps", "model_steps_done")
    obs_dim: int
    act_dim: int
    cfg: CTD3Config = field(default_factory=CTD3Config)
    max_action: float = 1.0
    device: torch.device | str = "cpu"  # a torch.device after __post_init__

    def __post_init__(self) -> None:
        c = self.cfg
        c.validate()
        dev = self.device = torch.device(self.device)
        self.z_dim = c.z_dim if c.use_context else 0
        self.encoder: ContextEncoder | None = None
        self.forward_model: ForwardModel | None = None
        self.model_opt: torch.optim.Adam | None = None
        if c.use_context:
            self.encoder = ContextEncoder(
                self.obs_dim, self.act_dim, c.history, c.z_dim, c.encoder_hidden
            ).to(dev)
            self.forward_model = ForwardModel(
                self.obs_dim, self.act_dim, c.z_dim, c.model_hidden, c.model_layers
            ).to(dev)
        self.actor = Actor(self.obs_dim, self.act_dim, self.z_dim, c.hidden, self.max_action).to(
            dev
        )
        self.critic = TwinCritic(self.obs_dim, self.act_dim, self.z_dim, c.hidden).to(dev)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # fused Adam: one kernel per step instead of one per parameter tensor (same algorithm)
        adam = adam_options(dev)
        if c.use_context:
            assert self.encoder is not None and self.forward_model is not None  # made above
            self.model_opt = torch.optim.Adam(
                [
                    {"params": self.encoder.parameters(), "weight_decay": 0.0},
                    *self.forward_model.param_groups(),
                ],
                lr=c.model_lr,
                **adam,
            )
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr, **adam)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr, **adam)
        self.rl_steps = 0
        self.model_steps_done = 0

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def context(
        self, ctx_delta: np.ndarray, ctx_act: np.ndarray, ctx_mask: np.ndarray
    ) -> torch.Tensor:
        if self.encoder is None:
            return torch.zeros(len(ctx_delta), 0, device=self.device)
        t = lambda x: torch.as_tensor(x, dtype=torch.float32, device=self.device)  # noqa: E731
        return self.encoder(t(ctx_delta), t(ctx_act), t(ctx_mask))

    @torch.no_grad()
    def act(
        self,
        obs: np.ndarray,
        z: torch.Tensor,
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Deterministic actions pi(s, z) for a batch of states, plus Gaussian exploration noise
        of std ``noise * max_action`` when ``noise > 0``."""
        action = (
            self.actor(torch.as_tensor(obs, dtype=torch.float32, device=self.device), z)
            .cpu()
            .numpy()
        )
        return add_exploration_noise(action, noise, self.max_action, rng)

    # ------------------------------------------------------------------ learning
    def _models(self) -> tuple[ContextEncoder, ForwardModel, torch.optim.Adam]:
        """C, F and their optimiser, which only an agent with context has."""
        if self.encoder is None or self.forward_model is None or self.model_opt is None:
            raise RuntimeError("this agent has no context encoder or forward model")
        return self.encoder, self.forward_model, self.model_opt

    def update_models(self, replay: MultiTaskReplay, steps: int) -> dict[str, float]:
        """``steps`` gradient steps of C and F on fresh batches of every training task."""
        c = self.cfg
        metrics: dict[str, float] = {}
        for _ in range(steps):
            encoder, forward_model, model_opt = self._models()
            batch = batch_to_torch(
                replay.sample(c.model_batch_size, context=c.history, future=c.future),
                self.device,
                MODEL_FIELDS,
            )
            update_normalizers(encoder, forward_model, batch)
            loss, metrics = dynamics_losses(
                encoder,
                forward_model,
                batch,
                c.contrastive_weight,
                c.contrastive_margin,
                c.contrastive_samples,
            )
            model_opt.zero_grad(set_to_none=True)
            loss.backward()
            model_opt.step()
            self.model_steps_done += 1
        return metrics

    def update_rl(self, replay: MultiTaskReplay) -> dict[str, float]:
        """One TD3 step for all tasks: critic every step, actor and targets every
        ``policy_delay`` steps. C is frozen here."""
        c = self.cfg
        history = c.history if self.encoder is not None else 0
        b = batch_to_torch(
            replay.sample(c.batch_size, context=history),
            self.device,
            RL_FIELDS + self.rl_extra_fields,
        )
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # [T, B, ...] -> [T*B, ...]  # noqa: E731
        with torch.no_grad():
            if self.encoder is None:
                z = next_z = torch.zeros(
                    b["obs"].shape[0] * b["obs"].shape[1], 0, device=self.device
                )
            else:
                z = self.encoder(
                    torch.cat([b["ctx_delta"], b["next_ctx_delta"]]),
                    torch.cat([b["ctx_act"], b["next_ctx_act"]]),
                    torch.cat([b["ctx_mask"], b["next_ctx_mask"]]),
                )
                z, next_z = flat(z[: len(z) // 2]), flat(z[len(z) // 2 :])
        obs, act, next_obs = flat(b["obs"]), flat(b["act"]), flat(b["next_obs"])
        target = td3_target(
            self.critic_target,
            self.actor_target,
            next_obs,
            next_z,
            flat(b["rew"]),
            flat(b["done"]),
            c.gamma,
            c.policy_noise * self.max_action,
            c.noise_clip * self.max_action,
            self.max_action,
        )
        q1, q2 = self.critic(obs, act, z)
        loss_q = critic_loss(q1, q2, target)
        extra = self.critic_extra_loss(b, q1, q2)
        if extra is not None:
            loss_q = loss_q + extra
        self.critic_opt.zero_grad(set_to_none=True)
        loss_q.backward()
        self.critic_opt.step()
        self.rl_steps += 1
        metrics = {"rl/critic_loss": float(loss_q.detach()), "rl/target_mean": float(target.mean())}
        if self.rl_steps % c.policy_delay == 0:
            self.critic.requires_grad_(False)  # the actor loss needs dQ/da, not dQ/dweights
            pi = self.actor(obs, z)
            loss_pi = actor_loss(self.critic, obs, pi, z)
            extra = self.actor_extra_loss(b, pi, act, torch.min(q1, q2).detach())
            if extra is not None:
                loss_pi = loss_pi + extra
            self.actor_opt.zero_grad(set_to_none=True)
            loss_pi.backward()
            self.critic.requires_grad_(True)
            self.actor_opt.step()
            soft_update(self.critic_target, self.critic, c.tau)
            soft_update(self.actor_target, self.actor, c.tau)
            metrics["rl/actor_loss"] = float(loss_pi.detach())
        return metrics

    # extension points for algorithms built on this one (MCAT adds self-imitation here)
    # replay fields the extra losses need, sampled with the TD3 batch (not a dataclass field)
    rl_extra_fields: ClassVar[tuple[str, ...]] = ()

    def critic_extra_loss(
        self, b: dict[str, torch.Tensor], q1: torch.Tensor, q2: torch.Tensor
    ) -> torch.Tensor | None:
        """A term added to the critic loss, given the batch and the critics' Q_k(s, a) with their
        graph (none for context-TD3)."""
        return None

    def actor_extra_loss(
        self, b: dict[str, torch.Tensor], pi: torch.Tensor, act: torch.Tensor, q_min: torch.Tensor
    ) -> torch.Tensor | None:
        """A term added to the actor loss, given the batch, pi(s) with its graph, the stored
        actions and min_k Q_k(s, a) from the critic step (none for context-TD3)."""
        return None

    def warmup_description(self) -> str | None:
        """What the first :meth:`train_step` does before its TD3 step (None: nothing extra)."""
        if self.encoder is None or self.model_steps_done or not self.cfg.model_warmup_steps:
            return None
        return f"{self.cfg.model_warmup_steps} C+F steps"

    def train_step(self, replay: MultiTaskReplay) -> dict[str, float]:
        """One TD3 step, preceded by the C+F warm-up (first call) or a C+F block (every
        ``model_every`` TD3 steps)."""
        c = self.cfg
        metrics: dict[str, float] = {}
        if self.encoder is not None:  # plain TD3 has no C or F to train
            if self.rl_steps == 0 and self.model_steps_done == 0:
                metrics.update(self.update_models(replay, c.model_warmup_steps))
            elif self.rl_steps % c.model_every == 0:
                metrics.update(self.update_models(replay, c.model_steps))
        metrics.update(self.update_rl(replay))
        return metrics

    @torch.no_grad()
    def task_features(self, replay: MultiTaskReplay, segments: int = 1024) -> torch.Tensor:
        """z^(i): the mean context over ``segments`` segments of each task's buffer (Sec. 3.2)."""
        encoder, _, _ = self._models()
        b = batch_to_torch(
            replay.sample(segments, context=self.cfg.history),
            self.device,
            ("ctx_delta", "ctx_act", "ctx_mask"),
        )
        return encoder(b["ctx_delta"], b["ctx_act"], b["ctx_mask"]).mean(1)

    # ------------------------------------------------------------------ saving
    def modules(self) -> dict[str, torch.nn.Module | torch.optim.Optimizer]:
        named = {
            "encoder": self.encoder,
            "forward_model": self.forward_model,
            "actor": self.actor,
            "critic": self.critic,
            "actor_target": self.actor_target,
            "critic_target": self.critic_target,
            "model_opt": self.model_opt,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
        }
        return {name: m for name, m in named.items() if m is not None}
