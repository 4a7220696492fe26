"""The fast path (mcat.agents.fast, mcat.replay.device, mcat.seeds): its replay windows equal the
default replay's, its steps compute the default steps' losses and parameters on the same batches,
several seeds in one process write exactly what single-seed runs write, and a multi-seed run
killed anywhere continues identically.

``MCAT_TEST_DEVICE=cuda`` runs the step checks on a GPU (with and without CUDA graphs)."""

import copy
import dataclasses
import json
import os
import signal

import numpy as np
import pytest
import torch
from torch.func import functional_call, vmap
from torch.utils._python_dispatch import TorchDispatchMode

from mcat.agents.ctd3 import CTD3Agent
from mcat.agents.fast import FastLearner, masked_contrastive, update_norm, vmap_friendly
from mcat.agents.mcat import MCATAgent, MCATConfig
from mcat.cli import main
from mcat.collect import Collector, CollectorGroup
from mcat.errors import MCATError
from mcat.learners.dynamics import contrastive_loss
from mcat.models.nets import RunningNorm
from mcat.replay import MultiTaskReplay
from mcat.replay.device import DeviceReplay, SeedReplay
from mcat.replay.store import with_every_next_obs
from mcat.runs import list_checkpoints
from mcat.tasks import get_family
from toy_runs import keep_torch_threads, mcat, quiet  # noqa: F401 (autouse fixture)

DEVICE = os.environ.get("MCAT_TEST_DEVICE", "cpu")
T, OBS, ACT, CAP = 3, 5, 2, 400
# float tolerance between the fast step and the default one: different but equivalent kernels
# (foreach vs fused Adam, masked sums vs boolean selection, batched matrix products) differ in
# the last bits; after the steps below the largest differences measured were ~1e-6
ATOL, RTOL = 1e-4, 1e-3


def filled_replay(seed: int = 0, rep: MultiTaskReplay | None = None) -> MultiTaskReplay:
    """Random episodes of 30-60 steps in every task (the ring wraps once), into ``rep`` (a new
    replay by default; a device replay's view is flushed after every step, as in training)."""
    rng = np.random.default_rng(seed)
    rep = MultiTaskReplay(T, OBS, ACT, CAP, seed=seed) if rep is None else rep
    flush = rep.store.flush if isinstance(rep, SeedReplay) else (lambda: None)
    left = rng.integers(30, 60, size=T)
    obs = rng.normal(size=(T, OBS)).astype(np.float32)
    for _ in range(450):
        act = rng.uniform(-1, 1, size=(T, ACT)).astype(np.float32)
        nxt = (obs + 0.1 * rng.normal(size=(T, OBS))).astype(np.float32)
        left -= 1
        ended = left == 0
        rep.add(
            obs,
            act,
            rng.normal(size=T).astype(np.float32),
            nxt,
            ended & (rng.random(T) < 0.5),
            ended,
        )
        obs = np.where(ended[:, None], rng.normal(size=(T, OBS)), nxt).astype(np.float32)
        left[ended] = rng.integers(30, 60, size=int(ended.sum()))
        flush()
    return rep


def device_copy(rep: MultiTaskReplay, seeds: int = 1) -> DeviceReplay:
    store = DeviceReplay(seeds, T, OBS, ACT, CAP, rep.gamma, DEVICE)
    for view in store.views:
        view.load_state_dict(rep.state_dict())
    return store


def test_device_replay_windows_equal_the_default_replay():
    rep = filled_replay()
    store = device_copy(rep)
    u = np.random.default_rng(1).random((T, 64)).astype(np.float32)

    class Fixed:  # the default replay's generator, drawing the same numbers
        def random(self, shape):
            return u.astype(np.float64)

    for context, future in ((10, 0), (4, 6), (0, 0)):
        expected = rep.sample(64, context=context, future=future, rng=Fixed())
        got = store.gather(torch.from_numpy(u).to(DEVICE), context, future)
        for name, value in got.items():
            np.testing.assert_array_equal(value.cpu().numpy(), getattr(expected, name), name)
    # episodes that wrap the ring and episodes still running are both there
    assert expected.mc_valid.min() == 0 and expected.mc_valid.max() == 1


