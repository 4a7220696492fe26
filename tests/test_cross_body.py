"""`mcat transfer --target-family`: policy transfer between the 2-leg and the 3-leg HalfCheetah
(paper Sec. 6 (2)) end to end on a tiny budget, its cache, its video and its bad input."""

import json
import re

import pytest
import torch

from mcat.cli import main
from mcat.models.state_translator import StateTranslator
from mcat.models.translator import ActionTranslator

TINY = [
    "--source-steps",
    "200",
    "--target-policy-steps",
    "200",
    "--dataset-size",
    "300",
    "--model-steps",
    "30",
    "--translator-steps",
    "30",
    "--eval-episodes",
    "2",
    "--max-episode-steps",
    "25",
    "--threads",
    "1",
]
TWO_TO_THREE = [
    "transfer",
    "halfcheetah-armature",
    "--source",
    "0.1",
    "--target-family",
    "halfcheetah-3leg",
    "--target",
    "0.1",
    *TINY,
]
SCORES = ("source_on_source", "random_on_target", "data_policy_on_target", "transferred_on_target")


@pytest.fixture(scope="module")
def two_to_three(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross_body")
    out, cache = root / "mcat", root / "cache"
    assert main([*TWO_TO_THREE, "--out", str(out), "--cache", str(cache), "--quiet"]) == 0
    return root, out, cache, json.loads((out / "summary.json").read_text())


def test_two_legs_to_three_legs_end_to_end(two_to_three):
    _, out, _, summary = two_to_three
    assert summary["family"] == "halfcheetah-armature"
    assert summary["target_family"] == "halfcheetah-3leg"
    for key in SCORES:
        assert len(summary[key]["episodes"]) == 2
    # the saved translators map the 2-leg body (17 states, 6 actions) to the 3-leg one (23, 9)
    G, H = StateTranslator(17, 23), ActionTranslator(23, 6, conditioned=False, out_dim=9)
    G.load_state_dict(torch.load(out / "state_translator.pt", weights_only=True))
    H.load_state_dict(torch.load(out / "translator.pt", weights_only=True))
    with torch.no_grad():
        t = G(torch.zeros(4, 17))
        assert t.shape == (4, 23) and G.inverse(t).shape == (4, 17)
        assert H(t, torch.zeros(4, 6)).shape == (4, 9)


def test_zhang_et_al_reuses_every_product_and_scores_the_same_baselines(two_to_three, capsys):
    root, _, cache, ours = two_to_three
    out = root / "dcc"
    capsys.readouterr()
    argv = [*TWO_TO_THREE, "--translator", "dcc", "--out", str(out), "--cache", str(cache)]
    assert main(argv) == 0
    log = capsys.readouterr().out
    for product in (
        "the source policy",
        "the target data policy",
        "the dataset of halfcheetah-armature task 0.1",
        "the dataset of halfcheetah-3leg task 0.1",
        "the target forward model",
        "the target reward model",
    ):
        assert f"reusing {product}" in log
    assert "training the source policy" not in log and "collecting" not in log
    assert "Zhang et al." in log
    theirs = json.loads((out / "summary.json").read_text())
    for key in SCORES[:3]:  # the same policies on the same seeded episodes
        assert theirs[key] == ours[key]


@pytest.mark.slow  # rendering: the fast suite films HalfCheetah and Meta-World results
def test_the_video_replays_the_scored_episodes(two_to_three, capsys):
    root, out, cache, summary = two_to_three
    video = root / "v.gif"
    argv = ["video", str(out), "--cache", str(cache), "--episodes", "1", "-o", str(video)]
    capsys.readouterr()
    assert main([*argv, "--width", "32", "--height", "24"]) == 0
    text = capsys.readouterr().out
    left, right = map(
        float, re.search(r"return (\S+) \(source.*; (\S+) \(transferred", text).groups()
    )
    assert left == pytest.approx(summary["source_on_source"]["episodes"][0], abs=0.01)
    assert right == pytest.approx(summary["transferred_on_target"]["episodes"][0], abs=0.01)
    assert video.stat().st_size > 0 and "26 frames" in text  # the reset and 25 steps


SCRIPTED_TARGET_DATA = ["--state-translator", "--target-data-policy", "--target-policy", "scripted"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target-family", "halfcheetah-mass"], "no state translator is needed"),
        (["--target-family", "halfcheetah-3leg", "--objective", "l1"], "drop --objective"),
        (
            ["--target-family", "halfcheetah-3leg", "--target", "-1"],
            "not valid for halfcheetah-3leg",
        ),
        (["--target-family", "nope"], "unknown task family 'nope'"),
        (["--target-policy-steps", "10"], "add --target-family"),
        (["--target-family", "halfcheetah-3leg", "--target-policy-steps", "-1"], ">= 0"),
        (["--target-data-policy"], "--target-data-policy is for --state-translator"),
        (["--action-distribution-weight", "1"], "is for a state translator"),
        (["--residual-state-translator"], "is for --state-translator"),
        (["--target-family", "halfcheetah-3leg", "--action-distribution-weight", "-1"], ">= 0"),
        (["--state-translator", "--target-policy-steps", "10"], "--target-data-policy"),
        (["--state-translator", "--target-policy", "td3"], "is for --target-data-policy"),
        (
            SCRIPTED_TARGET_DATA,
            "halfcheetah-armature has no scripted policy",
        ),
        (
            [*SCRIPTED_TARGET_DATA, "--target-policy-steps", "10"],
            "a scripted one needs none",
        ),
    ],
)
def test_bad_cross_body_input(extra, message, tmp_path, capsys):
    argv = ["transfer", "halfcheetah-armature", "--source", "0.1", "--target", "0.3", *extra]
    assert main([*argv, "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists() and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_the_distribution_weight_reaches_the_joint_loss(two_to_three):
    root, out, cache, _ = two_to_three
    argv = [*TWO_TO_THREE, "--distribution-weight", "0", "--out", str(root / "w0"), "--quiet"]
    assert main([*argv, "--cache", str(cache)]) == 0
    config = json.loads((root / "w0" / "config.json").read_text())
    assert config["distribution_weight"] == 0
    G0, G1 = (torch.load(d / "state_translator.pt", weights_only=True) for d in (root / "w0", out))
    assert any(not torch.equal(G0[k], G1[k]) for k in G1)  # another G from the same data
