"""The margins of tests/test_state_translator.py: the median errors of the jointly learned state
translator G and action translator H on the toy pair (2-D source, 3-D target seen through a known
linear map) every 500 steps up to 2,000, with one torch thread as the suite runs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/check_state_translator.py   # about 1.5 minutes
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import test_state_translator as T
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

    def report(step, G, H, metrics):
        with torch.no_grad():
            g = float((G(s) - s @ lift.T).norm(dim=1).median())
            h = float((H(G(s_h), a) - a * T.GAIN_SRC / T.GAIN_TGT).abs().median())
        terms = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        print(f"step {step}: G error {g:.4f} (bar 0.1), H error {h:.4f} (bar 0.06); {terms}")

    train_joint_translators(
        src, tgt[0], F, R, act_dim_target=2, steps=2000, every=500, report=report
    )


if __name__ == "__main__":
    main()
