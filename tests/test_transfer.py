"""`mcat transfer` (fixed-dataset experiment, Table 1) end to end, its cache, and bad input."""

import json
import shutil
import threading
import time

import numpy as np
import pytest

from mcat.cli import main
from toy_runs import mcat

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


@pytest.fixture(scope="module")
def toy_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("toy-cache")


@pytest.mark.parametrize(
    "extra",
    [  # the other loops save through the same helper (and its own test below): with --slow
        pytest.param(["--translator", "mcat"], id="H", marks=pytest.mark.slow),
        pytest.param(["--translator", "dcc"], id="zhang-H", marks=pytest.mark.slow),
        pytest.param(["--state-translator", "--translator", "mcat"], id="G-H"),
        pytest.param(
            ["--state-translator", "--translator", "dcc"], id="zhang-G-H", marks=pytest.mark.slow
        ),
    ],
)
def test_translator_training_killed_and_rerun_continues_to_the_same_result(
    extra, tmp_path, toy_cache
):
    """The translators' training (an hour per result at the paper's 20,000 steps here) is saved
    every tenth of its steps: killed at step 75 of 100 and run again with the same command, it
    continues from step 70 and ends with the translator and the scores of the run left alone;
    the progress file goes once the summary is written."""
    argv = ["transfer", "point-gain", "--source", "0.75", "--target", "1.5", *extra]
    argv += ["--source-steps", "300", "--dataset-size", "200", "--model-steps", "20"]
    argv += ["--translator-steps", "100", "--batch-size", "32", "--eval-episodes", "1"]
    argv += ["--threads", "1", "--quiet"]
    cache = ["--cache", str(toy_cache)]  # the source policy and datasets: made once
    alone, stopped = tmp_path / "alone", tmp_path / "stopped"
    mcat([*argv, *cache, "--out", str(stopped)], crash="loop:75")
    assert (stopped / "translator-progress.pt").is_file() and not (
        stopped / "summary.json"
    ).exists()
    resumed = mcat([*argv[:-1], *cache, "--out", str(stopped)])
    assert "continuing from step 70" in resumed.stdout
    assert main([*argv, *cache, "--out", str(alone)]) == 0
    name = "state_translator.pt" if "--state-translator" in extra else "translator.pt"
    assert (stopped / name).read_bytes() == (alone / name).read_bytes()
    scores = [json.loads((d / "summary.json").read_text()) for d in (stopped, alone)]
    for key in ("source_on_target", "transferred_on_target"):
        assert scores[0][key] == scores[1][key]
    assert not (stopped / "translator-progress.pt").exists()


def test_loop_checkpoint_restores_every_state_and_ignores_other_settings(tmp_path):
    """mcat.runs.LoopCheckpoint on a small loop: stopped after step 7 (saved at 6) and continued,
    it ends where the loop left alone does; saved progress of other settings is not used."""
    import torch

    from mcat.runs import LoopCheckpoint

    def loop(path, key, stop=None, messages=None):
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 1)
        opt = torch.optim.Adam(net.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.StepLR(opt, 4)
        rng, gen = np.random.default_rng(1), torch.Generator().manual_seed(2)
        log = (messages if messages is not None else []).append
        saved = LoopCheckpoint(path, key, "toy", total=10, every=3, log=log)
        start = saved.resume({"net": net, "opt": opt, "sched": sched, "rng": rng, "gen": gen})
        for step in range(start + 1, 11):
            x = torch.as_tensor(rng.normal(size=(8, 3)), dtype=torch.float32)
            x = x + torch.randn(8, 3, generator=gen) + torch.randn(8, 3)  # all three generators
            loss = net(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            saved.done(step)
            if step == stop:
                return None
        return start, net.weight.detach().clone()

    _, alone = loop(None, {"a": 1})
    path, messages = tmp_path / "progress.pt", []
    loop(path, {"a": 1}, stop=7)
    start, resumed = loop(path, {"a": 1}, messages=messages)
    assert start == 6 and torch.equal(resumed, alone) and "continuing from step 6" in messages[0]
    other: list[str] = []
    loop(path, {"a": 1}, stop=7)
    assert loop(path, {"a": 2}, messages=other)[0] == 0 and "holds another loop's" in other[0]


def test_a_target_data_policy_collects_the_target_data_of_a_state_translator(toy_cache, tmp_path):
    """--state-translator --target-data-policy: a TD3 policy trained on the target collects the
    target's dataset (not the source policy); the summary scores it beside the others."""
    argv = ["transfer", "point-gain", "--source", "0.75", "--target", "1.5", "--state-translator"]
    argv += ["--target-data-policy", "--target-policy-steps", "300", "--source-steps", "300"]
    argv += ["--dataset-size", "200", "--model-steps", "20", "--translator-steps", "20"]
    argv += ["--batch-size", "32"]
    argv += ["--eval-episodes", "1", "--threads", "1", "--quiet", "--cache", str(toy_cache)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["target_policy_run"] and summary["target_policy_run"] != summary["source_run"]
    assert {"source_on_target", "data_policy_on_target"} <= set(summary)
    metas = [json.loads(p.read_text()) for p in (toy_cache / "data").glob("*/meta.json")]
    source_policies = {m["policy"] for m in metas if m["task"] == 0.75}
    assert any(m["task"] == 1.5 and m["policy"] not in source_policies for m in metas)


def test_a_cache_product_another_process_is_making_is_waited_for(tmp_path, held_elsewhere):
    """Two transfers sharing a cache (the lanes of results/queue.sh): one that finds a dataset
    being made waits, then reuses it rather than collecting it again; when the maker dies without
    finishing it, the waiter collects it itself."""
    from mcat.experiments.transfer import Cache, TransferConfig, dataset

    cfg = TransferConfig("point-gain", 0.75, 1.5, dataset_size=200)
    made, _ = dataset(cfg, Cache(tmp_path / "a"), None, None, 0.75, lambda _m: None)
    product = next((tmp_path / "a" / "data").iterdir())

    def wait_for(root, finish):
        """dataset() in a thread while another process holds the product; ``finish`` runs once
        the thread waits, before the holder lets go."""
        folder = root / "data" / product.name
        _, release = held_elsewhere(folder)
        logs: list[str] = []
        got: dict = {}
        thread = threading.Thread(
            target=lambda: got.update(data=dataset(cfg, Cache(root), None, None, 0.75, logs.append))
        )
        thread.start()
        deadline = time.monotonic() + 60
        while not any("waiting for another process making" in m for m in logs):
            assert thread.is_alive() and time.monotonic() < deadline, logs
            time.sleep(0.05)
        assert "the dataset of point-gain task 0.75" in logs[0] and len(logs) == 1
        finish(folder)
        release()
        thread.join(60)
        np.testing.assert_array_equal(got["data"][0]["obs"], made["obs"])
        return logs

    def finished_elsewhere(folder):
        for name in ("data.npz", "meta.json"):
            shutil.copy(product / name, folder / name)

    logs = wait_for(tmp_path / "b", finished_elsewhere)
    assert "reusing the dataset" in logs[-1] and not any("collecting" in m for m in logs)
    logs = wait_for(tmp_path / "c", lambda _folder: None)  # the maker died
    assert any("collecting 200 transitions" in m for m in logs)