def test_device_replay_filled_round_by_round_equals_the_default_replay():
    """Transitions flushed every step (on a GPU the scatter is then a CUDA graph replay, from a
    reused pinned buffer) and episode returns written as episodes end: every stored array equals
    the default replay's."""
    rep = filled_replay()
    store = DeviceReplay(2, T, OBS, ACT, CAP, rep.gamma, DEVICE)
    for view in store.views:
        filled_replay(rep=view)
    if DEVICE == "cuda":
        assert store._graphs, "the scatter was not captured"
    # (the default replay keeps s' once, the device replay every one: compared as every one)
    expected = with_every_next_obs(rep.state_dict())
    for view in store.views:
        saved = view.state_dict()
        for key in ("ptr", "size", "current_episode", "episode_length"):
            np.testing.assert_array_equal(saved[key], expected[key], key)
        assert saved["arrays"].keys() == expected["arrays"].keys() - {"last_ref"}
        for key, value in saved["arrays"].items():
            np.testing.assert_array_equal(value, expected["arrays"][key], key)
    # and the device arrays themselves (mc_return is 0 while an episode runs, its returns after)
    assert (store.mc_return != 0).any() and (store.episode >= 0).all()


GROUP_CASES = [
    # family, tasks, slots, schedule, kwargs: lockstep, tasks moving between slots in turn and
    # at random, and MuJoCo's Hopper in gymnasium style (episodes end early, at different steps)
    ("point-gain", (0.5, 1.0, 2.0, 3.0), 4, "round-robin", {"max_episode_steps": 7}),
    ("point-gain", (0.5, 1.0, 2.0, 3.0), 2, "round-robin", {"max_episode_steps": 7}),
    ("point-gain", (0.5, 1.0, 2.0, 3.0), 3, "sample", {"max_episode_steps": 5}),
    ("hopper-mass", (0.5, 1.0, 1.5), 2, "round-robin", {"style": "gymnasium"}),
]


@pytest.mark.parametrize("case", range(len(GROUP_CASES)))
def test_a_collector_group_stores_what_its_collectors_store_one_by_one(case):
    """The fast path's seeds collect as one group (their arrays rows of shared ones, one replay
    write and one context push a round for all): the same transitions, contexts, episodes and
    checkpoints as each seed's collector stepped alone into its own rows."""
    name, tasks, n, schedule, kw = GROUP_CASES[case]
    fam, seeds, steps = get_family(name), (0, 3), 60
    act_dim = fam.make_env(tasks[0]).action_space.shape[0]

    def collectors() -> list[Collector]:
        return [
            Collector(fam, tasks, 3, seed=s, envs_per_round=n, schedule=schedule, **kw)
            for s in seeds
        ]

    alone, grouped = collectors(), collectors()
    obs_dim = alone[0].obs_dim
    ref, got = (DeviceReplay(len(seeds), len(tasks), obs_dim, act_dim, CAP) for _ in "ab")
    group = CollectorGroup(grouped, got)
    actions = np.random.default_rng(5).uniform(-1, 1, (steps, len(seeds), n, act_dim))
    ended = 0
    try:
        for k in range(steps):
            for i in range(len(seeds)):
                alone[i].step_send(ref.views[i], lambda o, c, a=actions[k, i]: a)
                grouped[i].step_send(got.views[i], lambda o, c, a=actions[k, i]: a)
            expected = [c.step_receive() for c in alone]
            assert group.receive() == expected, f"step {k}"
            ref.flush()
            got.flush()
            ended += sum(map(len, expected))
        assert ended > 2 * len(seeds) * n  # episodes ended (and, with fewer slots, tasks moved)
        for a, g in zip(alone, grouped, strict=True):
            _same_state(g.state_dict(), a.state_dict())
        for a, g in zip(ref.views, got.views, strict=True):
            _same_state(g.state_dict(), a.state_dict())
        assert (group.obs[1] == grouped[1].obs).all() and grouped[1].obs.base is not None
        grouped[0].step_send(got.views[0], lambda o, c: actions[0, 0])
        with pytest.raises(MCATError, match="step the group"):
            grouped[0].step_receive()
    finally:
        for c in alone + grouped:
            c.close()


