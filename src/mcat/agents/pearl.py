"""PEARL (Rakelly et al. 2019, "Efficient Off-Policy Meta-Reinforcement Learning via Probabilistic
Context Variables"): soft actor-critic conditioned on a latent task variable z, inferred from a
set of transitions by a probabilistic, permutation-invariant context encoder.

What follows the paper and its authors' code (katerakelly/oyster; files named below):

* q(z | c) is the product of one Gaussian factor per context transition (s, a, r, s'); each
  factor's mean and variance (softplus) come from an MLP (agent.py ``infer_posterior``,
  ``_product_of_gaussians``). s' is in the context because our tasks differ in dynamics, as in
  the authors' configs for such tasks (walker/hopper_rand_params.json:
  use_next_obs_in_context).
* Training (sac.py ``_take_step``): z ~ q(z | c) (reparameterised) per task from a context batch
  of that task; the encoder is trained by the Q loss plus kl_lambda * sum_tasks KL(q || N(0, I));
  V and the policy see z detached; SAC with a state-value net and reward scaling, the policy's
  mean and log std regularised.
* Collection (rl_algorithm.py ``train``/``collect_data``): each task alternates episodes with
  z drawn from the prior (their transitions are the task's encoder data) and episodes with z from
  the posterior given a context batch of the encoder data (RL data only: "extra RL steps
  posterior"). The authors' context buffer keeps the prior-z data of a task's latest visit; here
  it is the task's ``prior_episodes`` most recent completed episodes not collected with a
  posterior z, read from the shared replay by index (each transition is stored once). Before
  learning starts the shared protocol collects uniformly random actions (the authors collect
  their initial pool with the untrained policy and a prior z); those episodes count as prior
  data.
* Evaluation (rl_algorithm.py ``collect_paths``): ``adaptation_episodes`` episodes with a fresh
  prior z each, deterministic actions, accumulating every transition as context; then the
  posterior given all of it, one z sampled per task, and the scored episodes (the authors report
  the return of the trajectory after the exploration ones, "final returns").

Defaults and their sources (configs/default.py unless said; MuJoCo configs are
cheetah-vel.json and walker/hopper_rand_params.json): latent_size 5, net_size 300 with three
hidden layers (launch_experiment.py), encoder 200-200-200 (launch_experiment.py), kl_lambda 0.1,
reward_scale 5, batch_size 256, embedding_batch_size 100 (the MuJoCo configs), learning rates
3e-4, soft_target_tau 0.005, discount 0.99, policy mean/std regularisation 1e-3 (sac.py),
num_exp_traj_eval 2 (the MuJoCo configs), num_steps_prior 400 and num_extra_rl_steps_posterior
600 (the MuJoCo configs, 200-step paths: 2 prior and 3 posterior paths per visit, which is
``prior_episodes`` 2 and ``posterior_episodes`` 3 here).

Where this differs, by choice: every gradient step uses every training task (the authors sample
a meta-batch of 10-16 of their 40-130 tasks; our families have about five), and gradient steps
per environment step follow the run's ``utd`` like every algorithm here (the authors take 2000
to 4000 steps per 5000 collected transitions).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mcat.agents.base import AgentBase, adam_options
from mcat.agents.ctd3 import batch_to_torch
from mcat.collect import ActInput, ContextWindow, Episode
from mcat.errors import MCATError
from mcat.evaluation import check_adaptation_episodes
from mcat.learners.sil import SIL_FIELDS, SILParams
from mcat.learners.td3 import soft_update
from mcat.models.nets import mlp
from mcat.models.sac import FlatMlp, TanhGaussianPolicy, rlkit_init
from mcat.replay import MultiTaskReplay
from mcat.validation import check_int, check_number

VAR_MIN = 1e-7  # agent.py _product_of_gaussians clamps each factor's variance


@dataclass
class PEARLConfig(SILParams):
    """Hyper-parameters of PEARL; defaults from the authors' code (see the module docstring)."""

    latent_dim: int = 5
    """Size of z (configs/default.py latent_size)."""
    hidden: tuple[int, ...] = (300, 300, 300)
    """Hidden layers of the policy, Q and V nets (net_size 300, three layers)."""
    encoder_hidden: tuple[int, ...] = (200, 200, 200)
    """Hidden layers of the context encoder (launch_experiment.py)."""
    use_next_obs_in_context: bool = True
    """Put s' in each context transition (the authors' setting for tasks differing in
    dynamics)."""
    kl_lambda: float = 0.1
    """Weight of KL(q(z|c) || N(0, I)) in the encoder's loss."""
    reward_scale: float = 5.0
    """Rewards are multiplied by this in the Bellman target (SAC's inverse temperature)."""
    batch_size: int = 256
    """Transitions per task in one SAC step."""
    embedding_batch_size: int = 100
    """Context transitions per task from which z is inferred in one step."""
    policy_lr: float = 3e-4
    """Adam learning rate of the policy."""
    qf_lr: float = 3e-4
    """Adam learning rate of the two Q nets."""
    vf_lr: float = 3e-4
    """Adam learning rate of the V net."""
    context_lr: float = 3e-4
    """Adam learning rate of the context encoder."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Averaging rate of the target V net."""
    policy_mean_reg: float = 1e-3
    """Weight of the policy mean's squared norm in the policy loss."""
    policy_std_reg: float = 1e-3
    """Weight of the policy log std's squared norm in the policy loss."""
    prior_episodes: int = 2
    """Episodes of each task collected with z from the prior in each cycle (the encoder data)."""
    posterior_episodes: int = 3
    """Episodes of each task then collected with z from the posterior (RL data only)."""
    adaptation_episodes: int = 2
    """Exploration episodes (prior z) on each evaluated task before the scored episodes, whose z
    comes from the posterior given all their transitions (num_exp_traj_eval)."""

    # read by the training loop: PEARL uses no in-episode context window and explores with its
    # own stochastic policy
    history: ClassVar[int] = 0
    exploration_noise: ClassVar[float] = 0.0

    def validate(self) -> None:
        self.validate_sil()
        for name in ("latent_dim", "batch_size", "embedding_batch_size", "prior_episodes"):
            check_int(f"agent.{name}", getattr(self, name), 1)
        check_int("agent.posterior_episodes", self.posterior_episodes, 0)
        check_adaptation_episodes(self.adaptation_episodes)
        for name in ("policy_lr", "qf_lr", "vf_lr", "context_lr", "reward_scale"):
            check_number(f"agent.{name}", getattr(self, name), 0.0, low_open=True)
        for name in ("kl_lambda", "policy_mean_reg", "policy_std_reg"):
            check_number(f"agent.{name}", getattr(self, name), 0.0)
        check_number("agent.gamma", self.gamma, 0.0, 1.0)
        check_number("agent.tau", self.tau, 0.0, 1.0, low_open=True)
        for name in ("hidden", "encoder_hidden"):
            if not getattr(self, name):
                raise MCATError(f"agent.{name} needs at least one layer")
            for width in getattr(self, name):
                check_int(f"agent.{name}", width, 1)


