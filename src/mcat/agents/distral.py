"""Distral (Teh et al. 2017, "Distral: Robust Multitask Reinforcement Learning"): one policy pi_i
per training task and a shared, task-agnostic distilled policy pi_0, trained on one joint
objective

    J = sum_i E_{pi_i} [ sum_t gamma^t ( r_i - c_KL log(pi_i / pi_0) - c_Ent log pi_i ) ],

so each task policy is pulled towards pi_0 (the KL) and kept stochastic (the entropy), while pi_0
is fitted to the task policies (the paper: a maximum-likelihood "distillation" of the task
policies' actions, which makes pi_0 their centroid). The paper writes alpha = c_KL/(c_KL+c_Ent)
and beta = 1/(c_KL+c_Ent); its optimal task policy is pi_i ∝ pi_0^alpha exp(beta Q_i).

The paper's experiments use discrete actions (soft Q-learning, A3C). Ours is its continuous-action
form on soft actor-critic (Haarnoja et al. 2018b, with the tuned temperature), as
facebookresearch/mtrl builds it (mtrl/agent/distral.py), per task:

* soft Q target: r + gamma (1 - done) [min_k Q'_ik(s', a') + c_KL log pi_0(a'|s')
  - (c_KL + c_Ent) log pi_i(a'|s')], a' ~ pi_i(s') (mtrl ``_get_target_V``: the same target);
* task policy loss: E_{a ~ pi_i} [(c_KL + c_Ent) log pi_i(a|s) - c_KL log pi_0(a|s)
  - min_k Q_ik(s, a)], the objective J for pi_i (mtrl keeps only SAC's c_Ent log pi_i - Q here,
  so that its pi_i feels pi_0 only through the target; we follow the paper);
* distilled policy loss: KL(pi_i || pi_0) between the tanh-Gaussians of the two policies at the
  task's states, averaged over tasks: the paper's maximum likelihood of pi_i's actions under pi_0
  in closed form (mtrl minimises the reverse KL(pi_0 || pi_i)). Both are Gaussians before the
  tanh, and a KL is unchanged by the tanh, so the closed form is exact;
* c_Ent is each task's SAC temperature, tuned towards the target entropy -|A| (SAC v2); c_KL =
  c_Ent alpha / (1 - alpha), which keeps the paper's alpha fixed while the temperature (and so
  beta = (1 - alpha) / c_Ent) adapts to the reward scale. With ``tune_temperature`` off, c_Ent
  stays at ``init_temperature``: the paper's fixed alpha and beta.

Defaults: SAC v2 (Haarnoja et al. 2018b, "Soft Actor-Critic Algorithms and Applications", Table
1): two hidden layers of 256, Adam 3e-4, batch 256, tau 0.005, discount 0.99, target entropy
-|A|; the initial temperature 0.1 of mtrl's Distral config (config/agent/distral.yaml). alpha
0.5: our choice, a KL and an entropy term of equal weight (mtrl's default distral_alpha of 0
switches the KL off, which would make this independent SAC per task; the paper's values were
not at hand).

Test tasks have no policy of their own: they are played by pi_0 (its mean action), the
task-agnostic policy the distillation builds for this purpose; training tasks by their own
pi_i's mean action. Distral reads no context, so it cannot tell test tasks apart.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from mcat.agents.base import AgentBase, adam_options
from mcat.agents.ctd3 import batch_to_torch
from mcat.collect import ActInput, ContextWindow
from mcat.errors import MCATError
from mcat.learners.sil import SIL_FIELDS, SILParams
from mcat.learners.td3 import soft_update
from mcat.models.ensemble import EnsembleMlp
from mcat.models.sac import LOG_STD_MAX, LOG_STD_MIN, TANH_EPS
from mcat.replay import MultiTaskReplay
from mcat.tasks import TaskValue
from mcat.validation import check_int, check_number

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class DistralConfig(SILParams):
    """Hyper-parameters of Distral (see the module docstring for their sources)."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden layers of every policy and critic (SAC v2)."""
    alpha: float = 0.5
    """The paper's alpha = c_KL / (c_KL + c_Ent), 0 to 0.99: the weight of the pull towards pi_0
    against the entropy bonus (0: independent SAC per task)."""
    tune_temperature: bool = True
    """Tune each task's c_Ent towards ``target_entropy`` (SAC v2); off: c_Ent stays fixed."""
    init_temperature: float = 0.1
    """c_Ent at the start (mtrl's config/agent/distral.yaml; softlearning starts at 1)."""
    target_entropy: float | None = None
    """Entropy target of the task policies; None: -(action size) (SAC v2)."""
    batch_size: int = 256
    """Transitions per task in one gradient step."""
    actor_lr: float = 3e-4
    """Adam learning rate of the task policies."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    distilled_lr: float = 3e-4
    """Adam learning rate of pi_0."""
    temperature_lr: float = 3e-4
    """Adam learning rate of the log temperatures."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Averaging rate of the target critics."""

    # read by the training loop: no in-episode context; the policies explore by their entropy
    history: ClassVar[int] = 0
    exploration_noise: ClassVar[float] = 0.0

    def validate(self) -> None:
        self.validate_sil()
        check_int("agent.batch_size", self.batch_size, 1)
        check_number("agent.alpha", self.alpha, 0.0, 0.99)
        check_number("agent.init_temperature", self.init_temperature, 0.0, low_open=True)
        for name in ("actor_lr", "critic_lr", "distilled_lr", "temperature_lr"):
            check_number(f"agent.{name}", getattr(self, name), 0.0, low_open=True)
        if self.target_entropy is not None:
            check_number("agent.target_entropy", self.target_entropy, -1e6, 1e6)
        check_number("agent.gamma", self.gamma, 0.0, 1.0)
        check_number("agent.tau", self.tau, 0.0, 1.0, low_open=True)
        if not self.hidden:
            raise MCATError("agent.hidden needs at least one layer")
        for width in self.hidden:
            check_int("agent.hidden", width, 1)

    def validate_tasks(self, train_tasks: int) -> None:
        if train_tasks < 2:
            raise MCATError(
                f"Distral distils the policies of several training tasks, got {train_tasks}; "
                "give it at least two (--train-tasks)"
            )


