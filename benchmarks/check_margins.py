"""The margins of the toy translator and context checks in tests/ at shorter budgets: what each
assertion measures, at the steps the test uses and at fewer, with one torch thread (as the suite
runs). Used to decide which budgets can be cut without a check becoming flaky.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/check_margins.py   # about 6 minutes here

Prints, per check and budget: the measured value beside the test's bar, and the seconds taken.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import test_models as tm
import test_translator as tt
from mcat.agents.mcat import MCATAgent, MCATConfig
from mcat.collect import evaluate
from mcat.experiments.transfer import fit_forward_model
from mcat.learners.dcc import DCCTranslator
from mcat.policies import TransferredPolicy
from mcat.tasks import get_family


def median_error(translate, src: int, tgt: int) -> float:
    """What tests/test_translator.py's _check_recovers compares with its tolerance."""
    rng = np.random.default_rng(5)
    ratio = tt.GAINS[src] / tt.GAINS[tgt]
    a_src = (rng.uniform(-0.9, 0.9, (256, 2)) / max(ratio, 1.0)).astype(np.float32)
    obs = rng.normal(0, 0.5, (256, 2)).astype(np.float32)
    with torch.no_grad():
        a_tgt = translate(torch.as_tensor(obs), torch.as_tensor(a_src)).numpy()
    return float(np.median(np.abs(a_tgt - a_src * ratio)))


def worst_pair(translator_for) -> float:
    pairs = [(s, t) for s in range(3) for t in range(3) if s != t]
    return max(median_error(translator_for(s, t), s, t) for s, t in pairs)


def timed(label: str, fn, steps: int) -> None:
    start = time.perf_counter()
    text = fn(steps)
    print(f"{label:42s} {text}  ({time.perf_counter() - start:.1f} s)", flush=True)


def main() -> None:
    torch.set_num_threads(1)
    replay, agent, features = tt.toy_models.__wrapped__()  # the fixture, built once here

    def dcc(steps: int) -> str:
        src, tgt = 0, 2
        data = replay.sample(len(replay), rng=np.random.default_rng(2))
        no_z = np.zeros((data.obs.shape[1], 0), dtype=np.float32)
        F = fit_forward_model(
            data.obs[tgt], data.act[tgt], data.next_obs[tgt], no_z, steps=600, batch=128, seed=2
        )
        rng = np.random.default_rng(3)

        def batch(task):
            b = replay.sample(128, rng=rng)
            return tuple(
                torch.as_tensor(x)
                for x in (b.obs[task], b.act[task], b.next_obs[task] - b.obs[task])
            )

        torch.manual_seed(3)
        d = DCCTranslator(2, 2, max_action=1.0)
        for _ in range(steps):
            d.step(F, batch(src), batch(tgt))
        h, p = median_error(d.H, src, tgt), median_error(d.P, tgt, src)
        return f"H {h:.4f}, P {p:.4f} (tolerance 0.08)"

    def conditioned(steps: int) -> str:
        torch.manual_seed(1)
        H = tt.ActionTranslator(2, 2, z_dim=features.shape[1])
        tt._train(H, agent.forward_model, replay, features, steps, conditioned=True)
        z = lambda i: features[i].expand(256, -1)  # noqa: E731
        worst = worst_pair(lambda s, t: lambda o, a: H(o, a, z(s), z(t)))
        fam, source = get_family("point-gain"), tt.GoalSeekingActor(tt.GAINS[0])

        def run(policy, task):
            return evaluate(fam, [task], policy.context, policy.act, history=1, episodes=5, seed=0)[
                task
            ]

        ss, st = run(source, tt.GAINS[0]), run(source, tt.GAINS[2])
        tr = run(TransferredPolicy(source, H, features[0], features[2]), tt.GAINS[2])
        return (
            f"worst pair {worst:.4f} (0.05); transfer ratio {abs(tr - ss) / abs(st - ss):.3f} (0.3)"
        )

    def online(steps: int) -> str:
        torch.manual_seed(0)
        cfg = MCATConfig(
            model_batch_size=64, translator_batch_size=64, translator_lr=1e-3,
            translator_objective="nll",
        )  # fmt: skip
        m = MCATAgent(2, 2, cfg)
        m.encoder.load_state_dict(agent.encoder.state_dict())
        m.forward_model.load_state_dict(agent.forward_model.state_dict())
        m.update_translator(replay, steps)
        z = lambda i: m.features[i].expand(256, -1)  # noqa: E731
        worst = worst_pair(lambda s, t: lambda o, a: m.translator(o, a, z(s), z(t)))
        return f"worst pair {worst:.4f} (0.05)"

    def context(steps: int) -> str:
        tasks = get_family("point-gain").train_tasks
        data, o, a = tm.collect_random("point-gain", tasks, 600)
        dyn = tm._train_dynamics(data, o, a, steps=steps)
        acc = tm.context_accuracy(dyn.encoder, data)
        base = tm.train_context_free_model(data, o, a, steps=steps)
        gap = tm.forward_nll(base, None, data) - tm.forward_nll(
            dyn.forward_model, dyn.encoder, data
        )
        return f"accuracy {acc:.3f} (0.9), NLL gap {gap:.3f} (0.5)"

    for steps in (600, 1200):
        timed(f"Zhang et al. translator, {steps} steps", dcc, steps)
    for steps in (1000, 1500):
        timed(f"conditioned H, {steps} steps", conditioned, steps)
    for steps in (500, 1000):
        timed(f"online H (MCAT agent), {steps} steps", online, steps)
    for steps in (200, 300):
        timed(f"context C+F, {steps} steps", context, steps)


if __name__ == "__main__":
    main()