class ContextEncoder(nn.Module):
    """q(z | c): a Gaussian factor per context transition, multiplied together."""

    def __init__(self, in_dim: int, latent_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.net = rlkit_init(mlp(in_dim, hidden, 2 * latent_dim))
        self.latent_dim = latent_dim

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance [..., L] from context [..., N, in_dim] (N transitions)."""
        out = self.net(context)
        mu, var = out[..., : self.latent_dim], F.softplus(out[..., self.latent_dim :])
        var = var.clamp(min=VAR_MIN)
        post_var = 1.0 / (1.0 / var).sum(-2)
        return post_var * (mu / var).sum(-2), post_var


def kl_to_prior(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, var) || N(0, I)), summed over everything."""
    return 0.5 * (var + mean.pow(2) - 1.0 - var.log()).sum()


class PEARLAgent(AgentBase):
    policy_modules: ClassVar[tuple[str, ...]] = ("encoder", "policy")

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        cfg: PEARLConfig | None = None,
        max_action: float = 1.0,
        device: torch.device | str = "cpu",
    ):
        c = self.cfg = cfg or PEARLConfig()
        c.validate()
        self.obs_dim, self.act_dim, self.max_action = obs_dim, act_dim, max_action
        dev = self.device = torch.device(device)
        L = c.latent_dim
        ctx_dim = obs_dim + act_dim + 1 + (obs_dim if c.use_next_obs_in_context else 0)
        self.encoder = ContextEncoder(ctx_dim, L, c.encoder_hidden).to(dev)
        self.policy = TanhGaussianPolicy(obs_dim + L, act_dim, c.hidden, max_action).to(dev)
        self.qf1 = FlatMlp(obs_dim + act_dim + L, c.hidden).to(dev)
        self.qf2 = FlatMlp(obs_dim + act_dim + L, c.hidden).to(dev)
        self.vf = FlatMlp(obs_dim + L, c.hidden).to(dev)
        self.vf_target = copy.deepcopy(self.vf).requires_grad_(False)
        adam = adam_options(dev)
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=c.policy_lr, **adam)
        qf_params = [*self.qf1.parameters(), *self.qf2.parameters()]
        self.qf_opt = torch.optim.Adam(qf_params, lr=c.qf_lr, **adam)
        self.vf_opt = torch.optim.Adam(self.vf.parameters(), lr=c.vf_lr, **adam)
        self.context_opt = torch.optim.Adam(self.encoder.parameters(), lr=c.context_lr, **adam)
        self.rl_steps = 0
        # collection: each slot's z and the (task, replay episode id) it was drawn for; for each
        # task, the replay ids of its recent episodes collected with a posterior z
        self.slot_z = np.zeros((0, L))
        self.slot_key: list[tuple[int, int]] = []
        self.posterior_ids: dict[int, list[int]] = {}
        self._slots_cache: dict[tuple[int, int], np.ndarray] = {}

    # ------------------------------------------------------------------ acting
    def context(
        self, ctx_delta: np.ndarray, ctx_act: np.ndarray, ctx_mask: np.ndarray
    ) -> torch.Tensor:
        """The prior mean of z (PEARL infers z from transitions, not from an in-episode window;
        evaluation goes through :meth:`adapter`)."""
        return torch.zeros(len(ctx_delta), self.cfg.latent_dim, device=self.device)

    @torch.no_grad()
    def act(
        self,
        obs: np.ndarray,
        z: torch.Tensor,
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """The deterministic action tanh(mean) of pi(. | s, z); with ``rng``, a sample of the
        stochastic policy instead (``noise`` is not used: SAC explores by its own entropy)."""
        s = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        eps = None
        if rng is not None:
            eps = torch.as_tensor(
                rng.standard_normal((len(obs), self.act_dim)), dtype=torch.float32
            ).to(self.device)
        return self.policy(s, z, eps)[0].cpu().numpy()

    def act_collect(self, inp: ActInput, noise: float, rng: np.random.Generator) -> np.ndarray:
        replay = inp.replay
        if replay is None:
            raise MCATError("PEARL collects with the replay in its acting input")
        n = len(inp.obs)
        if len(self.slot_key) != n:
            self.slot_key, self.slot_z = [(-1, -1)] * n, np.zeros((n, self.cfg.latent_dim))
        for i in range(n):  # once per slot and step; z is redrawn once per episode
            t = int(inp.slot_task[i])
            key = (t, int(replay.current_episode[t]))
            if any(e > key[1] for e in self.posterior_ids.get(t, ())):
                # episode ids went back: a replay refilled from empty (a run resumed from a
                # checkpoint without replay contents); the old ids name nothing
                self.posterior_ids[t] = []
            if self.slot_key[i] != key:
                self.slot_key[i] = key
                self.slot_z[i] = self._collection_z(replay, t, key[1], rng)
        z = torch.as_tensor(self.slot_z, dtype=torch.float32, device=self.device)
        return self.act(inp.obs, z, rng=rng)

    def _collection_z(
        self, replay: MultiTaskReplay, task: int, episode: int, rng: np.random.Generator
    ) -> np.ndarray:
        """z for episode ``episode`` (a replay id) of ``task``: from the prior in the first
        ``prior_episodes`` of each cycle, else from the posterior given the task's encoder data."""
        c = self.cfg
        if episode % (c.prior_episodes + c.posterior_episodes) < c.prior_episodes:
            return rng.standard_normal(c.latent_dim)
        ids = self.posterior_ids.setdefault(task, [])
        ids.append(episode)
        del ids[: -(c.prior_episodes + c.posterior_episodes)]
        ctx = torch.as_tensor(self._context_batch(replay, [task], rng), device=self.device)
        with torch.no_grad():
            mean, var = self.encoder(ctx)
        eps = rng.standard_normal(c.latent_dim)
        return (mean[0] + var[0].sqrt() * torch.as_tensor(eps, dtype=torch.float32)).cpu().numpy()

    # ------------------------------------------------------------------ context from the replay
    def _encoder_slots(self, replay: MultiTaskReplay, task: int) -> np.ndarray:
        """Replay slots of the task's encoder data: its ``prior_episodes`` latest completed
        episodes not collected with a posterior z (all its stored transitions if none)."""
        found: list[np.ndarray] = []
        skip = set(self.posterior_ids.get(task, ()))
        eid = int(replay.current_episode[task]) - 1
        while eid >= 0 and len(found) < self.cfg.prior_episodes:
            if eid not in skip:
                key = (task, eid)
                cached = self._slots_cache.get(key)
                if (
                    cached is not None
                    and len(cached)
                    and (replay.episode[task, cached] != eid).any()
                ):
                    del self._slots_cache[key]  # the ring has overwritten part of it since
                if key not in self._slots_cache:
                    filled = int(replay.size[task])
                    self._slots_cache[key] = np.flatnonzero(replay.episode[task, :filled] == eid)
                if not len(self._slots_cache[key]):
                    break  # overwritten by the ring: older ones are gone too
                found.append(self._slots_cache[key])
            eid -= 1
        keep = {(task, int(replay.episode[task, s[0]])) for s in found}
        for key in [k for k in self._slots_cache if k[0] == task and k not in keep]:
            del self._slots_cache[key]
        if not found:
            return np.arange(int(replay.size[task]))
        return np.concatenate(found)

    def _context_batch(
        self, replay: MultiTaskReplay, tasks: Sequence[int], rng: np.random.Generator
    ) -> np.ndarray:
        """[len(tasks), embedding_batch_size, context features]: (s, a, r[, s']) drawn uniformly
        from each task's encoder data."""
        N = self.cfg.embedding_batch_size
        rows = []
        for t in tasks:
            slots = self._encoder_slots(replay, t)
            pick = slots[(rng.random(N) * len(slots)).astype(np.int64)]
            rows.append(
                self.context_rows(
                    replay.obs[t, pick],
                    replay.act[t, pick],
                    replay.rew[t, pick],
                    replay.next_obs_at(t, pick),
                )
            )
        return np.stack(rows)

    # ------------------------------------------------------------------ learning
    def warmup_description(self) -> str | None:
        return None

    def train_step(self, replay: MultiTaskReplay) -> dict[str, float]:
        """One step of sac.py ``_take_step`` on every training task at once."""
        c, dev = self.cfg, self.device
        T = replay.num_tasks
        ctx = torch.as_tensor(self._context_batch(replay, range(T), replay.rng), device=dev)
        fields = ("obs", "act", "rew", "next_obs", "done") + (SIL_FIELDS if c.sil else ())
        b = batch_to_torch(replay.sample(c.batch_size), dev, fields)
        b = {f: x.reshape(-1, *x.shape[2:]) for f, x in b.items()}  # task-major rows
        obs, act, rew, next_obs, done = (b[f] for f in ("obs", "act", "rew", "next_obs", "done"))
        mean, var = self.encoder(ctx)
        z_task = mean + var.sqrt() * torch.randn(mean.shape, device=dev)
        z = z_task.repeat_interleave(c.batch_size, 0)  # task-major, as the batch
        zd = z.detach()
        # Q nets and encoder: the encoder gets gradients from Q and the KL only
        kl = kl_to_prior(mean, var)
        q1, q2 = self.qf1(obs, act, z), self.qf2(obs, act, z)
        with torch.no_grad():
            target = c.reward_scale * rew + (1.0 - done) * c.gamma * self.vf_target(next_obs, zd)
        loss_q = (q1 - target).pow(2).mean() + (q2 - target).pow(2).mean()
        if c.sil:  # Q is in units of reward_scale x reward: so is the return it is held to
            ret, valid = c.reward_scale * b["mc_return"], b["mc_valid"]
            sil_q = c.sil_critic_term(q1, q2, ret, valid)
            loss_q = loss_q if sil_q is None else loss_q + sil_q
        loss_encoder = loss_q + c.kl_lambda * kl
        extra, metrics = self.encoder_extra_loss(mean, obs, act, rew, next_obs)
        if extra is not None:
            loss_encoder = loss_encoder + extra
        optimizers = [self.context_opt, self.qf_opt, *self.extra_optimizers()]
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss_encoder.backward()
        for opt in optimizers:
            opt.step()
        # V and policy, with z detached, against the updated Q nets
        noise = torch.randn(obs.shape[0], self.act_dim, device=dev)
        new_act, pi_mean, pi_log_std, log_pi = self.policy(obs, zd, noise)
        for q in (self.qf1, self.qf2):
            q.requires_grad_(False)
        min_q = torch.min(self.qf1(obs, new_act, zd), self.qf2(obs, new_act, zd))
        loss_v = F.mse_loss(self.vf(obs, zd), (min_q - log_pi).detach())
        self.vf_opt.zero_grad(set_to_none=True)
        loss_v.backward()
        self.vf_opt.step()
        soft_update(self.vf_target, self.vf, c.tau)
        loss_pi = (
            (log_pi - min_q).mean()
            + c.policy_mean_reg * pi_mean.pow(2).mean()
            + c.policy_std_reg * pi_log_std.pow(2).mean()
        )
        if c.sil:  # the mean action imitates stored actions whose return beat min Q
            sil_pi = c.sil_actor_term(
                self.max_action * torch.tanh(pi_mean), act, torch.min(q1, q2).detach(), ret, valid
            )
            loss_pi = loss_pi if sil_pi is None else loss_pi + sil_pi
        self.policy_opt.zero_grad(set_to_none=True)
        loss_pi.backward()
        self.policy_opt.step()
        for q in (self.qf1, self.qf2):
            q.requires_grad_(True)
        self.rl_steps += 1
        return {
            **metrics,
            "pearl/q_loss": float(loss_q.detach()),
            "pearl/v_loss": float(loss_v.detach()),
            "pearl/policy_loss": float(loss_pi.detach()),
            "pearl/kl": float(kl.detach()),
            "pearl/z_var": float(var.detach().mean()),
        }

    # extension points for algorithms built on PEARL (HiP-BMDP adds its model losses here)
    def encoder_extra_loss(
        self,
        mean: torch.Tensor,
        obs: torch.Tensor,
        act: torch.Tensor,
        rew: torch.Tensor,
        next_obs: torch.Tensor,
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """A term added to the loss of the Q nets and the encoder, given each task's posterior
        mean [T, L] (with its graph) and the SAC batch (task-major rows); and its metrics."""
        return None, {}

    def extra_optimizers(self) -> list[torch.optim.Optimizer]:
        """Optimisers stepped with the encoder's (for the parameters of the extra loss)."""
        return []

    # ------------------------------------------------------------------ evaluation
    def adapter(self, tasks: Sequence[float], replay: Any, rng: np.random.Generator) -> Adapter:
        return Adapter(self, len(tasks), rng)

    def posterior(self, context: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(z | c) for one task's transitions [N, features]."""
        with torch.no_grad():
            return self.encoder(torch.as_tensor(context, device=self.device))

    def task_latents(
        self, replay: MultiTaskReplay, rng: np.random.Generator, batches: int = 1
    ) -> torch.Tensor:
        """[tasks, latent_dim]: each training task's posterior mean given a context batch of its
        encoder data, averaged over ``batches`` batches (task by task): where z (HiP-BMDP's theta)
        places the tasks, for analysis and tests."""
        return torch.stack(
            [
                torch.stack(
                    [
                        self.posterior(self._context_batch(replay, [t], rng)[0])[0]
                        for _ in range(batches)
                    ]
                ).mean(0)
                for t in range(replay.num_tasks)
            ]
        )

    def context_rows(
        self, obs: np.ndarray, act: np.ndarray, rew: np.ndarray, next_obs: np.ndarray
    ) -> np.ndarray:
        """Context transitions (s, a, r[, s']) as the encoder reads them, one row each."""
        parts = [obs, act, rew[..., None]]
        if self.cfg.use_next_obs_in_context:
            parts.append(next_obs)
        return np.concatenate(parts, -1).astype(np.float32)

    # ------------------------------------------------------------------ collection state
    def collection_state(self) -> dict | None:
        return {
            "slot_key": [list(k) for k in self.slot_key],
            "slot_z": self.slot_z.copy(),
            "posterior_ids": {int(t): list(v) for t, v in self.posterior_ids.items()},
        }

    def load_collection_state(self, state: dict | None) -> None:
        if state is None:
            return
        self.slot_key = [(int(a), int(b)) for a, b in state["slot_key"]]
        self.slot_z = np.array(state["slot_z"], dtype=np.float64).reshape(
            len(self.slot_key), self.cfg.latent_dim
        )
        self.posterior_ids = {
            int(t): [int(i) for i in v] for t, v in state["posterior_ids"].items()
        }
        self._slots_cache = {}

    # ------------------------------------------------------------------ saving
    def modules(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        return {
            "encoder": self.encoder,
            "policy": self.policy,
            "qf1": self.qf1,
            "qf2": self.qf2,
            "vf": self.vf,
            "vf_target": self.vf_target,
            "policy_opt": self.policy_opt,
            "qf_opt": self.qf_opt,
            "vf_opt": self.vf_opt,
            "context_opt": self.context_opt,
        }


class Adapter:
    """PEARL at test time (rl_algorithm.py ``collect_paths``): exploration episodes with a fresh
    prior z each, then z from the posterior given every transition they saw."""

    def __init__(self, agent: PEARLAgent, tasks: int, rng: np.random.Generator):
        self.agent, self.rng = agent, rng
        self.context: list[list[np.ndarray]] = [[] for _ in range(tasks)]
        self.z = self._prior(tasks)
        self.adapted = False

    def _prior(self, tasks: int) -> torch.Tensor:
        z = self.rng.standard_normal((tasks, self.agent.cfg.latent_dim))
        return torch.as_tensor(z, dtype=torch.float32, device=self.agent.device)

    def explore(self, obs: np.ndarray, owner: np.ndarray, ctx: ContextWindow) -> np.ndarray:
        return self.agent.act(obs, self.z[torch.as_tensor(owner)])

    def observe(self, episodes: Sequence[Episode]) -> None:
        for i, episode in enumerate(episodes):
            self.context[i].append(
                self.agent.context_rows(episode.obs, episode.act, episode.rew, episode.next_obs)
            )
        self.z = self._prior(len(self.context))  # oyster resamples z after every path

    def act(self, obs: np.ndarray, owner: np.ndarray, ctx: ContextWindow) -> np.ndarray:
        if not self.adapted:  # the posterior, once, before the first scored step
            self.adapted = True
            for i, parts in enumerate(self.context):
                if parts:
                    mean, var = self.agent.posterior(np.concatenate(parts))
                    eps = torch.as_tensor(self.rng.standard_normal(mean.shape), dtype=mean.dtype)
                    self.z[i] = mean + var.sqrt() * eps.to(mean.device)
        return self.agent.act(obs, self.z[torch.as_tensor(owner)])
