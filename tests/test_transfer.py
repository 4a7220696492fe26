"""`mcat transfer` (fixed-dataset experiment, Table 1) end to end, its cache, and bad input."""

import json
import shutil

import numpy as np
import pytest

from mcat.cli import main

TOY = [
    "--source-steps",
    "3000",
    "--dataset-size",
    "2000",
    "--model-steps",
    "500",
    "--translator-steps",
    "800",
]


CHEETAH = [
    "transfer",
    "halfcheetah-armature",
    "--source",
    "0.1",
    "--target",
    "0.5",
    "--source-steps",
    "400",
    "--dataset-size",
    "300",
    "--model-steps",
    "20",
    "--translator-steps",
    "20",
    "--eval-episodes",
    "2",
    "--max-episode-steps",
    "100",
]


@pytest.fixture(scope="module")
def cheetah_transfer(tmp_path_factory):
    """One short transfer on the real environment (source policy, datasets, F, H, evaluation),
    shared by the tests here."""
    root = tmp_path_factory.mktemp("transfer")
    out, cache = root / "out", root / "cache"
    assert main([*CHEETAH, "--out", str(out), "--cache", str(cache)]) == 0
    return out, cache, json.loads((out / "summary.json").read_text())


@pytest.mark.slow  # about a minute of one core
def test_toy_transfer_learns_the_equivalent_actions(tmp_path):
    """The Table 1 experiment in small: H undoes the gap between the source policy on its own
    task and on the target."""
    argv = ["transfer", "point-gain", "--source", "0.75", "--target", "1.5", *TOY]
    assert main([*argv, "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c")]) == 0
    first = json.loads((tmp_path / "out" / "summary.json").read_text())
    for key in ("source_on_source", "source_on_target", "transferred_on_target"):
        assert set(first[key]) == {"mean", "se", "episodes"} and len(first[key]["episodes"]) == 10
        assert first[key]["mean"] == pytest.approx(np.mean(first[key]["episodes"]))
    gap = abs(first["source_on_target"]["mean"] - first["source_on_source"]["mean"])
    assert gap > 10  # the source policy suffers from the new dynamics ...
    # ... H undoes it
    assert (
        abs(first["transferred_on_target"]["mean"] - first["source_on_source"]["mean"]) < 0.1 * gap
    )


def test_halfcheetah_transfer_runs_and_reuses_its_cache(cheetah_transfer, capsys):
    out, cache, first = cheetah_transfer
    assert first["source"] == 0.1 and first["target"] == 0.5
    for key in ("source_on_source", "source_on_target", "transferred_on_target"):
        assert set(first[key]) == {"mean", "se", "episodes"} and len(first[key]["episodes"]) == 2
        assert first[key]["mean"] == pytest.approx(np.mean(first[key]["episodes"]))
    assert (out / "translator.pt").exists()
    capsys.readouterr()
    assert main([*CHEETAH, "--out", str(out), "--cache", str(cache), "--overwrite"]) == 0
    log = capsys.readouterr().out
    assert (
        "reusing the source policy" in log
        and "reusing the dataset of halfcheetah-armature task 0.1" in log
    )
    assert "reusing the target forward model" in log and "training the source policy" not in log
    again = json.loads((out / "summary.json").read_text())
    assert again["transferred_on_target"] == first["transferred_on_target"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--source", "1", "--target", "1"], "source and target are the same task"),
        (["--source", "1", "--target", "-2"], "not valid for point-gain"),
        (["--source", "1", "--target", "2", "--dataset-size", "0"], "dataset-size must be >= 1"),
    ],
)
def test_bad_transfer_input(extra, message, tmp_path, capsys):
    assert (
        main(
            [
                "transfer",
                "point-gain",
                *extra,
                "--out",
                str(tmp_path / "o"),
                "--cache",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists()


def test_a_cache_made_with_other_settings_is_refused_and_kept(cheetah_transfer, tmp_path, capsys):
    _, shared, _ = cheetah_transfer
    out, cache = tmp_path / "out", tmp_path / "cache"
    shutil.copytree(shared, cache)  # a finished cache of our own to tamper with
    argv = [*CHEETAH, "--out", str(out), "--cache", str(cache), "--quiet"]
    meta = sorted((cache / "data").glob("*/meta.json"))[0]
    tampered = json.loads(meta.read_text())
    tampered["family"] = "point-gain"  # as if a dataset of another family sat under this key
    meta.write_text(json.dumps(tampered))
    data_before = (meta.parent / "data.npz").read_bytes()
    assert main(argv) == 2
    assert "was made with other settings" in capsys.readouterr().err
    assert json.loads(meta.read_text())["family"] == "point-gain"
    assert (meta.parent / "data.npz").read_bytes() == data_before
