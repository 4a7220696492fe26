"""MQL (Fakoor, Chaudhari, Soatto, Smola 2019, "Meta-Q-Learning"): multi-task TD3 whose actor and
critic read a recurrent context of the episode's recent history, and an off-policy adaptation to
a new task that reuses the training data, weighted by a propensity score.

Facts taken from the paper and its authors' code (amazon-research/meta-q-learning, CC-BY-NC 4.0:
no code is copied here; file names are given for the facts):

* Context (models/networks.py ``Context``): a GRU with hidden size 30 over the last 30
  (action, reward, state) tuples of the episode, zero-padded before the episode start; its final
  hidden state is concatenated to the inputs of the actor and of the critics. Actor and critic
  each own a context GRU, trained by their own TD3 loss.
* TD3 (main.py): two hidden layers of 300, learning rate 3e-4, batch 256, policy noise 0.3 clipped
  at 0.5, exploration noise 0.2, policy delay 2, tau 0.005, discount 0.99; one objective over
  all training tasks.
* Adaptation to a task (algs/MQL/mql.py ``adapt``, main.py ``collect_data_for_adaptaion``): a
  snapshot of about 2,000 transitions of the new task collected by the meta-trained policy
  without noise; fresh Adam optimisers (PyTorch's default learning rate, 1e-3); a logistic
  regression (L2, C = lam_csc 0.5) separating the actor-context features of the snapshot from
  those of training data (snapshot size / number of training tasks + 2 samples per training
  task); 10 TD3 iterations on the whole snapshot (snap_iter_nums); then 100 TD3 iterations on
  batches of 5 x 256 training transitions (main_snap_iter_nums, sample_mult) in which each
  sample's losses are weighted by beta = exp(-f(x)), f the regression's logit of "training
  data" clipped below at -beta_clip (1), beta under 0.1 set to 0, plus a proximal term
  prox_coef (0.1) * ||theta - theta_meta||^2 for actor and critic; the adapted networks act on
  the new task and are then discarded.
* Only new tasks are adapted to (main.py: the test tasks' ``evaluate_policy`` gets the meta
  learner, the training tasks' evaluation, ``enable_train_eval``, does not): a training task is
  scored by the meta-trained actor (``adapt_training_tasks`` adapts them too).

Where this differs: the history tuples are those of the K steps before step t (and t-K+1..t for
s'), without the authors' extra first entry (a random action with the initial state); the
logistic regression is solved by L-BFGS in PyTorch (the same convex objective as scikit-learn's
``LogisticRegression(C=lam_csc)``, intercept not penalised), not by scikit-learn; every training
step samples ``batch_size`` transitions of every training task, like every algorithm here (the
authors sample 256 from the pooled buffer of a meta-batch of tasks); the snapshot is
``adaptation_episodes`` whole episodes (2 x 1000 steps = the authors' 2,000 on MuJoCo).
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
from mcat.agents.ctd3 import TD3Params
from mcat.collect import ActInput, ContextWindow, Episode
from mcat.errors import MCATError
from mcat.evaluation import check_adaptation_episodes
from mcat.learners.sil import SILParams
from mcat.learners.td3 import actor_loss, critic_loss, soft_update, td3_target
from mcat.models.nets import mlp
from mcat.policies import add_exploration_noise
from mcat.replay import MultiTaskReplay, ReplayBatch
from mcat.tasks import TaskValue
from mcat.validation import check_int, check_number

BETA_FLOOR = 0.1  # mql.py get_propensity: smaller propensities are set to 0 "for stability"


@dataclass
class MQLConfig(TD3Params, SILParams):
    """Hyper-parameters of MQL; defaults from the authors' main.py (see the module docstring)."""

    hidden: tuple[int, ...] = (300, 300)
    """Hidden layers of actor and critics (hidden_sizes)."""
    policy_noise: float = 0.3
    """Std of the target policy smoothing noise (times max action)."""
    exploration_noise: float = 0.2
    """Std of the Gaussian exploration noise while collecting (times max action; expl_noise)."""
    history: int = 30
    """Past (action, reward, state) tuples of the episode read by the context GRU."""
    context_hidden: int = 30
    """Hidden size of the context GRU (its output size)."""
    adaptation_episodes: int = 2
    """Episodes of a new task collected (without noise) for adaptation: the snapshot."""
    lam_csc: float = 0.5
    """C of the L2-regularised logistic regression of the propensity score (smaller: stronger
    regularisation)."""
    beta_clip: float = 1.0
    """The regression's logit is clipped below at -beta_clip (so beta <= e^beta_clip)."""
    snap_iter_nums: int = 10
    """TD3 iterations on the whole snapshot."""
    main_snap_iter_nums: int = 100
    """Propensity-weighted TD3 iterations on training data, with the proximal term."""
    sample_mult: int = 5
    """Those iterations' batch is sample_mult * batch_size training transitions."""
    prox_coef: float = 0.1
    """Weight of ||theta - theta_meta||^2 in the adaptation losses."""
    adapt_lr: float = 1e-3
    """Learning rate of the fresh Adam optimisers of the adaptation (PyTorch's default, which
    the authors' adapt() gets by giving none)."""
    logistic_max_iter: int = 2000
    """L-BFGS iterations of the logistic regression."""
    adapt_training_tasks: bool = False
    """Adapt when evaluating a training task too (the authors' code scores training tasks with
    the meta-trained actor and adapts to test tasks only)."""

    def validate(self) -> None:
        self.validate_td3()
        self.validate_sil()
        for name in ("history", "context_hidden", "sample_mult", "logistic_max_iter"):
            check_int(f"agent.{name}", getattr(self, name), 1)
        for name in ("snap_iter_nums", "main_snap_iter_nums"):
            check_int(f"agent.{name}", getattr(self, name), 0)
        check_adaptation_episodes(self.adaptation_episodes)
        for name in ("adapt_lr", "lam_csc"):
            check_number(f"agent.{name}", getattr(self, name), 0.0, low_open=True)
        for name in ("beta_clip", "prox_coef"):
            check_number(f"agent.{name}", getattr(self, name), 0.0)