def _same_state(got, expected, where: str = "") -> None:
    """Two checkpoint states (nested dicts, lists, arrays) are equal, element for element."""
    if isinstance(expected, dict):
        assert got.keys() == expected.keys(), where
        for key in expected:
            _same_state(got[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, list | tuple):
        assert len(got) == len(expected), where
        for k, (u, v) in enumerate(zip(got, expected, strict=True)):
            _same_state(u, v, f"{where}[{k}]")
    elif isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(got, expected, where)
    else:
        assert got == expected, where


def test_the_device_replay_refuses_what_the_default_replay_refuses():
    store = DeviceReplay(2, T, OBS, ACT, CAP)
    obs, act = np.zeros((2, T, OBS)), np.zeros((2, T, ACT))
    rew = done = np.zeros((2, T))
    for tasks, what in (
        ([[0, 1, 1], [0, 1, 2]], "same task twice"),
        ([[0, 1, 2], [0, 1, 3]], "outside"),
    ):
        with pytest.raises(MCATError, match=what):
            store.add(np.array(tasks), obs, act, rew, obs, done, done)
    assert not store._queue and (store.counters["ptr"] == 0).all()  # nothing written


def test_graph_safe_pieces_equal_the_originals():
    z = torch.randn(3, 8, 4)
    torch.testing.assert_close(masked_contrastive(z, 1.0), contrastive_loss(z, 1.0))
    norm = RunningNorm(4)
    x, mask = torch.randn(2, 6, 4), (torch.rand(2, 6) > 0.3).float()
    stacked = {k: v[None].clone() for k, v in norm.state_dict().items()}
    for _ in range(3):
        norm.update(x, mask)
        update_norm(stacked, "", x[None], mask[None])
    for k, v in norm.state_dict().items():
        torch.testing.assert_close(stacked[k][0], v)


class Queue:
    """A replay whose sample() hands out prepared batches in order (the default agent's side)."""

    def __init__(self, batches):
        self.batches, self.num_tasks = list(batches), T

    def sample(self, *args, **kwargs):
        return self.batches.pop(0)


@pytest.mark.parametrize(
    "batched, compiled",
    [
        pytest.param(False, False, id="per-seed"),
        pytest.param(True, False, id="vmapped"),
        # torch.compile takes a minute or two here: long checks
        pytest.param(False, True, id="compiled", marks=pytest.mark.slow),
        pytest.param(True, True, id="compiled-vmapped", marks=pytest.mark.slow),
    ],
)
def test_fast_steps_equal_the_default_steps_on_the_same_batches(batched, compiled):
    """On the same batches the fast steps compute the default steps' losses, parameters,
    normalisers, optimiser moments and task features; compiled (--compile) too, and then with
    no graph break and no host read (which would stop a CUDA graph capture)."""
    torch.manual_seed(0)
    cfg = MCATConfig(hidden=(64, 64), encoder_hidden=(32, 32), model_hidden=32, history=4, future=3)
    agent = MCATAgent(OBS, ACT, cfg, device=DEVICE)
    twin = copy.deepcopy(agent)
    rep = filled_replay()
    gen = torch.Generator(DEVICE).manual_seed(0)
    learner = FastLearner(
        [twin], device_copy(rep), [gen], graphs=False, batched=batched, compile=compiled
    )
    if compiled:
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
    rng = np.random.default_rng(3)
    batches = [
        rep.sample(cfg.model_batch_size, context=cfg.history, future=cfg.future, rng=rng),
        rep.sample(cfg.model_batch_size, context=cfg.history, future=cfg.future, rng=rng),
        rep.sample(cfg.feature_segments, context=cfg.history, rng=rng),
        rep.sample(cfg.translator_batch_size, rng=rng),
        rep.sample(cfg.translator_batch_size, rng=rng),
        rep.sample(cfg.batch_size, context=cfg.history, rng=rng),
        rep.sample(cfg.batch_size, context=cfg.history, rng=rng),
    ]
    fields = [f for f in batches[0].__dataclass_fields__ if f not in ("tasks", "slot")]
    as_torch = [
        {
            f: torch.as_tensor(np.ascontiguousarray(getattr(b, f)), device=DEVICE)[None]
            for f in fields
        }
        for b in batches
    ]
    learner._sample = lambda *a, **k: as_torch.pop(0)  # type: ignore[method-assign]
    default = Queue(batches)
    expected = CTD3Agent.update_models(agent, default, 2)
    learner._model_step()
    learner._model_step()
    expected |= agent.update_translator(default, 2)
    learner._feature_step()
    learner._translator_step()
    learner._translator_step()
    for actor in (False, True):
        torch.manual_seed(11)  # the target-policy noise: the same draws on both sides
        gen.manual_seed(11)
        expected |= agent.update_rl(default)
        learner._rl_step(actor)
    got = learner.metrics(0)
    assert set(got) == set(expected)
    for k in expected:
        assert got[k] == pytest.approx(expected[k], rel=RTOL, abs=ATOL), k
    learner.rl_steps, learner.model_steps_done, learner.translator_steps_done = 2, 2, 2
    learner.has_features = True
    learner.sync_to_agents()
    worst = 0.0
    for name, module in agent.modules().items():
        if isinstance(module, torch.nn.Module):
            mine = dict(
                (*twin.modules()[name].named_parameters(), *twin.modules()[name].named_buffers())
            )
            for key, value in (*module.named_parameters(), *module.named_buffers()):
                torch.testing.assert_close(mine[key], value, atol=ATOL, rtol=RTOL)
                worst = max(worst, float((mine[key] - value).detach().abs().max()))
        else:  # optimiser moments
            mine_opt = twin.modules()[name]
            for p, q in zip(
                [p for g in module.param_groups for p in g["params"]],
                [p for g in mine_opt.param_groups for p in g["params"]],
                strict=True,
            ):
                for key in ("exp_avg", "exp_avg_sq"):
                    torch.testing.assert_close(
                        mine_opt.state[q][key], module.state[p][key], atol=ATOL, rtol=RTOL
                    )
                assert float(mine_opt.state[q]["step"]) == float(module.state[p]["step"])
    torch.testing.assert_close(twin.features, agent.features, atol=ATOL, rtol=RTOL)
    assert worst > 0 or batched is False or compiled  # the check compares real, moved parameters
    assert worst < 1e-4
    if compiled:
        compiled_steps_are_whole_and_read_nothing_back(learner)


def acting_inputs(seeds: int, K: int) -> tuple[np.ndarray, ...]:
    """:meth:`FastLearner.act`'s inputs for ``seeds`` seeds: every task's context window full,
    tasks 0 and 2 acting through H, with the policies of tasks 1 and 0."""
    return (
        np.ones((seeds, T, OBS), np.float32),
        np.ones((seeds, T, K, OBS), np.float32),
        np.zeros((seeds, T, K, ACT), np.float32),
        np.ones((seeds, T, K), np.float32),
        np.tile([1, -1, 0], (seeds, 1)),
        np.tile(np.arange(T), (seeds, 1)),
    )


def compiled_steps_are_whole_and_read_nothing_back(learner: FastLearner) -> None:
    """No graph break in the compiled steps (each would split a step into more kernels and
    Python in between), and no value read back to the host while a step runs: a read inside a
    CUDA graph capture fails, and the step would then run eagerly. The replay's compiled gather
    equals its eager one."""
    from torch.profiler import ProfilerActivity, profile

    del learner._sample  # the instance's stand-in: the learner's own sampling again
    u = torch.rand(T, 16, device=DEVICE)
    for context, future in ((4, 3), (4, 0), (0, 0)):
        got, expected = (
            learner._gather(u, context, future),
            learner.replay.gather(u, context, future),
        )
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, msg=key)
    acting = acting_inputs(1, learner.cfg.history)
    steps = [
        learner._model_step,
        learner._feature_step,
        learner._translator_step,
        lambda: learner._rl_step(False),
        lambda: learner._rl_step(True),
        lambda: learner.act(*acting),
    ]
    for step in steps:  # compiled (and warmed) before they are watched
        step()
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for step in steps:
            step()
    reads = []
    for event in prof.events():
        if event.name == "aten::_local_scalar_dense":
            chain, parent = [], event.cpu_parent
            while parent is not None:
                chain.append(parent.name)
                parent = parent.cpu_parent
            # the CPU's fused Adam reads its step count (on a GPU it is capturable: no read)
            if not any("fused_adam" in name for name in chain):
                reads.append(chain[:4])
    assert not reads, reads
    assert not torch._dynamo.utils.counters["graph_break"]
    # and they were compiled (a function that fails to compile would run eagerly): the six
    # step kinds' functions and the gather, normalisers, records and acting around them
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 10


