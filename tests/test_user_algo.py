"""An algorithm added from outside the package, as a user would: one module with a config, an
agent and one register_algo line, found through $MCAT_PLUGINS, trains, evaluates and resumes
through the `mcat` command."""

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

from mcat.algos import _REGISTRY, get_algo
from mcat.cli import main
from mcat.runs import load_run_config
from mcat.train import load_run_agent
from toy_runs import keep_torch_threads  # noqa: F401 (autouse fixture)

PLUGIN = '''
from dataclasses import dataclass

from mcat.agents.ctd3 import CTD3Agent, TD3Config
from mcat.algos import register_algo


@dataclass
class CalmConfig(TD3Config):
    """TD3 whose actor is also penalised for large actions."""

    calm_weight: float = 0.1
    """Weight of the mean squared action in the actor loss."""


class CalmAgent(CTD3Agent):
    calls = 0

    def actor_extra_loss(self, b, pi, act, q_min):
        CalmAgent.calls += 1
        return self.cfg.calm_weight * (pi**2).mean()


register_algo("calm-td3", CalmConfig, CalmAgent, "TD3 that keeps its actions small")
'''
RUN = [
    "train",
    "point-gain",
    "--algo",
    "calm-td3",
    "--steps",
    "400",
    "--learning-starts",
    "100",
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
    "agent.calm_weight=5",
    "--quiet",
]


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "calm_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("calm_plugin")
    yield module
    _REGISTRY.pop("calm-td3", None)
    sys.modules.pop("calm_plugin", None)


def test_a_plugin_algorithm_trains_evaluates_and_resumes(plugin, tmp_path):
    out = tmp_path / "run"
    assert main([*RUN, "--out", str(out)]) == 0
    cfg = load_run_config(out)
    assert cfg.algo == "calm-td3" and cfg.agent.calm_weight == 5
    _, agent, _ = load_run_agent(out)
    assert type(agent) is plugin.CalmAgent
    assert plugin.CalmAgent.calls > 0  # its own loss was part of training
    assert main(["eval", str(out)]) == 0
    # the same command again finds the finished run; --resume reads its config.json
    assert main([*RUN, "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    # the fast path (which reimplements ctd3's and MCAT's losses) refuses it before any file
    assert main([*RUN, "--fast", "--out", str(tmp_path / "fast")]) == 2
    assert not (tmp_path / "fast").exists()


def test_plugins_named_in_the_environment_are_listed(tmp_path):
    (tmp_path / "calm_plugin.py").write_text(textwrap.dedent(PLUGIN))
    env = dict(os.environ, MCAT_PLUGINS="calm_plugin", PYTHONPATH=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "mcat.cli", "algos"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "calm-td3" in done.stdout and "mcat" in done.stdout


def test_unknown_algo_and_bad_registrations_are_one_line_errors(capsys):
    assert main(["train", "point-gain", "--algo", "nope"]) == 2
    assert "unknown algo 'nope'" in capsys.readouterr().err
    from mcat import MCATError
    from mcat.agents.mcat import MCATAgent, MCATConfig
    from mcat.algos import register_algo

    with pytest.raises(MCATError, match="already registered"):
        register_algo("mcat", MCATConfig, MCATAgent)
    with pytest.raises(MCATError, match="dataclass"):
        register_algo("x", object, object)
    assert get_algo("mcat").name == "mcat"