class ContextGRU(nn.Module):
    """The final hidden state of a GRU run over a history window [B, K, act + 1 + obs]."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, batch_first=True)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.gru(window)[1][0]


class MQLActor(nn.Module):
    def __init__(self, obs_dim, act_dim, ctx_in, ctx_hidden, hidden, max_action):
        super().__init__()
        self.context = ContextGRU(ctx_in, ctx_hidden)
        self.net = mlp(obs_dim + ctx_hidden, hidden, act_dim)
        self.max_action = max_action

    def forward(self, obs: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, self.context(window)], -1)
        return self.max_action * torch.tanh(self.net(x))


class MQLCritic(nn.Module):
    def __init__(self, obs_dim, act_dim, ctx_in, ctx_hidden, hidden):
        super().__init__()
        self.context = ContextGRU(ctx_in, ctx_hidden)
        self.q1 = mlp(obs_dim + act_dim + ctx_hidden, hidden, 1)
        self.q2 = mlp(obs_dim + act_dim + ctx_hidden, hidden, 1)

    def forward(self, obs, act, window) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act, self.context(window)], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def q1_only(self, obs, act, window) -> torch.Tensor:
        return self.q1(torch.cat([obs, act, self.context(window)], -1)).squeeze(-1)


def window_features(act: Any, rew: Any, obs: Any) -> Any:
    """The GRU's input: (action, reward, state) per step, in the authors' order."""
    cat = torch.cat if isinstance(act, torch.Tensor) else np.concatenate
    return cat([act, rew[..., None], obs], -1)


def episode_windows(episode: Episode, K: int) -> tuple[np.ndarray, np.ndarray]:
    """The history windows of every step of an episode: steps t-K..t-1 and t-K+1..t, zero before
    the start ([L, K, features] each)."""
    feats = window_features(episode.act, episode.rew, episode.obs)
    padded = np.concatenate([np.zeros((K, feats.shape[1]), np.float32), feats])
    idx = np.arange(len(feats))[:, None] + np.arange(K)[None, :]
    return padded[idx], padded[idx + 1]


@dataclass
class Batch:
    """TD3 inputs, flat [N, ...] tensors."""

    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor
    next_obs: torch.Tensor
    done: torch.Tensor
    window: torch.Tensor
    next_window: torch.Tensor
    mc_return: torch.Tensor | None = None  # for the self-imitation terms (--sil)
    mc_valid: torch.Tensor | None = None


class MQLAgent(AgentBase):
    # MQL's adaptation trains on the run's training data: `mcat eval` loads the replay for it
    adaptation_uses_replay: ClassVar[bool] = True
    policy_modules: ClassVar[tuple[str, ...]] = ("actor",)

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        cfg: MQLConfig | None = None,
        max_action: float = 1.0,
        device: torch.device | str = "cpu",
        train_tasks: Sequence[TaskValue] | None = None,
    ):
        c = self.cfg = cfg or MQLConfig()
        c.validate()
        # evaluation adapts to the other tasks only (None: every task is new to it)
        self.train_tasks = None if train_tasks is None else list(train_tasks)
        self.obs_dim, self.act_dim, self.max_action = obs_dim, act_dim, max_action
        dev = self.device = torch.device(device)
        ctx_in = act_dim + 1 + obs_dim
        self.actor = MQLActor(obs_dim, act_dim, ctx_in, c.context_hidden, c.hidden, max_action)
        self.critic = MQLCritic(obs_dim, act_dim, ctx_in, c.context_hidden, c.hidden)
        self.actor.to(dev)
        self.critic.to(dev)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        adam = adam_options(dev)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr, **adam)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr, **adam)
        self.rl_steps = 0

    # ------------------------------------------------------------------ acting
    def context(self, ctx_delta, ctx_act, ctx_mask) -> torch.Tensor:
        raise MCATError(
            "MQL's context reads rewards and states: it acts through act_collect and its adapter"
        )

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def act(
        self,
        obs: np.ndarray,
        z: torch.Tensor,
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """pi(s, history) for a batch, ``z`` being the history windows (a tensor [n, K, D])."""
        action = self.actor(self._tensor(obs), z).cpu().numpy()
        return add_exploration_noise(action, noise, self.max_action, rng)

    def window(self, ctx: ContextWindow | ActInput) -> torch.Tensor:
        if isinstance(ctx, ActInput):
            assert ctx.ctx_rew is not None and ctx.ctx_obs is not None
            return self._tensor(window_features(ctx.ctx_act, ctx.ctx_rew, ctx.ctx_obs))
        return self._tensor(window_features(ctx.act, ctx.rew, ctx.obs))

    def act_collect(self, inp: ActInput, noise: float, rng: np.random.Generator) -> np.ndarray:
        return self.act(inp.obs, self.window(inp), noise=noise, rng=rng)

    # ------------------------------------------------------------------ learning
    def warmup_description(self) -> str | None:
        return None

    def replay_batch(
        self,
        replay: MultiTaskReplay,
        per_task: int,
        rng: np.random.Generator | None = None,
        sil: bool = False,
    ) -> Batch:
        b = replay.sample(per_task, context=self.cfg.history, rng=rng)
        t = self._flat
        return Batch(
            t(b.obs),
            t(b.act),
            t(b.rew),
            t(b.next_obs),
            t(b.done),
            self.window_batch(b),
            t(window_features(b.next_ctx_act, b.next_ctx_rew, b.next_ctx_obs)),
            t(b.mc_return) if sil else None,
            t(b.mc_valid) if sil else None,
        )

    def _flat(self, x: np.ndarray) -> torch.Tensor:
        """[T, B, ...] -> a [T*B, ...] tensor."""
        return self._tensor(x).reshape(-1, *x.shape[2:])

    def window_batch(self, b: ReplayBatch) -> torch.Tensor:
        """The history windows of a replay batch, flat [T*B, K, features]."""
        return self._flat(window_features(b.ctx_act, b.ctx_rew, b.ctx_obs))

    def train_step(self, replay: MultiTaskReplay) -> dict[str, float]:
        """One TD3 step on ``batch_size`` transitions of every training task."""
        batch = self.replay_batch(replay, self.cfg.batch_size, sil=self.cfg.sil)
        return td3_step(self, batch, self.rl_steps)

    # ------------------------------------------------------------------ evaluation
    def adapter(
        self, tasks: Sequence[TaskValue], replay: MultiTaskReplay | None, rng: np.random.Generator
    ) -> Adapter:
        known = self.train_tasks if self.train_tasks and not self.cfg.adapt_training_tasks else []
        new = [v not in known for v in tasks]
        if replay is None and self.cfg.adaptation_episodes and any(new):
            raise MCATError("MQL's adaptation needs the run's training data (its replay)")
        return Adapter(self, new, replay, rng)

    # ------------------------------------------------------------------ saving
    def modules(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "actor_target": self.actor_target,
            "critic_target": self.critic_target,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
        }


def td3_step(
    nets: Any,
    b: Batch,
    step: int,
    beta: torch.Tensor | None = None,
    prox: tuple[nn.Module, nn.Module, float] | None = None,
    noise: torch.Tensor | None = None,
) -> dict[str, float]:
    """One TD3 iteration of ``nets`` (an MQLAgent or an adaptation copy: actor, critic, their
    targets and optimisers, cfg, max_action, rl_steps). With ``beta`` each sample's losses are
    weighted by it; with ``prox`` = (meta actor, meta critic, coef) the proximal term is added.
    The actor and targets are updated when ``step`` is a multiple of the policy delay."""
    c, m = nets.cfg, nets.max_action
    target = td3_target(
        nets.critic_target,
        nets.actor_target,
        b.next_obs,
        b.next_window,
        b.rew,
        b.done,
        c.gamma,
        c.policy_noise * m,
        c.noise_clip * m,
        m,
        noise,
    )
    q1, q2 = nets.critic(b.obs, b.act, b.window)
    if beta is None:
        loss_q = critic_loss(q1, q2, target)
    else:
        loss_q = (beta * ((q1 - target).pow(2) + (q2 - target).pow(2))).mean()
    if prox is not None:
        loss_q = loss_q + prox[2] * _sq_distance(nets.critic, prox[1])
    sil = b.mc_return is not None and b.mc_valid is not None  # meta-training with --sil
    if sil:
        sil_q = c.sil_critic_term(q1, q2, b.mc_return, b.mc_valid)
        loss_q = loss_q if sil_q is None else loss_q + sil_q
    nets.critic_opt.zero_grad(set_to_none=True)
    loss_q.backward()
    nets.critic_opt.step()
    nets.rl_steps += 1
    metrics = {"mql/critic_loss": float(loss_q.detach())}
    if step % c.policy_delay == 0:
        nets.critic.requires_grad_(False)
        pi = nets.actor(b.obs, b.window)
        if beta is None:
            loss_pi = actor_loss(nets.critic, b.obs, pi, b.window)
        else:
            loss_pi = -(beta * nets.critic.q1_only(b.obs, pi, b.window)).mean()
        if prox is not None:
            loss_pi = loss_pi + prox[2] * _sq_distance(nets.actor, prox[0])
        if sil:
            q_min = torch.min(q1, q2).detach()
            sil_pi = c.sil_actor_term(pi, b.act, q_min, b.mc_return, b.mc_valid)
            loss_pi = loss_pi if sil_pi is None else loss_pi + sil_pi
        nets.actor_opt.zero_grad(set_to_none=True)
        loss_pi.backward()
        nets.critic.requires_grad_(True)
        nets.actor_opt.step()
        soft_update(nets.critic_target, nets.critic, c.tau)
        soft_update(nets.actor_target, nets.actor, c.tau)
        metrics["mql/actor_loss"] = float(loss_pi.detach())
    return metrics


def _sq_distance(model: nn.Module, anchor: nn.Module) -> torch.Tensor:
    pairs = zip(model.parameters(), anchor.parameters(), strict=True)
    return torch.stack([(p - q.detach()).pow(2).sum() for p, q in pairs]).sum()


def fit_logistic(x: torch.Tensor, y: torch.Tensor, C: float, max_iter: int) -> torch.Tensor:
    """Weights [D + 1] (last: intercept) minimising C * sum log(1 + exp(-y f(x))) + |w|^2 / 2,
    f(x) = x.w + b, y in {-1, +1} (scikit-learn's L2 logistic regression, intercept not
    penalised), by L-BFGS in float64."""
    x, y = x.double(), y.double()
    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w], lr=1.0, max_iter=max_iter, tolerance_grad=1e-8, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        f = x @ w[:-1] + w[-1]
        loss = C * torch.nn.functional.softplus(-y * f).sum() + 0.5 * w[:-1].pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


class _Copy:
    """An adaptation copy of the networks with fresh optimisers (what td3_step updates)."""

    def __init__(self, agent: MQLAgent):
        self.cfg, self.max_action, self.rl_steps = agent.cfg, agent.max_action, 0
        self.actor, self.critic = copy.deepcopy(agent.actor), copy.deepcopy(agent.critic)
        self.actor_target = copy.deepcopy(agent.actor_target)
        self.critic_target = copy.deepcopy(agent.critic_target)
        lr = agent.cfg.adapt_lr
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr)


class Adapter:
    """MQL at test time on each new task: the snapshot (adaptation episodes, the meta-trained
    policy without noise), the propensity score, the snapshot iterations, the weighted iterations
    on the training data, then the adapted actor acts; on a task it was trained on (``new``
    false) the meta-trained actor acts."""

    def __init__(
        self,
        agent: MQLAgent,
        new: Sequence[bool],
        replay: MultiTaskReplay | None,
        rng: np.random.Generator,
    ):
        self.agent, self.replay, self.rng, self.new = agent, replay, rng, list(new)
        self.snapshot: list[list[Episode]] = [[] for _ in self.new]
        self.actors: list[nn.Module] | None = None

    def explore(self, obs: np.ndarray, owner: np.ndarray, ctx: ContextWindow) -> np.ndarray:
        return self.agent.act(obs, self.agent.window(ctx))

    def observe(self, episodes: Sequence[Episode]) -> None:
        for i, episode in enumerate(episodes):
            self.snapshot[i].append(episode)

    @torch.no_grad()
    def act(self, obs: np.ndarray, owner: np.ndarray, ctx: ContextWindow) -> np.ndarray:
        if self.actors is None:
            with torch.enable_grad():
                self.actors = [
                    self._adapt(episodes) if new else self.agent.actor
                    for episodes, new in zip(self.snapshot, self.new, strict=True)
                ]
        window = self.agent.window(ctx)
        s = self.agent._tensor(obs)
        out = np.zeros((len(obs), self.agent.act_dim), dtype=np.float32)
        for task in np.unique(owner):
            rows = np.flatnonzero(owner == task)
            out[rows] = self.actors[task](s[rows], window[rows]).cpu().numpy()
        return out

    def _snapshot_batch(self, episodes: list[Episode]) -> Batch:
        K, t = self.agent.cfg.history, self.agent._tensor
        windows = [episode_windows(e, K) for e in episodes]
        cat = lambda f: t(np.concatenate([f(e) for e in episodes]))  # noqa: E731
        return Batch(
            cat(lambda e: e.obs),
            cat(lambda e: e.act),
            cat(lambda e: e.rew),
            cat(lambda e: e.next_obs),
            cat(lambda e: e.terminated.astype(np.float32)),
            t(np.concatenate([w[0] for w in windows])),
            t(np.concatenate([w[1] for w in windows])),
        )

    def _adapt(self, episodes: list[Episode]) -> nn.Module:
        agent, c = self.agent, self.agent.cfg
        if not episodes:
            return agent.actor
        assert self.replay is not None
        gen = torch.Generator(device=agent.device).manual_seed(int(self.rng.integers(2**63)))
        snap = self._snapshot_batch(episodes)
        w, _ = propensity_model(agent, snap.window, self.replay, self.rng)
        nets = _Copy(agent)
        scale = c.policy_noise * agent.max_action

        def noise(b: Batch) -> torch.Tensor:  # target smoothing noise from the adapter's seed
            return torch.randn(b.act.shape, generator=gen, device=agent.device) * scale

        for it in range(c.snap_iter_nums):
            td3_step(nets, snap, it, noise=noise(snap))
        meta = (agent.actor, agent.critic, c.prox_coef)
        per_task = math.ceil(c.sample_mult * c.batch_size / self.replay.num_tasks)
        for it in range(c.main_snap_iter_nums):
            b = agent.replay_batch(self.replay, per_task, self.rng)
            # the features of the actor being adapted, as in the authors' code
            beta = propensity(nets.actor, w, b.window, c.beta_clip)
            td3_step(nets, b, it, beta=beta, prox=meta, noise=noise(b))
        return nets.actor


def propensity_model(
    agent: MQLAgent, snapshot: torch.Tensor, replay: MultiTaskReplay, rng: np.random.Generator
) -> tuple[torch.Tensor, float]:
    """The logistic regression (weights and intercept) of "training data" (+1) against the new
    task's snapshot (-1) on the actor's context features of their history windows, and its
    accuracy on its own data; the training data are len(snapshot) / tasks + 2 transitions of
    each training task (mql.py ``train_cs``)."""
    c = agent.cfg
    negatives = agent.replay_batch(replay, len(snapshot) // replay.num_tasks + 2, rng)
    with torch.no_grad():
        x = torch.cat([agent.actor.context(snapshot), agent.actor.context(negatives.window)])
    x = x.cpu()
    y = torch.cat([-torch.ones(len(snapshot)), torch.ones(len(negatives.window))])
    w = fit_logistic(x, y, c.lam_csc, c.logistic_max_iter)
    accuracy = float(((x.double() @ w[:-1] + w[-1]).sign() == y).double().mean())
    return w, accuracy


@torch.no_grad()
def propensity(
    actor: MQLActor, w: torch.Tensor, windows: torch.Tensor, beta_clip: float
) -> torch.Tensor:
    """beta = exp(-f(x)) of training samples with history ``windows`` (f clipped below at
    -beta_clip; beta under 0.1 set to 0): large for data like the new task's."""
    f = actor.context(windows).double().cpu() @ w[:-1] + w[-1]
    beta = torch.exp(-f.clamp(min=-beta_clip)).float()
    return torch.where(beta < BETA_FLOOR, torch.zeros_like(beta), beta).to(windows.device)