def test_a_step_that_fails_to_compile_runs_eagerly(monkeypatch):
    """--compile where the compiler fails (a torch or triton bug, a broken toolchain): the step
    runs eagerly and computes exactly the uncompiled step, and the run goes on."""
    import torch._inductor.compile_fx

    def broken(*args, **kwargs):
        raise RuntimeError("a compiler that fails")

    monkeypatch.setattr(torch._inductor.compile_fx, "compile_fx", broken)
    torch._dynamo.reset()
    cfg = MCATConfig(hidden=(32, 32), encoder_hidden=(16, 16), model_hidden=16, history=3)
    rep = filled_replay()
    losses = []
    for compiled in (False, True):
        torch.manual_seed(0)
        agent = MCATAgent(OBS, ACT, cfg, device=DEVICE)
        gen = torch.Generator(DEVICE).manual_seed(0)
        learner = FastLearner(
            [agent], device_copy(rep), [gen], graphs=False, compile=compiled, log=lambda m: None
        )
        learner._rl_step(False)
        losses.append(learner.metrics(0))
    assert losses[1] == losses[0]
    torch._dynamo.reset()  # nothing compiled with the broken compiler stays cached


class Ops(TorchDispatchMode):
    """The names of the operations dispatched while active (on a GPU, mostly one kernel each)."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_one_seed_steps_its_modules_as_they_are():
    """One seed's step runs its modules without vmap and without per-seed copies: fewer
    operations, so fewer kernels in its CUDA graph (benchmarks/fast_kernels.py counts them)."""
    cfg = MCATConfig(hidden=(64, 64), encoder_hidden=(32, 32), model_hidden=32, history=4)
    rep = filled_replay()
    ops = {}
    for batched in (False, True):
        torch.manual_seed(0)
        agent = MCATAgent(OBS, ACT, cfg, device=DEVICE)
        gen = torch.Generator(DEVICE).manual_seed(0)
        learner = FastLearner([agent], device_copy(rep), [gen], graphs=False, batched=batched)
        learner._rl_step(True)
        with Ops() as seen:
            learner._rl_step(True)
        ops[batched] = seen.names
    assert FastLearner([agent], device_copy(rep), [gen], graphs=False).batched is False
    assert not {"stack", "select_backward", "unbind"} & set(ops[False])
    assert len(ops[False]) < len(ops[True])


def test_vmapped_linear_layers_are_one_kernel_with_the_same_values_and_gradients():
    """Vmapped, the learner's linear layers run as one ``baddbmm`` each (vmap's own rule for a
    linear layer is three kernels), with the values and gradients of ``F.linear``; outside
    vmap they are ``F.linear`` with its gradients."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 4, device=DEVICE)
    x = torch.randn(3, 2, 7, 5, device=DEVICE)
    weights = {k: torch.randn(3, *v.shape, device=DEVICE) for k, v in layer.named_parameters()}
    results = []
    for module in (layer, vmap_friendly(layer)):
        inputs = [t.clone().requires_grad_() for t in (x, weights["weight"], weights["bias"])]

        def seed(x, w, b, module=module):
            return functional_call(module, {"weight": w, "bias": b}, (x,))

        with Ops() as forward:
            out = vmap(seed)(*inputs)
        (
            out.sin().sum()
            + functional_call(module, dict(layer.named_parameters()), (inputs[0][0],)).sum()
        ).backward()
        results.append((out, *(t.grad for t in inputs), *(p.grad for p in layer.parameters())))
        kernels = [n for n in forward.names if n in ("bmm", "baddbmm", "mul", "add")]
        layer.zero_grad()
    assert kernels == ["baddbmm"]
    for plain, fast in zip(*results, strict=True):
        torch.testing.assert_close(fast, plain)


