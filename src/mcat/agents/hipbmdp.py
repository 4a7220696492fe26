"""HiP-BMDP (Zhang, Sodhani, Khetarpal, Pineau, ICLR 2021, "Learning Robust State Abstractions for
Hidden-Parameter Block MDPs"), its meta-RL instantiation: PEARL whose latent task variable is
the hidden parameter theta of the HiP-MDP, shaped by a dynamics model and by task bisimulation.

The paper gives two instantiations. In multi-task RL theta is a learned embedding of the task's
index (facebookresearch/mtrl, ``agent=hipbmdp``), which an unseen task does not have. In meta-RL
(our setting: test tasks are new) theta is inferred from context by PEARL's probabilistic
encoder, and the paper adds to PEARL the losses that make theta the task's dynamics parameter.
We build that variant on our PEARL (:mod:`mcat.agents.pearl`: the same collection, SAC,
encoder, KL and test-time adaptation):

* a transition model T(s, a, theta) -> Gaussian over s' - s, and a reward head r(s, a, theta);
  their losses (Gaussian negative log-likelihood and squared error, weight 1 each, as mtrl's
  ``update_transition_reward_model``) train the model and, through theta, the encoder;
* task bisimulation: for every ordered pair of training tasks (i, j), at the states and actions
  of task i's batch, (||theta_i - theta_j||_1 - W2(T(s, a, theta_i), T(s, a, theta_j)))^2 with
  the W2 distance of the two Gaussian predictions (no gradient through them: only theta learns
  from it, as in mtrl's ``update_task_encoder``), weight 0.01 (mtrl's contrastive alpha);
  theta_i is the posterior mean of task i.

Facts from mtrl (mtrl/agent/hipbmdp.py, deepmdp.py, components/transition_model.py and the
hipbmdp configs): the model is one hidden layer of 512 with LayerNorm, its std a sigmoid scaled
to (1e-4, 10), Adam 1e-3 with weight decay 1e-7. Where this differs, by choice: our states are
proprioceptive, so the model reads s itself (the paper encodes pixels); theta distances are per
pair of tasks with the paper's L1 norm (mtrl takes one L2 norm over the whole batch); theta is 5
numbers, PEARL's latent size (mtrl's embedding is 50). The paper's meta-RL section and
appendix were not at hand when this was written: its loss weights may differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mcat.agents.base import adam_options
from mcat.agents.pearl import PEARLAgent, PEARLConfig
from mcat.validation import check_int, check_number

STD_MIN, STD_MAX = 1e-4, 10.0  # mtrl ProbabilisticTransitionModel's sigmoid range


@dataclass
class HiPBMDPConfig(PEARLConfig):
    """PEARL's settings plus HiP-BMDP's model and bisimulation (see the module docstring)."""

    model_hidden: int = 512
    """Width of the transition model's hidden layer (mtrl: layer_width 512)."""
    model_lr: float = 1e-3
    """Adam learning rate of the transition model and reward head (mtrl's decoder optimiser)."""
    model_weight_decay: float = 1e-7
    """Weight decay of that optimiser (mtrl)."""
    transition_weight: float = 1.0
    """Weight of the transition model's negative log-likelihood in the encoder's loss."""
    reward_weight: float = 1.0
    """Weight of the reward prediction's squared error in the encoder's loss."""
    bisim_weight: float = 0.01
    """Weight of the task-bisimulation loss (mtrl: multitask contrastive alpha 0.01)."""

    def validate(self) -> None:
        super().validate()
        check_int("agent.model_hidden", self.model_hidden, 1)
        check_number("agent.model_lr", self.model_lr, 0.0, low_open=True)
        for name in ("model_weight_decay", "transition_weight", "reward_weight", "bisim_weight"):
            check_number(f"agent.{name}", getattr(self, name), 0.0)


