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


@pytest.fixture(scope="module")
def toy_transfer(tmp_path_factory):
    """One toy transfer (source policy, datasets, F, H, evaluation) shared by the tests here."""
    root = tmp_path_factory.mktemp("transfer")
    out, cache = root / "out", root / "cache"
    argv = ["transfer", "point-gain", "--source", "0.75", "--target", "1.5"]
    argv += ["--out", str(out), "--cache", str(cache), *TOY]
    assert main(argv) == 0
    return argv, out, cache, json.loads((out / "summary.json").read_text())


def test_toy_transfer_end_to_end_and_cache_reuse(toy_transfer, capsys):
    argv, out, _, first = toy_transfer
    for key in ("source_on_source", "source_on_target", "transferred_on_target"):
        assert set(first[key]) == {"mean", "se", "episodes"} and len(first[key]["episodes"]) == 10
        assert first[key]["mean"] == pytest.approx(np.mean(first[key]["episodes"]))
    gap = abs(first["source_on_target"]["mean"] - first["source_on_source"]["mean"])
    assert gap > 10  # the source policy suffers from the new dynamics ...
    # ... H undoes it
    assert (
        abs(first["transferred_on_target"]["mean"] - first["source_on_source"]["mean"]) < 0.1 * gap
    )
    capsys.readouterr()
    assert main([*argv, "--overwrite"]) == 0
    log = capsys.readouterr().out
    assert "reusing the source policy" in log and "reusing the dataset of task 0.75" in log
    assert "reusing the target forward model" in log and "training the source policy" not in log
    again = json.loads((out / "summary.json").read_text())
    assert again["transferred_on_target"] == first["transferred_on_target"]


def test_halfcheetah_transfer_runs_on_the_real_environment(tmp_path):
    out = tmp_path / "hc"
    assert (
        main(
            [
                "transfer",
                "halfcheetah-armature",
                "--source",
                "0.1",
                "--target",
                "0.5",
                "--out",
                str(out),
                "--cache",
                str(tmp_path / "cache"),
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
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["source"] == 0.1 and summary["target"] == 0.5
    assert all(
        len(summary[k]["episodes"]) == 2
        for k in ("source_on_source", "source_on_target", "transferred_on_target")
    )
    assert (out / "translator.pt").exists()


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


def test_a_cache_made_with_other_settings_is_refused_and_kept(toy_transfer, tmp_path, capsys):
    argv, _, shared, _ = toy_transfer
    out, cache = tmp_path / "out", tmp_path / "cache"
    shutil.copytree(shared, cache)  # a finished cache of our own to tamper with
    argv = [*argv[:6], "--out", str(out), "--cache", str(cache), *TOY, "--quiet"]
    meta = sorted((cache / "data").glob("*/meta.json"))[0]
    tampered = json.loads(meta.read_text())
    tampered["family"] = (
        "halfcheetah-armature"  # as if a dataset of another family sat under this key
    )
    meta.write_text(json.dumps(tampered))
    data_before = (meta.parent / "data.npz").read_bytes()
    assert main(argv) == 2
    assert "was made with other settings" in capsys.readouterr().err
    assert json.loads(meta.read_text())["family"] == "halfcheetah-armature"
    assert (meta.parent / "data.npz").read_bytes() == data_before