@pytest.mark.skipif(DEVICE != "cuda", reason="CUDA graphs need a GPU (MCAT_TEST_DEVICE=cuda)")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("seeds", [1, 2])
def test_cuda_graphs_equal_eager_steps(seeds, compiled):
    """One seed computes per seed (its modules as they are), several vmapped: the defaults.
    Compiled (--compile; both learners), every step kind and acting are captured too, none falls
    back to eager. (Compiled steps against the uncompiled ones: the step check above.)"""
    torch._dynamo.reset()  # earlier tests' compiled entries, which count towards dynamo's limit
    torch.manual_seed(0)
    cfg = MCATConfig(
        history=4,
        future=3,
        model_warmup_steps=5,
        translator_warmup_steps=5,
        model_every=4,
        model_steps=2,
        translator_steps=2,
    )
    agents = [MCATAgent(OBS, ACT, cfg, device=DEVICE) for _ in range(seeds)]
    rep = filled_replay()
    learners = []
    for graphs in (False, True):
        gens = [torch.Generator(DEVICE).manual_seed(s) for s in range(seeds)]
        learners.append(
            FastLearner(
                copy.deepcopy(agents),
                device_copy(rep, seeds),
                gens,
                graphs=graphs,
                compile=compiled,
            )
        )
    assert learners[0].batched == (seeds > 1)
    for _ in range(20):
        for learner in learners:
            learner.train_step()
    assert learners[1]._graphs, "nothing was captured"
    acting = acting_inputs(seeds, cfg.history)
    actions = [[learner.act(*acting)[0] for _ in range(4)][-1] for learner in learners]
    assert f"act{T}" in learners[1]._graphs
    assert not learners[1]._eager, f"capture failed, eager: {learners[1]._eager}"
    tol = dict(atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(actions[1], actions[0], **tol)
    for learner in learners:
        learner.sync_to_agents()
    for a, b in zip(learners[0].agents, learners[1].agents, strict=True):
        for (k, p), (_, q) in zip(
            a.actor.named_parameters(), b.actor.named_parameters(), strict=True
        ):
            torch.testing.assert_close(p, q, **tol, msg=k)


# ---------------------------------------------------------------------- several seeds, CLI
FAST = [
    "train",
    "point-gain",
    "--algo",
    "mcat",
    "--steps",
    "600",
    "--learning-starts",
    "150",
    "--eval-every",
    "200",
    "--checkpoint-every",
    "200",
    "--batch-size",
    "16",
    "--threads",
    "1",
    "--set",
    "agent.hidden=[32,32]",
    "--set",
    "agent.model_warmup_steps=10",
    "--set",
    "agent.translator_warmup_steps=10",
    "--set",
    "agent.model_every=20",
    "--set",
    "agent.model_steps=2",
    "--set",
    "agent.translator_steps=2",
    "--set",
    "agent.model_hidden=64",
    "--set",
    "agent.encoder_hidden=[64,64]",
    "--quiet",
]
LOGS = ("metrics.csv", "episodes.csv", "transfer.csv")


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    out = tmp_path_factory.mktemp("fast") / "seeds"
    assert main([*FAST, "--seeds", "0", "2", "--out", str(out)]) == 0
    return out


def test_seeds_in_one_process_equal_single_seed_runs(two_seeds, tmp_path):
    assert main([*FAST, "--fast", "--seed", "2", "--out", str(tmp_path / "alone")]) == 0
    for name in LOGS:
        alone = (tmp_path / "alone" / name).read_bytes()
        assert (two_seeds / "seed2" / name).read_bytes() == alone, name
    # and the two seeds are different runs
    assert (two_seeds / "seed0" / "episodes.csv").read_bytes() != alone


def test_seeds_with_environments_in_subprocesses_equal_the_in_process_run(two_seeds, tmp_path):
    """--vector-envs worker: every seed's actions are sent before any results are read, so all
    seeds' environments step at once in their subprocesses; the logs are those of sync. (The
    seeds' loop is the same for async, whose vector env is tested against sync on its own and in
    a training run: tests/test_gym_envs.py.)"""
    out = tmp_path / "worker"
    assert main([*FAST, "--seeds", "0", "2", "--vector-envs", "worker", "--out", str(out)]) == 0
    for seed in ("seed0", "seed2"):
        for name in LOGS:
            assert (out / seed / name).read_bytes() == (two_seeds / seed / name).read_bytes()


def test_seeds_killed_and_rerun_continue_identically(two_seeds, tmp_path):
    """Stopped by SIGTERM at step 300 (every seed writes a checkpoint of it, exit 143), then
    re-run and killed mid-iteration after seed 0's checkpoint of step 400 was written but before
    seed 2's (the kill comes at 420; seed 2's file is then removed, standing for a kill between
    the two writes): the re-run takes seed 0 back to step 300 and both continue identically."""
    out = tmp_path / "seeds"
    argv = [*FAST, "--seeds", "0", "2", "--out", str(out)]
    assert mcat(argv, crash="term:300", check=False).returncode == 128 + signal.SIGTERM
    for seed in ("seed0", "seed2"):
        assert max(s for s, _ in list_checkpoints(out / seed)) == 300
    mcat(argv, crash="step:420")
    for f in (out / "seed2" / "checkpoints").glob("step-000000400*"):
        f.unlink()
    assert main([*FAST, "--seeds", "0", "2", "--out", str(out)]) == 0
    for seed in ("seed0", "seed2"):
        for name in LOGS:
            assert (out / seed / name).read_bytes() == (two_seeds / seed / name).read_bytes()


def test_seeds_trained_on_to_a_larger_budget_are_the_longer_runs(two_seeds, tmp_path, capsys):
    """mcat train --resume OUT --steps N on the runs of --seeds: the seeds go on together to the
    runs the larger budget makes from the start (two_seeds: 600 steps)."""
    out = tmp_path / "seeds"
    short = [*FAST, "--seeds", "0", "2", "--out", str(out)]
    short[short.index("--steps") + 1] = "400"
    assert main(short) == 0
    assert main(["train", "--resume", str(out), "--steps", "600", "--quiet"]) == 0
    for seed in ("seed0", "seed2"):
        assert json.loads((out / seed / "config.json").read_text())["steps"] == 600
        for name in LOGS:
            assert (out / seed / name).read_bytes() == (two_seeds / seed / name).read_bytes()
    # runs of other settings are no group: one line, with the way on
    config = out / "seed2" / "config.json"
    config.write_text(config.read_text().replace('"batch_size": 16', '"batch_size": 8'))
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed2 is not a seed of the group" in err
    assert "(agent.batch_size differs): resume each run alone with mcat train --resume" in err
    (out / "seed2").rename(tmp_path / "elsewhere")  # one seed left: named, to resume alone
    assert main(["train", "--resume", str(out)]) == 2
    assert f"holds the run of one seed only: mcat train --resume {out / 'seed0'}" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "1", "1"], "seeds"),
        (["--seeds", "1", "--seed", "2"], "--seed"),
        (["--seeds", "1", "--resume", "runs/x"], "--resume"),
        (["--seeds", "-1"], "seeds"),
    ],
)
def test_bad_seed_lists_give_one_line(extra, message, tmp_path, capsys):
    try:
        code = main([*FAST, *extra, "--out", str(tmp_path / "x")])
    except SystemExit as exc:  # argparse's own checks
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------- act_ahead
def _acting_lags(act_ahead: bool, out) -> list[int]:
    """The gradient steps done when each round's actions were computed (seeds 0 and 2; no
    evaluation or checkpoint between 150 and 400 steps, so nothing brings the policy up to date
    in between)."""
    from mcat.cli import build_parser, train_config_from_args
    from mcat.seeds import SeedGroup

    argv = [*FAST, "--eval-every", "1000", "--checkpoint-every", "1000", "--fast"]
    cfg = train_config_from_args(build_parser().parse_args(argv[:-1]))
    cfg = dataclasses.replace(cfg, fast=True, act_ahead=act_ahead)
    group = SeedGroup(cfg, [0, 2], out, log=quiet)
    learner = group.learner
    seen, act = [], learner.act

    def recording(*args):
        seen.append(learner.rl_steps)
        return act(*args)

    learner.act = recording
    while group.env_steps < 400:
        group.iterate()
    group.sync()
    seen.append(learner.rl_steps)  # and after the last round
    for tr in group.trainers:
        tr.close()
    return seen