def gaussian_head(out: torch.Tensor, act_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, log std) of the Gaussian before the tanh, from a policy net's output."""
    return out[..., :act_dim], out[..., act_dim:].clamp(LOG_STD_MIN, LOG_STD_MAX)


def tanh_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log density of the action tanh(u) under the tanh-Gaussian (mean, log std)."""
    z = (u - mean) * torch.exp(-log_std)
    gauss = (-0.5 * z.pow(2) - log_std - HALF_LOG_2PI).sum(-1)
    return gauss - torch.log(1 - torch.tanh(u).pow(2) + TANH_EPS).sum(-1)


def gaussian_kl(
    mean1: torch.Tensor, log_std1: torch.Tensor, mean2: torch.Tensor, log_std2: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean1, std1) || N(mean2, std2)) of diagonal Gaussians, summed over the last axis."""
    var_ratio = torch.exp(2 * (log_std1 - log_std2))
    gap = (mean1 - mean2).pow(2) * torch.exp(-2 * log_std2)
    return 0.5 * (var_ratio + gap - 1.0).sum(-1) - (log_std1 - log_std2).sum(-1)


class LogTemperature(nn.Module):
    """log c_Ent of each task (a module, so that it is saved and optimised like the others)."""

    def __init__(self, tasks: int, init: float):
        super().__init__()
        self.value = nn.Parameter(torch.full((tasks,), math.log(init)))


