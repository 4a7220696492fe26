"""Meta-World (paper Table 1): the family runs on this project's MuJoCo, the scripted source policy
succeeds on its task and fails on the targets untranslated, and `mcat transfer` runs end to end."""

import json

import numpy as np
import pytest

from mcat.cli import main
from mcat.collect import evaluate
from mcat.errors import MCATError
from mcat.policies import ScriptedPolicy
from mcat.tasks import get_family
from mcat.tasks.metaworld_families import make_metaworld_env

FAMILY = get_family("metaworld-push")


def _return(policy_task, task):
    policy = ScriptedPolicy(FAMILY.scripted_policy(policy_task))
    return evaluate(FAMILY, [task], policy.context, policy.act, history=1)[task]


@pytest.mark.parametrize("task", FAMILY.test_tasks)
def test_each_target_has_a_scripted_policy_that_reaches_its_goal(task):
    # reward 1 per step at the goal: the arm drives the weld Meta-World writes for MuJoCo 3 (the
    # source's policy reaching its goal, and failing on coffee-push-v3, is checked end to end)
    assert _return(task, task) > 0


def test_the_source_policy_fails_on_the_cube_untranslated():
    assert _return("push-v3", "push-back-v3") == 0


def test_aligned_targets_start_as_the_source_and_the_source_does_poorly_there_untranslated():
    """metaworld-push-aligned: the mug and the cube start where the cylinder does, with its goal
    and the hand's start (their states overlap the source's). Their own scripted policies reach
    that goal (the observation space is widened to it: Meta-World clips observations to it, and
    a clipped goal misled them); the push policy leaves the mug in place and scores far less on
    the cube (91 against 443 here)."""
    aligned = get_family("metaworld-push-aligned")
    source = aligned.make_env("push-v3", seed=0).reset()[0]
    assert (source == FAMILY.make_env("push-v3", seed=0).reset()[0]).all()

    def score(policy_task, task):
        policy = ScriptedPolicy(aligned.scripted_policy(policy_task))
        return evaluate(aligned, [task], policy.context, policy.act, history=1)[task]

    for task in aligned.test_tasks:
        start = aligned.make_env(task, seed=0).reset()[0]
        own = FAMILY.make_env(task, seed=0).reset()[0]
        assert np.abs(start[:3] - source[:3]).max() < 0.01  # the hand
        assert np.allclose(start[4:6], source[4:6]) and np.allclose(start[36:38], source[36:38])
        assert start[6] == own[6] and start[38] == own[38]  # each object at its own height
        own_policy, push = score(task, task), score("push-v3", task)
        assert own_policy > 400 and push < own_policy / 4, (task, own_policy, push)
        assert push == 0 or task == "push-back-v3"


def test_episodes_start_from_the_fixed_layout_whatever_the_seed():
    a, b = make_metaworld_env("coffee-push-v3"), make_metaworld_env("coffee-push-v3")
    obs_a, _ = a.reset(seed=1)
    obs_b, _ = b.reset(seed=2)
    assert (obs_a == obs_b).all() and (obs_a[-3:] != 0).any()  # the goal is observed
    _, reward, _, _, info = a.step(a.action_space.sample())
    assert reward == info["success"] == 0 and "dense_reward" in info


def test_an_unknown_environment_is_named():
    with pytest.raises(MCATError, match="unknown Meta-World environment 'pussh-v3'"):
        make_metaworld_env("pussh-v3")