def test_act_ahead_acts_one_round_behind_the_same_gradient_steps(tmp_path):
    """act_ahead: each round acts before the gradient steps the last round earned (which then
    overlap the environments on a GPU); the steps per round are the serial order's, and
    bringing the policy up to date (an evaluation, a checkpoint, the end) runs the ones owed."""
    serial = _acting_lags(False, tmp_path / "serial")
    ahead = _acting_lags(True, tmp_path / "ahead")
    assert len(serial) == len(ahead) > 40 and serial[-1] == ahead[-1] > 40
    assert ahead[:-1] == [0, *serial[:-2]]  # one round behind, every round


def test_act_ahead_is_a_run_of_its_own_and_resumes_identically(two_seeds, tmp_path):
    """An act_ahead run differs from the serial one, and killed mid-run it continues to the same
    logs as an uninterrupted one (one seed: the seeds' alignment is tested above)."""
    ahead = [*FAST, "--fast", "--seed", "0", "--act-ahead"]
    whole, out = tmp_path / "whole", tmp_path / "killed"
    assert main([*ahead, "--out", str(whole)]) == 0
    serial = (two_seeds / "seed0" / "episodes.csv").read_bytes()
    assert (whole / "episodes.csv").read_bytes() != serial
    mcat([*ahead, "--out", str(out)], crash="step:420")
    assert main([*ahead, "--out", str(out)]) == 0
    for name in LOGS:
        assert (out / name).read_bytes() == (whole / name).read_bytes()


