"""--sil for the baselines (the paper's appendix D.4): one gradient step with self-imitation on
is the same step as without it where no stored return beats the critic, and a different one
where returns do; the flag's bad uses are one-line errors."""

import copy

import numpy as np
import pytest
import torch

from mcat.cli import main
from mcat.train import Trainer
from toy_runs import keep_torch_threads, quiet, toy_config  # noqa: F401 (autouse fixture)

SMALL = {
    "pearl": {"hidden": [32, 32], "encoder_hidden": [32], "batch_size": 32},
    "hipbmdp": {"hidden": [32, 32], "encoder_hidden": [32], "model_hidden": 32, "batch_size": 32},
    "mql": {"hidden": [32, 32], "batch_size": 32, "history": 5},
    "distral": {"hidden": [32, 32], "batch_size": 32},
}


def _step(agent, replay, seed):
    """One train_step from fixed random states; the parameters after it."""
    replay.rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    agent.train_step(replay)
    return torch.cat(
        [
            p.detach().reshape(-1)
            for m in agent.modules().values()
            if isinstance(m, torch.nn.Module)
            for p in m.parameters()
        ]
    )


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_sil_changes_a_step_only_where_returns_beat_the_critic(algo, tmp_path):
    cfg = toy_config(algo=algo, steps=400, learning_starts=400, agent=SMALL[algo])
    trainer = Trainer(cfg, tmp_path / "run", log=quiet)
    while trainer.env_steps < 300:  # random-action data, no gradient step yet
        trainer.iterate()
    replay, plain = trainer.replay, trainer.agent
    assert plain.rl_steps == 0 and not plain.cfg.sil
    assert (replay.current_episode >= 1).all()  # every task has a finished episode
    for ret, same in ((-1e6, True), (1e6, False)):  # every finished episode's return
        replay.mc_return[:] = ret
        with_sil = copy.deepcopy(plain)
        with_sil.cfg.sil = True
        without = _step(copy.deepcopy(plain), replay, 7)
        assert torch.equal(without, _step(with_sil, replay, 7)) == same, (algo, ret)
    trainer.close()


@pytest.mark.parametrize(
    "algo, message",
    [
        ("mcat", "--sil: MCAT has self-imitation already"),
        ("ctd3", "(--algo mcat --no-pt)"),
        ("td3", "--sil: td3 has no self-imitation option"),
    ],
)
def test_sil_flag_on_an_algorithm_without_it_is_one_line(algo, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "point-gain", "--algo", algo, "--sil", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()