def test_transfer_from_the_scripted_source_runs_end_to_end(tmp_path, capsys):
    argv = ["transfer", "metaworld-push", "--source", "push-v3", "--target", "coffee-push-v3"]
    argv += ["--dataset-size", "300", "--model-steps", "10", "--translator-steps", "10"]
    argv += ["--eval-episodes", "1", "--max-episode-steps", "200", "--threads", "1", "--quiet"]
    argv += ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    assert main(argv) == 0  # 200 steps: the scripted push reaches its goal after about 185
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["source_run"] is None  # no trained source
    # Fig. 4: the paths of the three first scored episodes, drawn and saved
    assert summary["paths"] == "paths.png" and (tmp_path / "out" / "paths.png").stat().st_size
    with np.load(tmp_path / "out" / "paths.npz") as paths:
        hand = paths["0_effector"]  # the source policy on its task: the hand moves, the goal not
        assert hand.shape == (201, 3) and np.ptp(hand[:, 1]) > 0.1
        assert np.ptp(paths["0_goal"], axis=0).max() == 0
        miss = np.linalg.norm(paths["0_object"] - paths["0_goal"], axis=1)
        assert miss.min() < 0.05 < miss[0]  # pushed to the goal
    assert summary["source_on_source"]["mean"] > 0
    assert summary["source_on_target"]["mean"] == 0
    assert 0 <= summary["transferred_on_target"]["mean"] <= 200
    data = sorted((tmp_path / "cache" / "data").glob("*/meta.json"))
    metas = [json.loads(p.read_text()) for p in data]
    assert {m["task"] for m in metas} == {"push-v3", "coffee-push-v3"}
    assert all(m["size"] == 300 for m in metas)
    # mcat video films it (short episodes: the arm's meshes render slowly in software GL, 0.1-0.25
    # s a frame here even at 32 x 32): the scripted source beside the transferred policy, on the
    # target
    # (its own small datasets: the episode length is part of their cache key)
    short = [*argv[:6], "--dataset-size", "8", "--model-steps", "2", "--translator-steps", "2"]
    short += [*argv[12:-4], "--max-episode-steps", "4", "--out", str(tmp_path / "short")]
    assert main([*short, "--cache", str(tmp_path / "cache")]) == 0
    video = ["video", str(tmp_path / "short"), "--cache", str(tmp_path / "cache"), "--episodes"]
    assert (
        main([*video, "1", "--width", "32", "--height", "32", "-o", str(tmp_path / "v.gif")]) == 0
    )
    assert "5 frames" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target", "pussh-v3"], "task value pussh-v3 is not valid for metaworld-push"),
        (["--target", "coffee-push-v3", "--source-steps", "10"], "a scripted source needs none"),
    ],
)
def test_bad_metaworld_transfer_input(extra, message, tmp_path, capsys):
    argv = ["transfer", "metaworld-push", "--source", "push-v3", "--source-policy", "scripted"]
    argv += [*extra, "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists()


def test_a_scripted_source_where_the_family_has_none(tmp_path, capsys):
    argv = ["transfer", "point-gain", "--source", "1", "--target", "2", "--source-policy"]
    assert main([*argv, "scripted", "--out", str(tmp_path / "o")]) == 2
    assert "point-gain has no scripted policy" in capsys.readouterr().err


# ---------------------------------------------------------------- tasks that differ in reward

REACH = get_family("metaworld-reach")
SOURCE_GOAL, TARGET_GOAL = REACH.train_tasks[0], REACH.test_tasks[0]


def test_reach_hides_the_goal_and_pays_more_near_it():
    env = REACH.make_env(TARGET_GOAL)
    obs, _ = env.reset(seed=0)
    assert (obs[-3:] == 0).all()  # the policy cannot read the goal
    policy = ScriptedPolicy(REACH.scripted_policy(TARGET_GOAL))
    rewards, distances = [], []
    for _ in range(60):
        obs, reward, _, _, info = env.step(policy.act(obs[None])[0])
        rewards.append(reward)
        distances.append(info["distance"])
    assert rewards == pytest.approx([0.05 / (0.05 + d) for d in distances])
    assert distances[-1] < 0.05 < distances[0] and rewards[-1] > 0.5 > rewards[0]
    # the source's policy heads for its own goal: less reward on the target than the target's
    own, source = _reach_return(TARGET_GOAL), _reach_return(SOURCE_GOAL)
    assert own > source + 20, (own, source)


def _reach_return(policy_goal):
    policy = ScriptedPolicy(REACH.scripted_policy(policy_goal))
    return evaluate(REACH, [TARGET_GOAL], policy.context, policy.act, history=1)[TARGET_GOAL]


@pytest.mark.parametrize("scripted_target_data", [False, True], ids=["source-data", "scripted"])
def test_a_state_translator_between_goals_runs_end_to_end(scripted_target_data, tmp_path):
    """The target's data from the source policy (Table 1's protocol) or, with --target-data-policy
    --target-policy scripted, from the scripted reach told the target's goal: those reach it."""
    argv = ["transfer", "metaworld-reach", "--source", "0,0.85,0.175", "--target", "0.1,0.85,0.175"]
    argv += ["--state-translator", "--dataset-size", "300", "--model-steps", "10"]
    argv += ["--translator-steps", "20", "--eval-episodes", "1", "--threads", "1", "--quiet"]
    if scripted_target_data:
        argv += ["--target-data-policy", "--target-policy", "scripted"]
    assert main([*argv, "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["target"] == [0.1, 0.85, 0.175] and summary["target_family"] is None
    assert summary["source_on_target"]["mean"] == pytest.approx(_reach_return(SOURCE_GOAL))
    assert summary["source_on_source"]["mean"] > summary["source_on_target"]["mean"]
    target_data = [
        np.load(meta.parent / "data.npz")["obs"][:, :3]  # the hand
        for meta in (tmp_path / "c" / "data").glob("*/meta.json")
        if json.loads(meta.read_text())["task"] == list(TARGET_GOAL)
    ]
    closest = np.linalg.norm(target_data[0] - TARGET_GOAL, axis=1).min()
    if scripted_target_data:  # the target's own policy, scored beside the others
        assert summary["data_policy_on_target"]["mean"] == pytest.approx(_reach_return(TARGET_GOAL))
        assert summary["target_policy_run"] is None and closest < 0.02
    else:  # the source policy heads for its own goal
        assert "data_policy_on_target" not in summary and closest > 0.05
    assert summary["paths"] == "paths.png" and (tmp_path / "o" / "state_translator.pt").is_file()
    with np.load(tmp_path / "o" / "paths.npz") as paths:  # the hidden goal drawn where it is
        assert paths["0_goal"][0] == pytest.approx(SOURCE_GOAL)
        assert paths["2_goal"][-1] == pytest.approx(TARGET_GOAL)


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--target", "0.5,0.85,0.175"],
            "must be a vector within [-0.1,0.8,0.05] and [0.1,0.9,0.3]",
        ),
        (["--target", "0.1,0.85"], "must be 3 numbers"),
        (["--target", "push-v3", "--target-family", "metaworld-push"], "drop --state"),
    ],
)
def test_bad_reach_transfer_input(extra, message, tmp_path, capsys):
    argv = ["transfer", "metaworld-reach", "--source", "0,0.85,0.175", "--state-translator"]
    assert main([*argv, *extra, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