class DistralAgent(AgentBase):
    policy_modules: ClassVar[tuple[str, ...]] = ("policies", "distilled")

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        cfg: DistralConfig | None = None,
        max_action: float = 1.0,
        device: torch.device | str = "cpu",
        train_tasks: Sequence[TaskValue] | None = None,
    ):
        c = self.cfg = cfg or DistralConfig()
        c.validate()
        if train_tasks is None:
            raise MCATError("Distral needs the training tasks (one policy per task)")
        self.train_tasks = list(train_tasks)
        T = len(self.train_tasks)
        c.validate_tasks(T)
        self.obs_dim, self.act_dim, self.max_action = obs_dim, act_dim, max_action
        dev = self.device = torch.device(device)
        self.policies = EnsembleMlp(T, obs_dim, c.hidden, 2 * act_dim).to(dev)
        self.distilled = EnsembleMlp(1, obs_dim, c.hidden, 2 * act_dim).to(dev)
        # members 0..T-1: the first critic of each task, T..2T-1: the second
        self.critics = EnsembleMlp(2 * T, obs_dim + act_dim, c.hidden, 1).to(dev)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.log_temperature = LogTemperature(T, c.init_temperature).to(dev)
        adam = adam_options(dev)
        self.policy_opt = torch.optim.Adam(self.policies.parameters(), lr=c.actor_lr, **adam)
        self.distilled_opt = torch.optim.Adam(
            self.distilled.parameters(), lr=c.distilled_lr, **adam
        )
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=c.critic_lr, **adam)
        self.temperature_opt = torch.optim.Adam(
            self.log_temperature.parameters(), lr=c.temperature_lr, **adam
        )
        self.target_entropy = (
            float(-act_dim) if c.target_entropy is None else float(c.target_entropy)
        )
        self.rl_steps = 0

    # ------------------------------------------------------------------ acting
    def context(
        self, ctx_delta: np.ndarray, ctx_act: np.ndarray, ctx_mask: np.ndarray
    ) -> torch.Tensor:
        """Distral reads no context (an empty z)."""
        return torch.zeros(len(ctx_delta), 0, device=self.device)

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def act(
        self,
        obs: np.ndarray,
        z: torch.Tensor,
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """pi_0's mean action (the task-agnostic policy; ``noise`` is not used)."""
        mean, _ = gaussian_head(self.distilled(self._tensor(obs)[None])[0], self.act_dim)
        return (self.max_action * torch.tanh(mean)).cpu().numpy()

    @torch.no_grad()
    def task_act(
        self, obs: np.ndarray, task: np.ndarray, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Actions of each row's task policy pi_task (-1: pi_0): its mean action, or a sample with
        ``rng``."""
        s, T, A = self._tensor(obs), len(self.train_tasks), self.act_dim
        # every policy on every row (a handful of rows), then each row's own: index -1 is pi_0
        outs = torch.cat([self.policies(s.expand(T, -1, -1)), self.distilled(s[None])])
        rows = torch.arange(len(obs), device=self.device)
        mean, log_std = gaussian_head(outs[torch.as_tensor(task, device=self.device), rows], A)
        u = mean
        if rng is not None:
            u = mean + log_std.exp() * self._tensor(rng.standard_normal((len(obs), A)))
        return (self.max_action * torch.tanh(u)).cpu().numpy()

    def act_collect(self, inp: ActInput, noise: float, rng: np.random.Generator) -> np.ndarray:
        """Each slot's task policy samples its action (SAC explores by its entropy)."""
        return self.task_act(inp.obs, inp.slot_task, rng)

    def adapter(self, tasks: Sequence[TaskValue], replay: Any, rng: np.random.Generator) -> Adapter:
        return Adapter(self, tasks)

    # ------------------------------------------------------------------ learning
    def warmup_description(self) -> str | None:
        return None

    def temperatures(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(c_Ent, c_KL) per task, [T, 1], without gradient."""
        c_ent = self.log_temperature.value.detach().exp()[:, None]
        return c_ent, c_ent * (self.cfg.alpha / (1.0 - self.cfg.alpha))

    def _distilled(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pi_0's (mean, log std) at states [T, B, obs], all rows in one pass."""
        out = self.distilled(obs.reshape(1, -1, obs.shape[-1]))
        return gaussian_head(out.reshape(*obs.shape[:-1], -1), self.act_dim)

    def train_step(self, replay: MultiTaskReplay) -> dict[str, float]:
        """One SAC step of every task policy and critic, and one distillation step of pi_0."""
        c, A, T = self.cfg, self.act_dim, len(self.train_tasks)
        fields = ("obs", "act", "rew", "next_obs", "done") + (SIL_FIELDS if c.sil else ())
        b = batch_to_torch(replay.sample(c.batch_size), self.device, fields)
        obs, act, next_obs = b["obs"], b["act"], b["next_obs"]  # [T, B, ...]
        c_ent, c_kl = self.temperatures()
        both = lambda x: torch.cat([x, x])  # noqa: E731 (inputs of the twin critics)
        with torch.no_grad():
            mean, log_std = gaussian_head(self.policies(next_obs), A)
            u = mean + log_std.exp() * torch.randn_like(mean)
            log_pi = tanh_log_prob(u, mean, log_std)
            log_pi0 = tanh_log_prob(u, *self._distilled(next_obs))
            a = self.max_action * torch.tanh(u)
            q_next = self.critics_target(both(next_obs), both(a)).squeeze(-1)
            soft_v = torch.min(q_next[:T], q_next[T:]) + c_kl * log_pi0 - (c_kl + c_ent) * log_pi
            target = b["rew"] + c.gamma * (1.0 - b["done"]) * soft_v
        q = self.critics(both(obs), both(act)).squeeze(-1)
        # each task's loss is its own SAC loss: sum over tasks, mean over its batch
        loss_q = (q - both(target)).pow(2).mean(1).sum()
        if c.sil:  # per task, summed like the SAC losses
            ret, valid = b["mc_return"].reshape(-1), b["mc_valid"].reshape(-1)
            sil_q = c.sil_critic_term(q[:T].reshape(-1), q[T:].reshape(-1), ret, valid)
            loss_q = loss_q if sil_q is None else loss_q + T * sil_q
        self.critic_opt.zero_grad(set_to_none=True)
        loss_q.backward()
        self.critic_opt.step()

        mean, log_std = gaussian_head(self.policies(obs), A)
        u = mean + log_std.exp() * torch.randn_like(mean)
        log_pi = tanh_log_prob(u, mean, log_std)
        mean0, log_std0 = self._distilled(obs)
        # pi_0 is fixed in the task policies' loss: its own loss is the distillation below
        log_pi0 = tanh_log_prob(u, mean0.detach(), log_std0.detach())
        self.critics.requires_grad_(False)
        q_pi = self.critics(both(obs), both(self.max_action * torch.tanh(u))).squeeze(-1)
        loss_pi = (c_kl + c_ent) * log_pi - c_kl * log_pi0 - torch.min(q_pi[:T], q_pi[T:])
        loss_pi = loss_pi.mean(1).sum()
        if c.sil:  # each task's mean action imitates its stored actions whose return beat Q
            q_min = torch.min(q[:T], q[T:]).detach().reshape(-1)
            mean_act = (self.max_action * torch.tanh(mean)).reshape(-1, A)
            sil_pi = c.sil_actor_term(mean_act, act.reshape(-1, A), q_min, ret, valid)
            loss_pi = loss_pi if sil_pi is None else loss_pi + T * sil_pi
        self.policy_opt.zero_grad(set_to_none=True)
        loss_pi.backward()
        self.critics.requires_grad_(True)
        self.policy_opt.step()

        kl = gaussian_kl(mean.detach(), log_std.detach(), mean0, log_std0)  # KL(pi_i || pi_0)
        loss_0 = kl.mean()
        self.distilled_opt.zero_grad(set_to_none=True)
        loss_0.backward()
        self.distilled_opt.step()

        metrics = {
            "distral/critic_loss": float(loss_q.detach()),
            "distral/policy_loss": float(loss_pi.detach()),
            "distral/kl": float(loss_0.detach()),
            "distral/entropy": float(-log_pi.detach().mean()),
            "distral/temperature": float(c_ent.mean()),
        }
        if c.tune_temperature:
            gap = (log_pi.detach() + self.target_entropy).mean(1)
            loss_t = -(self.log_temperature.value * gap).sum()
            self.temperature_opt.zero_grad(set_to_none=True)
            loss_t.backward()
            self.temperature_opt.step()
        soft_update(self.critics_target, self.critics, c.tau)
        self.rl_steps += 1
        return metrics

    # ------------------------------------------------------------------ saving
    def modules(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        return {
            "policies": self.policies,
            "distilled": self.distilled,
            "critics": self.critics,
            "critics_target": self.critics_target,
            "log_temperature": self.log_temperature,
            "policy_opt": self.policy_opt,
            "distilled_opt": self.distilled_opt,
            "critic_opt": self.critic_opt,
            "temperature_opt": self.temperature_opt,
        }


class Adapter:
    """Evaluation: a training task is played by its own policy, any other task by pi_0 (no
    adaptation episodes)."""

    def __init__(self, agent: DistralAgent, tasks: Sequence[TaskValue]):
        self.agent = agent
        index = {v: i for i, v in enumerate(agent.train_tasks)}
        self.policy_of = np.array([index.get(v, -1) for v in tasks])

    def explore(self, obs: np.ndarray, owner: np.ndarray, ctx: ContextWindow) -> np.ndarray:
        return self.act(obs, owner, ctx)

    def observe(self, episodes: Sequence[Any]) -> None:
        pass

    def act(self, obs: np.ndarray, owner: np.ndarray, ctx: ContextWindow) -> np.ndarray:
        return self.agent.task_act(obs, self.policy_of[owner])