@pytest.mark.parametrize("option", ["--act-ahead", "--compile"])
def test_fast_path_options_without_the_fast_path_are_refused(option, tmp_path, capsys):
    argv = [a for a in FAST if a != "--quiet"]
    assert main([*argv, option, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mcat: error: {option} is an option of the fast path: add --fast"
    assert not (tmp_path / "x").exists()


def test_compile_without_a_compiler_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    argv = [a for a in FAST if a != "--quiet"]
    assert main([*argv, "--fast", "--compile", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mcat: error: --compile on a CPU needs a C++ compiler")
    assert "\n" not in err and not (tmp_path / "x").exists()


@pytest.mark.slow  # compiling takes a minute or two here
def test_compiled_seeds_resume_identically(two_seeds, tmp_path):
    """--compile on the command line: two seeds trained with compiled steps, killed mid-run and
    run again, write the uninterrupted run's logs (the compiled kernels are the same in every
    process); and they are a run of their own (float rounding differs from the eager steps)."""
    torch._dynamo.reset()  # the learners of earlier tests: their compiled entries go
    argv = [*FAST, "--seeds", "0", "2", "--compile"]
    whole, out = tmp_path / "whole", tmp_path / "killed"
    assert main([*argv, "--out", str(whole)]) == 0
    mcat([*argv, "--out", str(out)], crash="step:420")
    assert main([*argv, "--out", str(out)]) == 0
    for seed in ("seed0", "seed2"):
        for name in LOGS:
            assert (out / seed / name).read_bytes() == (whole / seed / name).read_bytes()
    config = json.loads((whole / "seed0" / "config.json").read_text())
    assert config["compile"] is True and config["fast"] is True
    for seed in ("seed0", "seed2"):
        eager = (two_seeds / seed / "episodes.csv").read_bytes()
        assert (whole / seed / "episodes.csv").read_bytes() != eager
