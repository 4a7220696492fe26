"""The fast path's learner: the ctd3 and MCAT updates of several independent seeds at once, as
fixed sequences of kernels that are captured in CUDA graphs on a GPU.

Why: with 256-unit networks and batches of 256 a GPU is launch-bound; one MCAT step is hundreds
of small kernels with Python and host synchronisations between them (results/gpu/README.md).
Here every update is one graph replay:

- each seed's networks stay the modules of its ordinary agent (:class:`CTD3Agent`,
  :class:`MCATAgent`), stacked along a leading seed dimension; the modules' own code runs on
  them through ``torch.func.vmap`` and ``functional_call``, so the networks and losses are the
  ones the ordinary path uses, batched over seeds (a linear layer becomes one batched matrix
  product for all seeds);
- one Adam over the stacked tensors is exactly one Adam per seed (Adam is element-wise), and the
  summed loss gives each seed the gradient of its own loss;
- batches are drawn on the device from the :class:`DeviceReplay` with each seed's own
  generator, and the running normalisers are updated with masked sums instead of boolean
  indexing, so no step reads anything back to the host;
- losses go to small device buffers, read only when logged; a non-finite loss sets a per-seed
  flag that comes back with the next actions (:meth:`act`), so the NaN check costs no extra
  synchronisation;
- optionally (``compile``, ``--compile``) the steps are compiled by torch.compile before they are
  captured, so that each becomes fewer, fused kernels (benchmarks/fast_kernels.py counts them).

The learner owns the training state while it runs; :meth:`sync_to_agents` writes it back into
the ordinary agents (networks, optimiser moments, counters) before they are evaluated or
checkpointed, so checkpoints and evaluation are exactly those of the ordinary path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from copy import deepcopy

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap
from torch.nn.utils.stateless import _reparametrize_module
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from mcat.agents.base import adam_options
from mcat.agents.ctd3 import CTD3Agent
from mcat.agents.mcat import MCATAgent
from mcat.learners.sil import sil_actor_loss, sil_critic_loss
from mcat.learners.td3 import actor_loss, critic_loss, td3_target
from mcat.models.nets import RunningNorm
from mcat.replay.device import DeviceReplay

Tensors = dict[str, torch.Tensor]
_MODULES = (
    "encoder",
    "forward_model",
    "actor",
    "critic",
    "actor_target",
    "critic_target",
    "translator",
)
_OPTIMIZERS = {
    "model_opt": ("encoder", "forward_model"),
    "actor_opt": ("actor",),
    "critic_opt": ("critic",),
    "translator_opt": ("translator",),
}
WARMUP_CALLS = 2  # eager calls of a step before it is captured (CUDA graph docs: warm up first)


class _BatchedLinear(torch.autograd.Function):
    """``F.linear`` whose rule under vmap is one batched product with the bias added in it
    (``baddbmm``); vmap's own rule for a linear layer launches three kernels (a batched product,
    the bias multiplied by one, an add). Under vmap autograd differentiates the ``baddbmm``;
    ``backward`` serves calls outside vmap."""

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, _ = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        return grad @ weight, flat.T @ x.reshape(-1, x.shape[-1]), flat.sum(0)

    @staticmethod
    def vmap(info, in_dims, x, weight, bias):
        S = info.batch_size

        def seeds_first(t: torch.Tensor, dim: int | None) -> torch.Tensor:
            return t.expand(S, *t.shape) if dim is None else t.movedim(dim, 0)

        x, weight, bias = (
            seeds_first(t, d) for t, d in zip((x, weight, bias), in_dims, strict=True)
        )
        rows = x.reshape(S, -1, x.shape[-1])
        out = torch.baddbmm(bias.unsqueeze(1), rows, weight.transpose(1, 2))
        return out.view(*x.shape[:-1], weight.shape[1]), 0


class _VmapLinear(torch.nn.Linear):
    """A linear layer computed through :class:`_BatchedLinear` (the same parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _BatchedLinear.apply(x, self.weight, self.bias)


def vmap_friendly(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` whose linear layers (all with a bias) run as one ``baddbmm`` under
    vmap: the same code and parameter names, fewer kernels."""
    copy = deepcopy(module)
    for sub in copy.modules():
        if type(sub) is torch.nn.Linear and sub.bias is not None:
            sub.__class__ = _VmapLinear
    return copy


def without_counts(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` whose running normalisers hold no sample count, for compiled steps:
    only a normaliser's update reads its count (the learner's own update works on the stacked
    tensors), and torch.compile, which lifts every buffer of a module it calls, guards a 0-d
    count on the CPU by reading its value, a host read at every call."""
    copy = deepcopy(module)
    for sub in copy.modules():
        if isinstance(sub, RunningNorm):
            del sub._buffers["count"]
    return copy


def stacked(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(xs)``; for one tensor a view, not a copy."""
    return xs[0].unsqueeze(0) if len(xs) == 1 else torch.stack(list(xs))


@contextmanager
def bound(module: torch.nn.Module, tensors: Tensors):
    """``module`` computing with ``tensors`` (one seed's, inside vmap) instead of its own."""
    with _reparametrize_module(module, tensors):
        yield module


def masked_contrastive(z: torch.Tensor, margin: float) -> torch.Tensor:
    """:func:`mcat.learners.dynamics.contrastive_loss` written with masked sums instead of
    boolean indexing (same value, fixed shapes: it can be vmapped and captured)."""
    tasks, n, dim = z.shape
    flat = z.reshape(tasks * n, dim)
    sq = (flat.unsqueeze(0) - flat.unsqueeze(1)).pow(2).sum(-1)
    labels = torch.arange(tasks, device=z.device).repeat_interleave(n)
    same = (labels.unsqueeze(0) == labels.unsqueeze(1)).float()
    pairs = same * (1.0 - torch.eye(tasks * n, device=z.device))
    loss = (sq * pairs).sum() / pairs.sum() if n > 1 else z.new_zeros(())
    if tasks > 1:
        other = 1.0 - same
        hinge = torch.relu(margin - torch.sqrt(sq + 1e-12)).pow(2)
        loss = loss + (hinge * other).sum() / other.sum()
    return loss


def update_norm(t: Tensors, prefix: str, x: torch.Tensor, mask: torch.Tensor) -> None:
    """:meth:`mcat.models.nets.RunningNorm.update` for every seed at once: ``x`` [S, ..., d],
    ``mask`` [S, ...]; masked sums replace the boolean selection of valid rows."""
    S, d = x.shape[0], x.shape[-1]
    x, m = x.reshape(S, -1, d), mask.reshape(S, -1, 1)
    n = m.sum(1)  # [S, 1]
    batch_mean = (x * m).sum(1) / n.clamp_min(1.0)
    batch_var = ((x - batch_mean[:, None]).pow(2) * m).sum(1) / n.clamp_min(1.0)
    mean, var, count = t[prefix + "mean"], t[prefix + "var"], t[prefix + "count"]
    total = count + n[:, 0].double()
    w = (n[:, 0].double() / total.clamp_min(1.0)).float()[:, None]
    delta = batch_mean - mean
    ok = n > 0
    var.copy_(torch.where(ok, var * (1 - w) + batch_var * w + delta.pow(2) * w * (1 - w), var))
    mean.copy_(torch.where(ok, mean + delta * w, mean))
    count.copy_(torch.where(ok[:, 0], total, count))


class FastLearner:
    """The training state of ``agents`` (one per seed, same class and config) stacked on their
    device, trained from ``replay`` (its seed rows in the agents' order) with one generator per
    seed (``generators``). ``graphs`` (CUDA graphs) defaults to True on a CUDA device, ``batched``
    (vmap over seeds) to True on a CUDA device with several seeds; False elsewhere. ``compile``
    (off by default) compiles each step's networks and losses with torch.compile: the same
    computation in fewer kernels, equal to the eager step within float rounding."""

    def __init__(
        self,
        agents: list[CTD3Agent],
        replay: DeviceReplay,
        generators: list[torch.Generator],
        graphs: bool | None = None,
        batched: bool | None = None,
        log: Callable[[str], None] = print,
        compile: bool = False,
    ):
        a0 = agents[0]
        self.agents, self.replay, self.gens, self.log = agents, replay, generators, log
        self.cfg = c = a0.cfg
        self.device = dev = torch.device(a0.device)
        self.S, self.T = len(agents), replay.num_tasks
        self.mcat = isinstance(a0, MCATAgent)
        self.use_translator = (
            self.mcat and bool(getattr(c, "policy_transfer", False)) and self.T > 1
        )
        self.graphs = dev.type == "cuda" if graphs is None else graphs
        # one seed runs its modules as they are: vmap would add kernels (a linear layer becomes a
        # batched product, a bias multiply and an add; benchmarks/fast_kernels.py)
        self.batched = (dev.type == "cuda" and self.S > 1) if batched is None else batched
        self.compile = compile
        self._gather = replay.gather
        if compile:
            import torch._dynamo.config as dynamo

            log("compiling the steps with torch.compile as they first run (a minute or more)")
            # every per-seed function goes through one wrapper (the loop over seeds, or vmap's),
            # whose compiled versions dynamo keeps apart by their guards: one for each of about
            # eight step kinds and acting sizes, its default limit
            dynamo.recompile_limit = max(dynamo.recompile_limit, 64)
            # a function that fails to compile runs eagerly (torch logs why), as a step whose
            # capture fails does: the run goes on with the same computation, not into a dead end
            dynamo.suppress_errors = True
            # and the parts around them: index arithmetic, gathers and masks, the normalisers'
            # updates, the loss records and the whole acting step fuse into a few kernels each
            self._gather = torch.compile(replay.gather, dynamic=False)
            self._update_norms = torch.compile(self._update_norms, dynamic=False)  # type: ignore[method-assign]
            self._act_step = torch.compile(self._act_step, dynamic=False)  # type: ignore[method-assign]
            self._note = torch.compile(self._note, dynamic=False)  # type: ignore[method-assign]
        self.max_action = a0.max_action
        mods = a0.modules()
        self.names = [n for n in _MODULES if n in mods]
        # seed 0's modules: their code (not their tensors) computes every seed's step; vmapped,
        # through copies whose linear layers are one kernel each; compiled, through copies
        # without the normalisers' sample counts (see without_counts)
        self._modules: dict[str, torch.nn.Module] = {}
        for n in self.names:
            module = mods[n]
            assert isinstance(module, torch.nn.Module)
            self._modules[n] = module
        self._compute = dict(self._modules)
        if self.batched:
            self._compute = {n: vmap_friendly(m) for n, m in self._compute.items()}
        if compile:
            self._compute = {n: without_counts(m) for n, m in self._compute.items()}
        # the names of the tensors each computing module holds: what functional_call gets
        self._holds = {
            n: {k for k, _ in (*m.named_parameters(), *m.named_buffers())}
            for n, m in self._compute.items()
        }
        # stacked tensors per module: parameters (leaves with their requires_grad) and buffers
        self.t: dict[str, Tensors] = {}
        self._index: dict[int, torch.Tensor] = {}  # id(seed 0's parameter) -> stacked tensor
        for name in self.names:
            own = [getattr(a, name) for a in agents]
            stacked: Tensors = {}
            for key, p in own[0].named_parameters():
                st = torch.stack([dict(m.named_parameters())[key].detach() for m in own])
                stacked[key] = st.requires_grad_(p.requires_grad)
                self._index[id(p)] = stacked[key]
            for key, _ in own[0].named_buffers():
                stacked[key] = torch.stack([dict(m.named_buffers())[key] for m in own]).clone()
            self.t[name] = stacked
        capturable = dev.type == "cuda"
        self.opts: dict[str, torch.optim.Adam] = {}
        for oname in _OPTIMIZERS:
            if oname not in mods:
                continue
            ref = mods[oname]
            assert isinstance(ref, torch.optim.Optimizer)
            groups = [
                {
                    "params": [self._index[id(p)] for p in g["params"]],
                    "lr": g["lr"],
                    "weight_decay": g["weight_decay"],
                }
                for g in ref.param_groups
            ]
            # fused: one kernel for all of an optimiser's tensors (foreach takes about a dozen),
            # and the ordinary agents' Adam (adam_options); capturable keeps it graph-safe
            self.opts[oname] = torch.optim.Adam(groups, capturable=capturable, **adam_options(dev))
        self._load_optimizer_states()
        self.rl_steps = a0.rl_steps
        self.model_steps_done = a0.model_steps_done
        self.translator_steps_done = getattr(a0, "translator_steps_done", 0)
        z_dim = a0.z_dim
        self.features = torch.zeros(self.S, self.T, max(z_dim, 1), device=dev)
        self.has_features = False
        if self.mcat and getattr(a0, "features", None) is not None:
            self.features.copy_(torch.stack([a.features for a in agents]))  # type: ignore[attr-defined]
            self.has_features = True
        # losses of the last step of each kind, per seed, and the non-finite flags
        self.losses: Tensors = {}
        self.bad = torch.zeros(self.S, dtype=torch.bool, device=dev)
        self._graphs: dict[str, torch.cuda.CUDAGraph] = {}
        self._calls: dict[str, int] = {}
        self._eager: set[str] = set()  # steps whose capture failed
        self._act_io: dict[str, torch.Tensor] = {}
        self._synced: tuple[int, int, int] | None = None
        # On CUDA the gradient steps run on their own stream, so that acting and the environments
        # of the next round overlap a step that changes nothing acting reads (a critic-only TD3
        # step); acting waits for the others, and replay writes wait for every step (which read
        # the replay). The order of every read and write is that of the serial loop.
        self.train_stream = torch.cuda.Stream(dev) if self.graphs else None
        # acting runs on the current stream, or on this one when set (an experiment, not
        # measured yet: a high-priority stream, so that acting is not queued behind the kernels
        # of a critic-only step; benchmarks/throughput.py --fast-act-priority)
        self.act_stream: torch.cuda.Stream | None = None
        self._acting_stale = False
        replay.wait_for = self.train_stream
        if self.use_translator:
            T = self.T
            src, tgt = torch.meshgrid(torch.arange(T), torch.arange(T), indexing="ij")
            keep = src != tgt
            self._pairs = (src[keep].to(dev), tgt[keep].to(dev))

    @property
    def m(self) -> dict[str, torch.nn.Module]:
        """The modules whose code computes the steps (see ``batched`` and ``compile``)."""
        return self._compute

    # ------------------------------------------------------------------ state exchange
    @staticmethod
    def _params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
        """An optimiser's parameters in group order (the same order for an agent's optimiser
        and its stacked twin, which was built group by group from it)."""
        return [p for g in opt.param_groups for p in g["params"]]

    def _agent_optimizer(self, oname: str, agent: CTD3Agent) -> torch.optim.Optimizer:
        ref = agent.modules()[oname]
        assert isinstance(ref, torch.optim.Optimizer)
        return ref

    def _load_optimizer_states(self) -> None:
        """Adam moments and step counts from the agents' optimisers (after a resume)."""
        for oname, opt in self.opts.items():
            refs = [self._agent_optimizer(oname, a) for a in self.agents]
            per_seed = [self._params(r) for r in refs]
            for i, st in enumerate(self._params(opt)):
                states = [r.state.get(ps[i], {}) for r, ps in zip(refs, per_seed, strict=True)]
                if not all(states):
                    continue
                opt.state[st] = {
                    "step": torch.tensor(
                        float(states[0]["step"]),
                        dtype=torch.float32,
                        device=self.device if opt.defaults["capturable"] else "cpu",
                    ),
                    "exp_avg": torch.stack([s["exp_avg"] for s in states]).to(self.device),
                    "exp_avg_sq": torch.stack([s["exp_avg_sq"] for s in states]).to(self.device),
                }

    @torch.no_grad()
    def sync_to_agents(self) -> None:
        """Write the stacked state back into every seed's agent (networks, normalisers,
        optimiser moments, counters, task features)."""
        self.wait()
        stamp = (self.rl_steps, self.model_steps_done, self.translator_steps_done)
        if stamp == self._synced:
            return
        self._synced = stamp
        for s, agent in enumerate(self.agents):
            for name in self.names:
                module = getattr(agent, name)
                for key, tensor in (*module.named_parameters(), *module.named_buffers()):
                    tensor.copy_(self.t[name][key][s])
            for oname, opt in self.opts.items():
                ref = self._agent_optimizer(oname, agent)
                on_device = ref.defaults.get("fused") or ref.defaults.get("capturable")
                for p, st in zip(self._params(ref), self._params(opt), strict=True):
                    state = opt.state.get(st)
                    if not state:
                        continue
                    ref.state[p] = {
                        "step": torch.tensor(
                            float(state["step"]),
                            dtype=torch.float32,
                            device=p.device if on_device else "cpu",
                        ),
                        "exp_avg": state["exp_avg"][s].clone(),
                        "exp_avg_sq": state["exp_avg_sq"][s].clone(),
                    }
            agent.rl_steps = self.rl_steps
            agent.model_steps_done = self.model_steps_done
            if isinstance(agent, MCATAgent):
                agent.translator_steps_done = self.translator_steps_done
                agent.features = self.features[s].clone() if self.has_features else None

    # ------------------------------------------------------------------ running a step
    def _run(self, key: str, fn: Callable[[], None]) -> None:
        """``fn`` eagerly, or (on CUDA) as a graph captured after WARMUP_CALLS eager calls."""
        if not self.graphs:
            fn()
            return
        if key in self._eager:
            fn()
            return
        graph = self._graphs.get(key)
        if graph is None:
            calls = self._calls[key] = self._calls.get(key, 0) + 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            if calls <= WARMUP_CALLS:
                with torch.cuda.stream(side):
                    fn()
                torch.cuda.current_stream().wait_stream(side)
                return
            for opt in self.opts.values():
                opt.zero_grad(set_to_none=True)  # grads are then allocated inside the graph
            graph = torch.cuda.CUDAGraph()
            for gen in self.gens:
                graph.register_generator_state(gen)
            try:
                with torch.cuda.graph(graph):
                    fn()
            except RuntimeError as exc:  # an op that cannot be captured: run it eagerly
                self.log(
                    f"CUDA graph capture of the {key} step failed "
                    f"({str(exc).splitlines()[0]}); it runs eagerly"
                )
                self._eager.add(key)
                torch.cuda.synchronize()
                fn()
                return
            self._graphs[key] = graph
        graph.replay()

    def _per_seed(self, fn: Callable) -> Callable:
        """``fn`` (one seed's computation) for every seed: vmapped (one batched kernel for all
        seeds), or on a CPU a loop over the seeds, which computes each seed exactly as a run of
        that seed alone does (so a multi-seed run's seeds equal single-seed runs bit for bit).
        With ``compile``, that function compiled by torch.compile (inductor): its forward and
        backward become fewer, fused kernels."""
        per_seed = self._seeds_of(fn)
        return torch.compile(per_seed, dynamic=False) if self.compile else per_seed

    def _seeds_of(self, fn: Callable) -> Callable:
        if self.batched:
            return vmap(fn)

        def looped(*args):
            # views of every seed, so that the backward adds no kernel (one seed) or one stack
            # per tensor (several; indexing would add a zero-fill and a copy per seed)
            leaves, spec = tree_flatten(args)
            one = self.S == 1
            split = [
                None if not isinstance(x, torch.Tensor) else (x.squeeze(0),) if one else x.unbind()
                for x in leaves
            ]

            def seed(s: int) -> list:
                return [x if u is None else u[s] for x, u in zip(leaves, split, strict=True)]

            outs = [fn(*tree_unflatten(seed(s), spec)) for s in range(self.S)]
            return tree_map(lambda *xs: stacked(xs), *outs)

        return looped

    def _read(self, name: str, detach: bool = False) -> Tensors:
        """The stacked tensors of module ``name`` that its computing module holds, for
        functional_call (compiled, no normaliser's sample count: :func:`without_counts`)."""
        held = self._holds[name]
        return {k: v.detach() if detach else v for k, v in self.t[name].items() if k in held}

    def _uniform(self, batch: int) -> torch.Tensor:
        """[S*T, batch] uniform numbers, each seed's rows from its own generator."""
        rows = [torch.rand(self.T, batch, generator=g, device=self.device) for g in self.gens]
        return rows[0] if self.S == 1 else torch.cat(rows)

    def _sample(self, batch: int, context: int = 0, future: int = 0) -> Tensors:
        """A batch of every seed and task, [S, T, batch, ...]."""
        b = self._gather(self._uniform(batch), context, future)
        return {k: v.view(self.S, self.T, *v.shape[1:]) for k, v in b.items()}

    def _record(self, name: str, value: torch.Tensor) -> None:
        """Keep a per-seed loss (no read-back) and flag the seeds where it is not finite."""
        if name not in self.losses:
            self.losses[name] = torch.zeros(self.S, device=self.device)
        self._note(self.losses[name], value.detach())

    def _note(self, buffer: torch.Tensor, value: torch.Tensor) -> None:
        """:meth:`_record`'s kernels (one fused kernel when compiled)."""
        buffer.copy_(value)
        self.bad.logical_or_(~torch.isfinite(value))

    # ------------------------------------------------------------------ C + F
    @torch.no_grad()
    def _update_norms(self, b: Tensors) -> None:
        """C's and F's running normalisers, from a C+F batch (as the ordinary step's updates)."""
        enc, fm = self.t["encoder"], self.t["forward_model"]
        update_norm(enc, "delta_norm.", b["ctx_delta"], b["ctx_mask"])
        update_norm(enc, "act_norm.", b["ctx_act"], b["ctx_mask"])
        update_norm(fm, "in_norm.", torch.cat([b["fut_obs"], b["fut_act"]], -1), b["fut_mask"])
        update_norm(fm, "target_norm.", b["fut_delta"], b["fut_mask"])

    def _model_step(self) -> None:
        c, m = self.cfg, self.m
        b = self._sample(c.model_batch_size, context=c.history, future=c.future)
        self._update_norms(b)

        def seed_loss(pe, pf, b):
            z = functional_call(m["encoder"], pe, (b["ctx_delta"], b["ctx_act"], b["ctx_mask"]))
            steps = b["fut_obs"].shape[2]
            z_future = z.unsqueeze(2).expand(-1, -1, steps, -1)
            with bound(m["forward_model"], pf) as F:
                nll = F.nll(b["fut_obs"], b["fut_act"], z_future, b["fut_delta"], b["fut_mask"])
            cont = masked_contrastive(z[:, : c.contrastive_samples], c.contrastive_margin)
            return nll, cont

        nll, cont = self._per_seed(seed_loss)(self._read("encoder"), self._read("forward_model"), b)
        loss = nll + c.contrastive_weight * cont if c.contrastive_weight > 0 else nll
        opt = self.opts["model_opt"]
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        self._record("model/forward_nll", nll)
        if c.contrastive_weight > 0:
            self._record("model/contrastive", cont)

    # ------------------------------------------------------------------ H
    def _feature_step(self) -> None:
        """The task features z^(i): mean context over ``feature_segments`` segments per task."""
        c, m = self.cfg, self.m
        b = self._sample(c.feature_segments, context=c.history)  # type: ignore[attr-defined]
        pe = self._read("encoder", detach=True)
        with torch.no_grad():
            z = self._per_seed(lambda p, d, u, k: functional_call(m["encoder"], p, (d, u, k)))(
                pe, b["ctx_delta"], b["ctx_act"], b["ctx_mask"]
            )
            self.features.copy_(z.mean(2))

    def _translator_step(self) -> None:
        c = self.cfg
        a, m = self.agents[0], self.m
        assert isinstance(a, MCATAgent)
        b = self._sample(c.translator_batch_size)  # type: ignore[attr-defined]
        src, tgt = self._pairs
        pf = self._read("forward_model", detach=True)
        objective = c.translator_objective  # type: ignore[attr-defined]

        def seed_loss(ph, pf, obs, act, delta, feats):
            B = obs.shape[1]
            zs = feats[src].unsqueeze(1).expand(-1, B, -1)
            zt = feats[tgt].unsqueeze(1).expand(-1, B, -1)
            act_tgt = functional_call(m["translator"], ph, (obs[src], act[src], zs, zt))
            with bound(m["forward_model"], pf) as F:
                if objective == "nll":
                    return F.nll(obs[src], act_tgt, zt, delta[src])
                return F.mean_distance(obs[src], act_tgt, zt, delta[src]).mean()

        loss = self._per_seed(seed_loss)(
            self.t["translator"], pf, b["obs"], b["act"], b["next_obs"] - b["obs"], self.features
        )
        opt = self.opts["translator_opt"]
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        self._record("translator/loss", loss)

    # ------------------------------------------------------------------ TD3 (+ SIL)
    def _rl_step(self, update_actor: bool) -> None:
        c, a, m = self.cfg, self.agents[0], self.m
        history = c.history if "encoder" in self.t else 0
        b = self._sample(c.batch_size, context=history)
        N = self.T * c.batch_size
        draws = [  # each seed's target-policy noise from its own generator
            torch.randn(N, a.act_dim, generator=g, device=self.device)
            * (c.policy_noise * self.max_action)
            for g in self.gens
        ]
        noise = stacked(draws)
        sil = self.mcat and c.sil  # type: ignore[attr-defined]
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731 - [T, B, ...] -> [T*B, ...]
        frozen = {n: self._read(n, detach=True) for n in self.names}

        def contexts(pe, b):
            if pe is None:
                z = b["obs"].new_zeros(N, 0)
                return z, z
            z = functional_call(
                m["encoder"],
                pe,
                (
                    torch.cat([b["ctx_delta"], b["next_ctx_delta"]]),
                    torch.cat([b["ctx_act"], b["next_ctx_act"]]),
                    torch.cat([b["ctx_mask"], b["next_ctx_mask"]]),
                ),
            )
            return flat(z[: self.T]), flat(z[self.T :])

        def critic_part(pe, pc, pat, pct, b, noise):
            z, next_z = contexts(pe, b)
            with bound(m["critic_target"], pct) as ct, bound(m["actor_target"], pat) as at:
                target = td3_target(
                    ct,
                    at,
                    flat(b["next_obs"]),
                    next_z,
                    flat(b["rew"]),
                    flat(b["done"]),
                    c.gamma,
                    c.policy_noise * self.max_action,
                    c.noise_clip * self.max_action,
                    self.max_action,
                    noise=noise,
                )
            q1, q2 = functional_call(m["critic"], pc, (flat(b["obs"]), flat(b["act"]), z))
            loss = critic_loss(q1, q2, target)
            if sil and c.sil_critic_weight != 0:  # type: ignore[attr-defined]
                loss = loss + c.sil_critic_weight * sil_critic_loss(  # type: ignore[attr-defined]
                    q1, q2, flat(b["mc_return"]), flat(b["mc_valid"])
                )
            return loss, target.mean(), torch.min(q1, q2).detach(), z

        pe = frozen.get("encoder")
        loss_q, target_mean, q_min, z = self._per_seed(critic_part)(
            pe, self.t["critic"], frozen["actor_target"], frozen["critic_target"], b, noise
        )
        opt = self.opts["critic_opt"]
        opt.zero_grad(set_to_none=True)
        loss_q.sum().backward()
        opt.step()
        self._record("rl/critic_loss", loss_q)
        self._record("rl/target_mean", target_mean)
        if not update_actor:
            return

        def actor_part(pa, pc, b, z, q_min):
            obs = flat(b["obs"])
            pi = functional_call(m["actor"], pa, (obs, z))
            with bound(m["critic"], pc) as critic:
                loss = actor_loss(critic, obs, pi, z)
            if sil and c.sil_actor_weight != 0:  # type: ignore[attr-defined]
                loss = loss + c.sil_actor_weight * sil_actor_loss(  # type: ignore[attr-defined]
                    pi,
                    flat(b["act"]),
                    q_min,
                    flat(b["mc_return"]),
                    flat(b["mc_valid"]),
                    c.sil_weighting,  # type: ignore[attr-defined]
                )
            return loss

        critic_now = {k: v.detach() for k, v in self.t["critic"].items()}
        loss_pi = self._per_seed(actor_part)(self.t["actor"], critic_now, b, z, q_min)
        opt = self.opts["actor_opt"]
        opt.zero_grad(set_to_none=True)
        loss_pi.sum().backward()
        opt.step()
        with torch.no_grad():
            for target, source in (("critic_target", "critic"), ("actor_target", "actor")):
                keys = list(self.t[source])
                keys = [k for k in keys if self.t[source][k].requires_grad]
                torch._foreach_lerp_(
                    [self.t[target][k] for k in keys], [self.t[source][k] for k in keys], c.tau
                )
        self._record("rl/actor_loss", loss_pi)

    # ------------------------------------------------------------------ the schedule
    def warmup_description(self) -> str | None:
        return self.agents[0].warmup_description() if self.rl_steps == 0 else None

    def train_step(self) -> None:
        """One TD3 step of every seed, preceded by the C+F warm-up (first call) or a C+F block
        (every ``model_every`` TD3 steps), each followed by an H block: the schedule of
        :meth:`CTD3Agent.train_step` and :meth:`MCATAgent.update_models`."""
        c = self.cfg
        if self.train_stream is None:
            self._train_step(c)
            return
        self.train_stream.wait_stream(torch.cuda.current_stream())  # after the replay writes
        if self.act_stream is not None:  # and after acting read what the step changes
            self.train_stream.wait_stream(self.act_stream)
        with torch.cuda.stream(self.train_stream):
            self._train_step(c)

    def _train_step(self, c) -> None:
        if "encoder" in self.t:
            if self.rl_steps == 0 and self.model_steps_done == 0:
                self._models(c.model_warmup_steps, first=True)
                self._acting_stale = True
            elif self.rl_steps % c.model_every == 0:
                self._models(c.model_steps, first=False)
                self._acting_stale = True
        self.rl_steps += 1
        actor = self.rl_steps % c.policy_delay == 0
        self._acting_stale |= actor
        self._run("rl+actor" if actor else "rl", lambda: self._rl_step(actor))

    def wait(self) -> None:
        """Make the current stream wait for every gradient step launched so far."""
        if self.train_stream is not None:
            torch.cuda.current_stream().wait_stream(self.train_stream)

    def _models(self, steps: int, first: bool) -> None:
        for _ in range(steps):
            self._run("model", self._model_step)
            self.model_steps_done += 1
        if not self.use_translator:
            return
        self._run("features", self._feature_step)
        self.has_features = True
        c = self.cfg
        for _ in range(c.translator_warmup_steps if first else c.translator_steps):  # type: ignore[attr-defined]
            self._run("translator", self._translator_step)
            self.translator_steps_done += 1
        for s, agent in enumerate(self.agents):  # the choice rule needs to know H exists
            agent.features = self.features[s].clone()  # type: ignore[attr-defined]

    def metrics(self, seed: int) -> dict[str, float]:
        """The last losses of one seed (reads them back: call when logging)."""
        self.wait()
        return {k: float(v[seed]) for k, v in self.losses.items()}

    # ------------------------------------------------------------------ acting
    def act(
        self,
        obs: np.ndarray,
        ctx_delta: np.ndarray,
        ctx_act: np.ndarray,
        ctx_mask: np.ndarray,
        sources: np.ndarray,
        targets: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free actions [S, n, act] of every seed's environments (pi(s, C(context)), or
        H(s, pi(s, z_src), z_src, z_tgt) where ``sources`` >= 0), and the per-seed flags of a
        non-finite loss so far. One copy in, one graph, one copy out."""
        S, n = obs.shape[:2]
        packed = np.concatenate(
            [a.reshape(S, -1) for a in (obs, ctx_delta, ctx_act, ctx_mask, sources, targets)],
            axis=1,
        ).astype(np.float32)
        io = self._act_io
        if "in" not in io:
            io["in"] = torch.zeros(packed.shape, device=self.device)
            io["out"] = torch.zeros(S, n * self.agents[0].act_dim + 1, device=self.device)
        stream = self.act_stream
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream) if stream is not None else nullcontext():
            if self._acting_stale:  # the last steps changed the policy, C, H or the features
                self.wait()
                self._acting_stale = False
            io["in"].copy_(torch.from_numpy(packed))
            self._run(f"act{n}", lambda: self._act_step(obs.shape, ctx_delta.shape[2]))
            out = io["out"].cpu().numpy()
        return out[:, :-1].reshape(S, n, -1), out[:, -1] > 0

    @torch.no_grad()
    def _act_step(self, obs_shape: tuple[int, ...], K: int) -> None:
        S, n, o = obs_shape
        a, m = self.agents[0], self.m
        act_dim = a.act_dim
        x = self._act_io["in"]
        sizes = [n * o, n * K * o, n * K * act_dim, n * K, n, n]
        obs, cd, ca, cm, src, tgt = torch.split(x, sizes, dim=1)
        obs = obs.view(S, n, o)
        if "encoder" in self.t:
            z = self._per_seed(lambda p, d, u, k: functional_call(m["encoder"], p, (d, u, k)))(
                self._read("encoder"),
                cd.view(S, n, K, o),
                ca.view(S, n, K, act_dim),
                cm.view(S, n, K),
            )
        else:
            z = obs.new_zeros(S, n, 0)
        actions = self._per_seed(lambda p, s, z: functional_call(m["actor"], p, (s, z)))(
            self.t["actor"], obs, z
        )
        if self.use_translator:
            src, tgt = src.long(), tgt.long()
            zd = self.features.shape[-1]
            fs = torch.gather(self.features, 1, src.clamp_min(0)[..., None].expand(-1, -1, zd))
            ft = torch.gather(self.features, 1, tgt[..., None].expand(-1, -1, zd))

            def translated(pa, ph, s, fs, ft):
                return functional_call(
                    m["translator"], ph, (s, functional_call(m["actor"], pa, (s, fs)), fs, ft)
                )

            moved = self._per_seed(translated)(self.t["actor"], self.t["translator"], obs, fs, ft)
            actions = torch.where((src >= 0)[..., None], moved, actions)
        # the flags may lag one round behind a step still running: a NaN is fatal either way
        self._act_io["out"].copy_(torch.cat([actions.reshape(S, -1), self.bad.float()[:, None]], 1))