class TransitionModel(nn.Module):
    """T(s, a, theta): mean and std of s' - s, and the predicted reward."""

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int, hidden: int):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(obs_dim + act_dim + latent_dim, hidden), nn.LayerNorm(hidden), nn.ReLU()
        )
        self.head = nn.Linear(hidden, 2 * obs_dim + 1)
        self.obs_dim = obs_dim

    def forward(
        self, obs: torch.Tensor, act: torch.Tensor, theta: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.head(self.trunk(torch.cat([obs, act, theta], -1)))
        d = self.obs_dim
        std = STD_MIN + (STD_MAX - STD_MIN) * torch.sigmoid(out[..., d : 2 * d])
        return out[..., :d], std, out[..., -1]


class HiPBMDPAgent(PEARLAgent):
    cfg: HiPBMDPConfig
    policy_modules: ClassVar[tuple[str, ...]] = ("encoder", "policy")

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        cfg: HiPBMDPConfig | None = None,
        max_action: float = 1.0,
        device: torch.device | str = "cpu",
    ):
        cfg = cfg or HiPBMDPConfig()
        super().__init__(obs_dim, act_dim, cfg, max_action, device)
        self.model = TransitionModel(obs_dim, act_dim, cfg.latent_dim, cfg.model_hidden).to(
            self.device
        )
        self.model_opt = torch.optim.Adam(
            self.model.parameters(),
            lr=cfg.model_lr,
            weight_decay=cfg.model_weight_decay,
            **adam_options(self.device),
        )

    def encoder_extra_loss(
        self,
        mean: torch.Tensor,
        obs: torch.Tensor,
        act: torch.Tensor,
        rew: torch.Tensor,
        next_obs: torch.Tensor,
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        c = self.cfg
        T, B = mean.shape[0], c.batch_size
        theta = mean.repeat_interleave(B, 0)  # each row's task's theta (rows are task-major)
        mu, std, rew_pred = self.model(obs, act, theta)
        delta = next_obs - obs
        nll = (0.5 * ((mu - delta) / std).pow(2) + std.log()).sum(-1).mean()
        loss_rew = F.mse_loss(rew_pred, rew)
        loss = c.transition_weight * nll + c.reward_weight * loss_rew
        metrics = {
            "hipbmdp/transition_nll": float(nll.detach()),
            "hipbmdp/reward_mse": float(loss_rew.detach()),
        }
        if c.bisim_weight and T > 1:
            loss_bisim = self.bisimulation_loss(mean, obs, act)
            loss = loss + c.bisim_weight * loss_bisim
            metrics["hipbmdp/bisim"] = float(loss_bisim.detach())
        return loss, metrics

    def bisimulation_loss(
        self, theta: torch.Tensor, obs: torch.Tensor, act: torch.Tensor
    ) -> torch.Tensor:
        """Mean over ordered task pairs (i, j) of (||theta_i - theta_j||_1 - W2_ij)^2, W2_ij the
        mean over task i's rows of the W2 distance between T(s, a, theta_i) and T(s, a,
        theta_j); all pairs in one batched model pass (the predictions carry no gradient)."""
        T, B = theta.shape[0], self.cfg.batch_size
        s = obs.reshape(T, 1, B, -1).expand(T, T, B, -1)  # [i, j, row]: task i's states
        a = act.reshape(T, 1, B, -1).expand(T, T, B, -1)
        with torch.no_grad():
            th = theta.detach().reshape(1, T, 1, -1).expand(T, T, B, -1)  # theta_j
            mu, std, _ = self.model(s, a, th)
            # W2 of diagonal Gaussians: sqrt(|mu_1 - mu_2|^2 + |std_1 - std_2|^2)
            own_mu = mu.diagonal(dim1=0, dim2=1).permute(2, 0, 1)[:, None]  # [i, 1, B, d]
            own_std = std.diagonal(dim1=0, dim2=1).permute(2, 0, 1)[:, None]
            w2 = ((mu - own_mu).pow(2) + (std - own_std).pow(2)).sum(-1).sqrt().mean(-1)
        dist = (theta[:, None] - theta[None]).abs().sum(-1)  # [i, j], with its graph
        off = ~torch.eye(T, dtype=torch.bool, device=theta.device)
        return (dist - w2)[off].pow(2).mean()

    def extra_optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.model_opt]

    def modules(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        return {**super().modules(), "model": self.model, "model_opt": self.model_opt}
