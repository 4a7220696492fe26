"""The margins of tests/test_state_translator.py: the median errors of the jointly learned state
translator G and action translator H on the toy pair (2-D source, 3-D target seen through a known
linear map) every 500 steps up to 2,000, with one torch thread as the suite runs. With ``dcc``,
the same errors for Zhang et al.'s state and action maps (mcat.learners.dcc.CrossBodyDCC) on the
same data, F and points.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/check_state_translator.py       # about 1.5 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/check_state_translator.py dcc
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import test_state_translator as T
from mcat.learners.dcc import CrossBodyDCC
from mcat.learners.state_translator import train_joint_translators


def main() -> None:
    torch.set_num_threads(1)
    src, tgt, F, R = T.toy_models()
    rng = np.random.default_rng(7)  # the test's check points
    s = torch.as_tensor(rng.uniform(-0.8, 0.4, (256, 2)), dtype=torch.float32)
    rng = np.random.default_rng(8)
    s_h = torch.as_tensor(rng.uniform(-0.8, 0.4, (256, 2)), dtype=torch.float32)
    a = torch.as_tensor(rng.uniform(-0.9, 0.9, (256, 2)), dtype=torch.float32)
    lift = torch.as_tensor(T.A, dtype=torch.float32)
    # what wrong answers score on the same points: the map reflected about the goal's horizontal
    # (the reward's one symmetry), and the untranslated action
    goal_y = float(T.GOAL[1])
    reflected = torch.stack([s[:, 0], 2 * goal_y - s[:, 1]], 1) @ lift.T
    g_wrong = float((reflected - s @ lift.T).norm(dim=1).median())
    h_wrong = float((a - a * T.GAIN_SRC / T.GAIN_TGT).abs().median())
    print(f"wrong answers: reflected map G error {g_wrong:.4f}, untranslated H error {h_wrong:.4f}")

    def consistency(G, H, act):
        """Median distance between G(s') and where the true target dynamics take G(s) under
        the translated action ``act(G(s))``: zero for any map that carries transitions over,
        including the symmetric ones the dynamics cannot tell apart."""
        s_next = s_h + 0.1 * T.GAIN_SRC * a
        t = G(s_h)
        return float((G(s_next) - t - 0.1 * T.GAIN_TGT * act(t) @ lift.T).norm(dim=1).median())

    def report(step, G, H, metrics):
        with torch.no_grad():
            g = float((G(s) - s @ lift.T).norm(dim=1).median())
            h = float((H(G(s_h), a) - a * T.GAIN_SRC / T.GAIN_TGT).abs().median())
            c = consistency(G, H, lambda t: H(t, a))
            c0 = consistency(G, H, lambda t: a)
        terms = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        print(
            f"step {step}: G error {g:.4f} (bar 0.1), H error {h:.4f} (bar 0.06), "
            f"dynamics consistency {c:.4f} (untranslated {c0:.4f}); {terms}"
        )

    if sys.argv[1:] == ["dcc"]:
        torch.manual_seed(1)
        dcc = CrossBodyDCC(src[0], tgt[0], 2, 2, max_action=1.0)
        gen = torch.Generator().manual_seed(0)
        for step in range(1, 2001):
            i = torch.randint(0, len(src[0]), (256,), generator=gen)
            j = torch.randint(0, len(tgt[0]), (256,), generator=gen)
            terms = dcc.step(
                F, (src[0][i], src[1][i], src[3][i]), (tgt[0][j], tgt[1][j], tgt[3][j])
            )
            if step % 500 == 0:
                report(step, dcc.G, dcc.H, terms)
        return
    train_joint_translators(
        src, tgt[0], F, R, act_dim_target=2, steps=2000, every=500, report=report
    )


if __name__ == "__main__":
    main()
