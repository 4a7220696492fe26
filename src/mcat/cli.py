"""The ``mcat`` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mcat import __version__
from mcat.errors import MCATError, RunStopped
from mcat.validation import check_distinct, check_int, check_seed

if TYPE_CHECKING:
    from mcat.config import RunConfig


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), and task vectors that start with a minus
    (``--target -0.1,0.8,0.1``) read as values, as argparse reads negative numbers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        number = r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
        self._negative_number_matcher = re.compile(rf"^-{number}(,-?{number})*$")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fmt_values(values: Sequence) -> str:
    from mcat.tasks import task_key

    # vectors are comma-joined themselves: separate them by semicolons
    sep = "; " if any(isinstance(v, tuple) for v in values) else ", "
    return sep.join(task_key(v) for v in values)


def _progress_log(args: argparse.Namespace):
    """Where a command's progress lines go: stdout, or nowhere with --quiet."""
    return (lambda _m: None) if args.quiet else print


def cmd_families(args: argparse.Namespace) -> int:
    from mcat.tasks import get_family, list_families

    names = [args.name] if args.name else list_families()
    families = [get_family(n) for n in names]
    if args.json:
        rows = [
            {
                "name": f.name,
                "env": f.env
                if isinstance(f.env, str)
                else f"{f.env.__module__}.{f.env.__qualname__}",
                "parameter": f.parameter,
                "domain": str(f.domain),
                "default": f.default_task,
                "train": list(f.train_tasks),
                "test": list(f.test_tasks),
                "max_episode_steps": f.max_episode_steps,
                "description": f.description,
            }
            for f in families
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for f in families:
        env = f.env if isinstance(f.env, str) else f.env.__name__
        print(f"{f.name}  [{env}, {f.max_episode_steps} steps]  {f.description}")
        print(f"    parameter: {f.parameter}; valid: {f.domain}; default: {f.default_task}")
        print(f"    train: {_fmt_values(f.train_tasks)}")
        print(f"    test:  {_fmt_values(f.test_tasks)}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    """Run a random (or zero) policy on one task and report returns and reward payouts."""
    from gymnasium.spaces import Box

    from mcat.tasks import check_reward_delay, get_family, task_key

    family = get_family(args.family)
    task = family.check_task(args.task) if args.task is not None else family.train_tasks[0]
    delay = check_reward_delay(args.reward_delay)
    check_int("episodes", args.episodes, 1)
    check_seed(args.seed)
    env = family.make_env(task, reward_delay=delay, seed=args.seed, style=args.style)
    print(
        f"{family.name} task {task_key(task)} ({family.parameter}), "
        f"reward delay {delay}, {args.policy} policy"
    )
    for episode in range(args.episodes):
        env.reset()
        total = dense = 0.0
        payouts = steps = 0
        done = False
        while not done:
            if args.policy == "random":
                action = env.action_space.sample()
            else:
                assert isinstance(env.action_space, Box)  # every task family acts in a Box
                action = np.zeros(env.action_space.shape)
            _, reward, terminated, truncated, info = env.step(action)
            total += float(reward)  # already a float (DelayedReward's)
            dense += info["dense_reward"]
            payouts += reward != 0.0
            steps += 1
            done = terminated or truncated
        print(
            f"  episode {episode}: return {total:9.2f} (dense sum {dense:9.2f}), "
            f"{steps} steps, {payouts} reward payouts"
        )
    env.close()
    return 0


def _parse_set(items: list[str]) -> dict:
    """``key=value`` pairs (values as JSON, else strings) into a nested dict (``agent.x=1``)."""
    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise MCATError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


# flags of `mcat train` that set the RunConfig key of the same name
TRAIN_FLAGS = (
    "algo",
    "steps",
    "seed",
    "reward_delay",
    "style",
    "eval_every",
    "eval_episodes",
    "learning_starts",
    "checkpoint_every",
    "device",
    "threads",
    "utd",
    "envs_per_round",
    "schedule",
    "vector_envs",
    "train_tasks",
    "test_tasks",
    "max_episode_steps",
    "replay_capacity",
    "checkpoint_replay",
    "fast",
    "act_ahead",
    "compile",
)


def train_config_from_args(args: argparse.Namespace):
    from mcat.config import load_json, merge_config, run_config_from_dict
    from mcat.presets import load_preset

    data: dict = {}
    if args.preset:
        data = merge_config(data, load_preset(args.preset))
    if args.config:
        data = merge_config(data, load_json(Path(args.config)))
    if args.family:
        data["family"] = args.family
    if "family" not in data:
        raise MCATError("give a FAMILY (or a --preset / --config that names one)")
    for key in TRAIN_FLAGS:
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    if args.batch_size is not None:
        data.setdefault("agent", {})["batch_size"] = args.batch_size
    if args.no_contrastive:
        data.setdefault("agent", {})["contrastive_weight"] = 0.0
    merge_config(data, _parse_set(args.set or []))
    _apply_mcat_flags(args, data)
    if args.sil:
        _apply_sil_flag(data)
    return run_config_from_dict(data)


def _apply_sil_flag(data: dict) -> None:
    """``--sil``: self-imitation for a baseline (the paper's appendix D.4)."""
    from mcat.algos import get_algo

    algo = data.get("algo", "ctd3")
    if algo == "mcat":
        raise MCATError("--sil: MCAT has self-imitation already (on by default; --no-sil: off)")
    if algo == "ctd3":
        raise MCATError(
            "--sil: ctd3 with self-imitation is MCAT without policy transfer (--algo mcat --no-pt)"
        )
    fields = {f.name for f in dataclasses.fields(get_algo(algo).config)}
    if "sil" not in fields:
        raise MCATError(f"--sil: {algo} has no self-imitation option")
    data.setdefault("agent", {})["sil"] = True


# flags of `mcat train` for MCAT's parts:
# (flag, agent key, value when given or None for the flag's value)
MCAT_FLAGS = (
    ("no_pt", "policy_transfer", False),
    ("no_sil", "sil", False),
    ("pt_window", "pt_window", None),
    ("pt_stale_after", "pt_stale_after", None),
    ("pt_margin", "pt_margin", None),
)
PT_ONLY = (
    "pt_window",
    "pt_stale_after",
    "pt_margin",
)  # knobs that mean nothing without policy transfer


def _apply_mcat_flags(args: argparse.Namespace, data: dict) -> None:
    given = [
        (flag, key, value)
        for flag, key, value in MCAT_FLAGS
        if getattr(args, flag) is not None and getattr(args, flag) is not False
    ]
    if not given:
        return
    names = ", ".join("--" + flag.replace("_", "-") for flag, _, _ in given)
    if data.get("algo", "ctd3") != "mcat":
        raise MCATError(
            f"{names}: only for --algo mcat (this run's algo is {data.get('algo', 'ctd3')})"
        )
    agent = data.setdefault("agent", {})
    for flag, key, value in given:
        agent[key] = getattr(args, flag) if value is None else value
    pt_knobs = [k for k in PT_ONLY if k in agent]
    if agent.get("policy_transfer") is False and pt_knobs:
        raise MCATError(
            f"--no-pt contradicts {', '.join('--' + k.replace('_', '-') for k in pt_knobs)} "
            f"(a policy-transfer option); drop one of them"
        )


def _print_returns(
    rows: Sequence[tuple[str, str, float, float | None]], extra: str = "saved"
) -> None:
    """The per-task returns, with an ``extra`` column where rows have a fourth value."""
    print(
        f"  {'split':5}  {'task':>8}  {'return':>10}"
        + (f"  {extra:>10}" if any(r[3] is not None for r in rows) else "")
    )
    for split, task, ret, saved in rows:
        extra = f"  {saved:10.2f}" if saved is not None else ""
        print(f"  {split:5}  {task:>8}  {ret:10.2f}{extra}")


def cmd_train(args: argparse.Namespace) -> int:
    from mcat.runs import load_run_config
    from mcat.train import Trainer, extend_run, train

    log = _progress_log(args)
    if args.plot:  # checked before the run, not after hours of training
        from mcat.plot import PLOT_SUFFIXES
        from mcat.validation import check_writable_file

        check_writable_file(Path(args.plot), "plot file", PLOT_SUFFIXES)
    if args.seeds is not None and (args.resume or args.seed is not None):
        raise MCATError(
            "--seeds trains new seeds together (re-run the same command to continue them); "
            f"drop {'--resume' if args.resume else '--seed'}"
        )
    if args.resume:
        given = (
            [
                f"--{k.replace('_', '-')}"
                for k in (
                    *(f for f in TRAIN_FLAGS if f != "steps"),  # --steps raises the budget
                    *(f for f, _, _ in MCAT_FLAGS),
                    "batch_size",
                    "preset",
                    "config",
                    "set",
                    "out",
                    "family",
                )
                if getattr(args, k) is not None and getattr(args, k) is not False
            ]
            + ["--overwrite"] * args.overwrite
            + ["--no-contrastive"] * args.no_contrastive
        )
        if given:
            raise MCATError(
                f"--resume continues the run with its own config.json; drop {', '.join(given)}"
            )
        out = Path(args.resume)
        from mcat.seeds import seed_group

        group = seed_group(out)
        if group is not None:  # the runs of `--seeds`: continued together, as a re-run does
            if args.steps is not None:
                for seed in group[1]:
                    extend_run(out / f"seed{seed}", args.steps, log)
                group = seed_group(out)
                assert group is not None
            return _train_seeds(*group, out, False, log, args.plot)
        if args.steps is not None:
            extend_run(out, args.steps, log)
        cfg = load_run_config(out)
        if cfg.fast:
            from mcat.seeds import SeedGroup

            summary = SeedGroup(cfg, [cfg.seed], out, log=log, resume=True).run()[0]
        else:
            summary = Trainer.resume(out, log=log).run()
        assert summary is not None
        return _report(out, summary, args.plot)
    cfg = train_config_from_args(args)
    if args.seeds is not None:
        check_distinct("seeds", args.seeds, "seed")
        for seed in args.seeds:
            check_seed(seed, "seeds")
        cfg.fast = True
        out = (
            Path(args.out)
            if args.out
            else Path("runs") / cfg.family / f"{cfg.algo}-delay{cfg.reward_delay}-seeds"
        )
        return _train_seeds(cfg, args.seeds, out, args.overwrite, log, args.plot)
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / cfg.family / f"{cfg.algo}-delay{cfg.reward_delay}-seed{cfg.seed}"
    )
    summary = train(cfg, out, overwrite=args.overwrite, log=log)
    return _report(out, summary, args.plot)


def _train_seeds(
    cfg: RunConfig,
    seeds: list[int],
    out: Path,
    overwrite: bool,
    log: Callable[[str], None],
    plot: str | None,
) -> int:
    """``--seeds``: the seeds trained together (or continued), each one's final evaluation."""
    from mcat.seeds import SeedGroup

    summaries = SeedGroup(cfg, seeds, out, overwrite=overwrite, log=log).run()
    for seed, summary in zip(seeds, summaries, strict=True):
        print(f"seed {seed}:")
        assert summary is not None
        _report(out / f"seed{seed}", summary, None)
    _plot([out / f"seed{s}" for s in seeds], plot)
    return 0


def _report(out: Path, summary: dict, plot: str | None) -> int:
    """The final evaluation beside a uniformly random policy's on the same episodes (the bar to
    clear), where the run is, and the plot if asked."""
    from mcat.evaluation import random_policy_returns
    from mcat.runs import load_run_config
    from mcat.tasks import get_family

    cfg = load_run_config(out)
    family = get_family(cfg.family)
    random = random_policy_returns(cfg, [family.task(key) for key in summary["per_task"]])
    rows = [
        (v["split"], key, v["return"], random[family.task(key)])
        for key, v in summary["per_task"].items()
    ]
    print(
        f"final evaluation after {summary['steps']:,} env steps "
        f"({summary['env_steps_per_s']:.0f} steps/s), beside a random policy:"
    )
    _print_returns(rows, extra="random")
    means = {
        split: (
            np.mean([r[2] for r in rows if r[0] == split]),
            np.mean([r[3] for r in rows if r[0] == split]),
        )
        for split in ("train", "test")
        if any(r[0] == split for r in rows)
    }
    print("  mean: " + ", ".join(f"{s} {m:.2f} (random {r:.2f})" for s, (m, r) in means.items()))
    print(f"run written to {out}")
    _plot([out], plot)
    return 0


def _plot(runs: list[Path], plot: str | None) -> None:
    if plot:
        from mcat.plot import plot_runs

        plot_runs(runs, Path(plot))
        print(f"learning curves: {plot}")


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from mcat.config import load_json
    from mcat.evaluation import evaluate_agent
    from mcat.runs import SUMMARY
    from mcat.tasks import get_family, task_key
    from mcat.train import load_run_agent, load_run_replay, run_tasks

    run_dir = Path(args.run_dir)
    cfg, agent, state = load_run_agent(run_dir)
    family = get_family(cfg.family)
    if args.episodes is not None:
        cfg.eval_episodes = check_int("episodes", args.episodes, 1)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    saved = {}
    if (run_dir / SUMMARY).is_file():
        saved = {
            k: v["return"] for k, v in load_json(run_dir / SUMMARY).get("per_task", {}).items()
        }
    train_tasks, test_tasks = run_tasks(cfg)
    if args.tasks:
        values = [family.check_task(v) for v in args.tasks]
        check_distinct("tasks", values)
        tasks = [
            ("train" if v in train_tasks else "test" if v in test_tasks else "new", v)
            for v in values
        ]
    else:
        tasks = [("train", v) for v in train_tasks] + [("test", v) for v in test_tasks]
    replay = (
        load_run_replay(cfg, state) if getattr(agent, "adaptation_uses_replay", False) else None
    )
    returns = evaluate_agent(agent, cfg, [v for _, v in tasks], replay)
    print(
        f"{run_dir}: {cfg.algo} on {cfg.family}, "
        f"checkpoint at {state.get('env_steps', '?')} env steps, "
        f"{cfg.eval_episodes} episode(s) per task"
    )
    same_episodes = args.episodes is None
    _print_returns(
        [
            (split, task_key(v), returns[v], saved.get(task_key(v)) if same_episodes else None)
            for split, v in tasks
        ]
    )
    return 0


def cmd_algos(args: argparse.Namespace) -> int:
    """The registered algorithms (built-in and from plugins)."""
    from mcat.algos import list_algos

    for algo in list_algos():
        print(f"{algo.name:12} {algo.description}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    """The shipped presets (the paper's settings) with their notes."""
    from mcat.presets import PRESET_DIR, list_presets

    for name in list_presets():
        note = json.loads((PRESET_DIR / f"{name}.json").read_text()).get("note", "")
        print(f"{name}\n    {note}" if note else name)
    print(f"\nuse: mcat train --preset NAME [--seed S ...]; files in {PRESET_DIR}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from mcat.plot import plot_runs

    counts = plot_runs([Path(d) for d in args.run_dirs], Path(args.output), title=args.title)
    for label, per_split in counts.items():
        print(f"{label}: " + ", ".join(f"{split} {n} seed(s)" for split, n in per_split.items()))
    print(f"wrote {args.output}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from mcat import sweep

    if args.list:
        for name in sweep.list_specs():
            spec = sweep.load_spec(name)
            print(f"{name:28} {len(sweep.expand(spec)):3} trials  {spec.description}")
        return 0
    if args.status:
        if args.spec or args.out or args.address:
            raise MCATError("--status DIR shows a sweep; drop the SPEC, --out and --address")
        rows = sweep.status(Path(args.status))
        width = max(len(r[0]) for r in rows)
        print(f"{'trial':{width}}  {'state':9}  {'step':>9}  {'test':>9}")
        for name, state, step, ret in rows:
            step_s = f"{step:,}" if step is not None else "-"
            ret_s = f"{ret:.1f}" if ret is not None else "-"
            print(f"{name:{width}}  {state:9}  {step_s:>9}  {ret_s:>9}")
        states = ("done", "to extend", "started", "failed", "pending")
        counts = {s: sum(r[1] == s for r in rows) for s in states}
        print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
        return 0
    if not args.spec:
        raise MCATError(
            "give a sweep SPEC (a YAML/JSON file or one of "
            f"{', '.join(sweep.list_specs())}), or --status DIR, or --list"
        )
    if not args.out:
        raise MCATError("give --out DIR: the folder of the sweep's runs")
    spec = sweep.load_spec(args.spec)
    results = sweep.run(spec, Path(args.out), address=args.address)
    failed = {name: msg for name, msg in results.items() if msg != "done"}
    if failed:
        for name, msg in failed.items():
            print(f"mcat: trial {name} failed: {msg}", file=sys.stderr)
        print(
            f"mcat: {len(failed)} of {len(results)} trials failed; fix the cause and re-run the "
            "same command (finished trials are kept)",
            file=sys.stderr,
        )
        return 1
    print(f"sweep {spec.name}: all {len(results)} trials done in {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mcat.report import PAPER_TABLES, write_report
    from mcat.sweep import iter_run_dirs
    from mcat.validation import check_writable_file

    out = check_writable_file(Path(args.output), "report file", (".md",))
    if args.step is not None:
        check_int("--step", args.step, 1, 10**12)
    runs = list(iter_run_dirs([Path(p) for p in args.runs]))
    tables = [f"table{args.paper}"] if args.paper else PAPER_TABLES
    write_report(runs, out, args.step, tables)
    print(f"wrote {out} ({len(runs)} run folders)")
    return 0


def cmd_video(args: argparse.Namespace) -> int:
    from mcat import video
    from mcat.tasks import task_key
    from mcat.validation import check_writable_file

    out = check_writable_file(Path(args.output), "video file", video.SUFFIXES)
    episodes = check_int("episodes", args.episodes, 1, 100)
    width = check_int("width", args.width, 16, 3840)
    height = check_int("height", args.height, 16, 2160)
    task = args.task  # parsed by the run's family
    folder = Path(args.run_dir)
    transfer_result = video.is_transfer_result(folder)
    if transfer_result and args.transfer_from is not None:
        raise MCATError(
            f"{folder} is a transfer result: it shows its own transfer; drop --transfer-from"
        )
    if not transfer_result and args.cache is not None:
        raise MCATError("--cache: only for an output folder of mcat transfer; drop it")
    if not transfer_result and task is None:
        raise MCATError("--task is needed for a training run (the task to play)")
    backend = video.headless_gl()  # before anything opens an OpenGL context
    right: video.Clip | None
    if transfer_result:
        left, right, tcfg = video.record_transfer(
            folder, task, episodes, Path(args.cache or "runs/cache"), width, height
        )
        what = (
            f"transfer {task_key(tcfg.source)} -> {task_key(tcfg.target)} on {tcfg.family} "
            f"({tcfg.translator})"
        )
        names = ("source policy, left", "transferred, right")
        if tcfg.joint:
            what = (
                f"transfer {tcfg.family} {task_key(tcfg.source)} -> {tcfg.target_family_name} "
                f"{task_key(tcfg.target)} ({tcfg.translator})"
            )
            names = ("source policy on its body, left", "transferred, right")
    else:
        source = args.transfer_from
        assert task is not None  # checked above
        left, right, cfg = video.record(folder, task, episodes, source, width, height)
        what = f"{cfg.algo} on {cfg.family}, task {args.task}"
        names = ("learned, left", f"transferred from {args.transfer_from}, right")
    clip = left if right is None else video.side_by_side(left, right)
    written = video.write(clip, out)
    if written != out:
        print("no MP4 encoder here (pip install imageio-ffmpeg): wrote a GIF instead")
    print(f"{folder}: {what}, rendered with {backend}")
    for e, ret in enumerate(left.returns):
        line = f"  episode {e}: return {ret:.2f}"
        if right is not None:
            line += f" ({names[0]}); {right.returns[e]:.2f} ({names[1]})"
        print(line)
    print(f"wrote {written} ({len(clip.frames)} frames at {clip.fps:g} fps)")
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from mcat.experiments.transfer import TransferConfig, run_transfer

    if args.target_data_policy and not args.state_translator:
        raise MCATError(
            "--target-data-policy is for --state-translator (with --target-family a target data "
            "policy always collects the target's data)"
        )
    if args.target_policy_steps is not None and not (args.target_family or args.target_data_policy):
        raise MCATError(
            "--target-policy-steps is for a target data policy: add --target-family (another "
            "body) or --state-translator --target-data-policy"
        )
    if args.target_policy is not None and not args.target_data_policy:
        raise MCATError("--target-policy is for --target-data-policy")
    if args.target_policy == "scripted" and args.target_policy_steps is not None:
        raise MCATError("--target-policy-steps trains a TD3 policy; a scripted one needs none")
    if args.source_policy == "scripted" and args.source_steps is not None:
        raise MCATError("--source-steps trains a TD3 source; a scripted source needs none")
    for name in ("distribution_weight", "action_distribution_weight"):
        if getattr(args, name) is not None and not (args.target_family or args.state_translator):
            flag = "--" + name.replace("_", "-")
            raise MCATError(
                f"{flag} is for a state translator: add --target-family or --state-translator"
            )
    extra: tuple[str, ...] = ("translator", "target_family", "target_policy_steps", "source_policy")
    extra += ("distribution_weight", "action_distribution_weight")
    extra += ("state_translator",) if args.state_translator else ()
    extra += ("residual_state_translator",) if args.residual_state_translator else ()
    extra += ("target_data_policy", "target_policy") if args.target_data_policy else ()
    values = _experiment_values(args, extra)
    cfg = TransferConfig(family=args.family, source=args.source, target=args.target, **values)
    target = args.target if args.target_family is None else f"{args.target_family}-{args.target}"
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / "transfer" / f"{args.family}-{args.source}-to-{target}-seed{cfg.seed}"
    )
    from mcat.runs import stop_on_signals

    with stop_on_signals():  # SIGTERM, Ctrl-C: a translator loop stops with its state saved
        run_transfer(
            cfg,
            out,
            Path(args.cache),
            overwrite=args.overwrite,
            log=_progress_log(args),
        )
    print(f"result written to {out / 'summary.json'}")
    return 0


def cmd_transfer_matrix(args: argparse.Namespace) -> int:
    from mcat.experiments.transfer_matrix import MatrixConfig, run_matrix

    values = _experiment_values(args)
    cfg = MatrixConfig(family=args.family, tasks=list(args.tasks), **values)
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / "transfer-matrix" / f"{args.family}-seed{cfg.seed}"
    )
    run_matrix(
        cfg,
        out,
        Path(args.cache),
        overwrite=args.overwrite,
        log=_progress_log(args),
    )
    print(f"matrix written to {out / 'improvement.csv'} and {out / 'improvement.png'}")
    return 0


# flags shared by `mcat transfer` and `mcat transfer-matrix`,
# each setting the config field of its name
EXPERIMENT_FLAGS = (
    "seed",
    "source_steps",
    "dataset_size",
    "dataset_noise",
    "model_steps",
    "translator_steps",
    "batch_size",
    "objective",
    "eval_episodes",
    "max_episode_steps",
    "threads",
)


def _add_experiment_flags(
    p: argparse.ArgumentParser, source: str, episodes: str, **defaults
) -> None:
    """The shared flags; ``defaults`` are those of the command's config (TransferConfig or
    MatrixConfig, not imported here: that would import torch for every command), for the help."""
    d = {
        "dataset_noise": 0.3,
        "model_steps": 20_000,
        "translator_steps": 20_000,
        "batch_size": 256,
        "objective": "nll",
    } | defaults
    p.add_argument(
        "--cache",
        default="runs/cache",
        help="where source policies, datasets and models are cached (default runs/cache)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a result already in --out")
    p.add_argument("--seed", type=int)
    p.add_argument("--source-steps", type=int, help=f"{source} (default {d['source_steps']})")
    p.add_argument(
        "--dataset-size", type=int, help=f"transitions per task (default {d['dataset_size']})"
    )
    p.add_argument(
        "--dataset-noise",
        type=float,
        help=f"action noise of the data-collecting policy (default {d['dataset_noise']})",
    )
    p.add_argument(
        "--model-steps", type=int, help=f"forward-model steps (default {d['model_steps']})"
    )
    p.add_argument(
        "--translator-steps", type=int, help=f"translator steps (default {d['translator_steps']})"
    )
    p.add_argument(
        "--batch-size", type=int, help=f"transitions per task per step (default {d['batch_size']})"
    )
    p.add_argument(
        "--objective",
        choices=("nll", "l1"),
        help=f"translator loss: nll (Eq. 3) or l1 (default {d['objective']})",
    )
    p.add_argument("--eval-episodes", type=int, help=f"{episodes} (default {d['eval_episodes']})")
    p.add_argument("--max-episode-steps", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--quiet", action="store_true")


def _experiment_values(args: argparse.Namespace, extra: tuple[str, ...] = ()) -> dict:
    return {k: getattr(args, k) for k in EXPERIMENT_FLAGS + extra if getattr(args, k) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mcat",
        description="MCAT: meta-RL with an action translator on sparse-reward tasks.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  mcat families                      the task families and their tasks\n"
            "  mcat presets                       the paper's settings, ready to train\n"
            "  mcat train halfcheetah-armature --steps 50000 --out runs/hc\n"
            "  mcat train --preset table2-halfcheetah-armature --seed 1\n"
            "  mcat train --resume runs/hc        continue a stopped run\n"
            "  mcat eval runs/hc; mcat plot runs/hc -o curves.png\n"
            "'mcat COMMAND --help' describes each command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"mcat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("families", help="list the task families with their train and test tasks")
    p.add_argument("name", nargs="?", help="show only this family")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_families)

    p = sub.add_parser("rollout", help="run a random policy on one task (checks a family works)")
    p.add_argument("family")
    p.add_argument("--task", help="parameter value of the task (default: the first training task)")
    p.add_argument(
        "--reward-delay",
        type=int,
        default=1,
        help="pay the summed reward every D steps (default 1)",
    )
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--policy", choices=("random", "zero"), default="random")
    p.add_argument(
        "--style",
        choices=("paper", "gymnasium"),
        default="paper",
        help="reward/observation/termination style",
    )
    p.set_defaults(func=cmd_rollout)

    p = sub.add_parser(
        "train",
        help="meta-train on the training tasks of a family, evaluating on train and test tasks",
    )
    p.add_argument(
        "family", nargs="?", help="task family (may come from --preset/--config instead)"
    )
    p.add_argument(
        "--algo",
        help=(
            "algorithm: ctd3 (default, context TD3), "
            "mcat (ctd3 + self-imitation + policy transfer), td3 (no context), "
            "pearl, mql (baselines), or one a plugin registers (`mcat algos` lists them)"
        ),
    )
    p.add_argument(
        "--steps", type=int, help="total env steps over all training tasks (default 100000)"
    )
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="S",
        help="train these seeds together in one process on the fast path (OUT/seedS each)",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        default=None,
        help="the fast path: device replay, updates batched over seeds, CUDA graphs on a GPU",
    )
    p.add_argument(
        "--act-ahead",
        action="store_true",
        default=None,
        help="fast path: act with the policy from before the last round's gradient steps, "
        "which then run on the GPU while the environments step (not yet measured; README)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="fast path: compile the steps with torch.compile, fewer fused kernels (a minute "
        "or more to compile at the start; not yet measured on a GPU; README)",
    )
    p.add_argument(
        "--reward-delay", type=int, help="pay the summed reward every D steps (default 1)"
    )
    p.add_argument("--out", help="run directory (default runs/FAMILY/ALGO-delayD-seedS)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its newest complete checkpoint (with --steps N: "
        "on to a larger budget of N env steps, a finished run too)",
    )
    p.add_argument(
        "--no-checkpoint-replay",
        dest="checkpoint_replay",
        action="store_false",
        default=None,
        help="leave the replay out of checkpoints (smaller; a resumed run is then not identical)",
    )
    p.add_argument(
        "--preset", help="a preset name (`mcat presets` lists them) or JSON file; flags override it"
    )
    p.add_argument("--config", help="a JSON config file (keys of config.json); flags override it")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any config key, e.g. agent.batch_size=128 (repeatable)",
    )
    p.add_argument("--eval-every", type=int, help="env steps between evaluations (default 10000)")
    p.add_argument("--eval-episodes", type=int, help="evaluation episodes per task (default 1)")
    p.add_argument(
        "--learning-starts", type=int, help="env steps of random actions first (default 10000)"
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        help="env steps between checkpoints (default 50000; the last two are kept)",
    )
    p.add_argument("--batch-size", type=int, help="TD3 transitions per task per step (default 256)")
    p.add_argument("--utd", type=float, help="gradient steps per env step of each task (default 1)")
    p.add_argument("--no-contrastive", action="store_true", help="turn the contrastive loss off")
    p.add_argument(
        "--no-pt",
        action="store_true",
        help="mcat: no policy transfer while collecting (and no translator)",
    )
    p.add_argument("--no-sil", action="store_true", help="mcat: no self-imitation losses")
    p.add_argument(
        "--sil",
        action="store_true",
        help="pearl, mql, distral, hipbmdp: add MCAT's self-imitation losses (appendix D.4)",
    )
    p.add_argument(
        "--pt-window",
        type=int,
        help="mcat: recent episodes averaged into a policy's score (default 3)",
    )
    p.add_argument(
        "--pt-stale-after",
        type=int,
        help="mcat: episodes of a task after which a score is dropped (default 20)",
    )
    p.add_argument(
        "--pt-margin",
        type=float,
        help="mcat: how much better a source task must score to be a candidate (default 0)",
    )
    p.add_argument("--train-tasks", nargs="+", help="training tasks (default: the family's)")
    p.add_argument("--test-tasks", nargs="+", help="test tasks (default: the family's)")
    p.add_argument("--envs-per-round", type=int, help="tasks collected at once (default: all)")
    p.add_argument(
        "--schedule", choices=("round-robin", "sample"), help="next task when fewer envs than tasks"
    )
    p.add_argument(
        "--vector-envs",
        choices=("sync", "async", "worker"),  # collect.VECTOR_MODES (not imported: slow)
        help="step the environments in this process (sync, default), in one subprocess each "
        "(async) or all in one worker subprocess (worker)",
    )
    p.add_argument("--max-episode-steps", type=int, help="episode length (default: the family's)")
    p.add_argument(
        "--replay-capacity", type=int, help="transitions kept per task (default 1000000)"
    )
    p.add_argument(
        "--style", choices=("paper", "gymnasium"), help="environment style (default paper)"
    )
    p.add_argument("--device", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--plot", metavar="FILE.png", help="also plot the learning curves to this file")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "transfer",
        help="fixed-dataset policy transfer from a source to a target task (paper Table 1)",
    )
    p.add_argument("family")
    p.add_argument("--source", required=True, help="source task value")
    p.add_argument("--target", required=True, help="target task value")
    p.add_argument("--out", help="result directory (default runs/transfer/FAMILY-SRC-to-TGT-seedS)")
    p.add_argument(
        "--translator",
        choices=("mcat", "dcc"),
        help="mcat (ours, default) or dcc (Zhang et al. 2020c baseline)",
    )
    p.add_argument(
        "--source-policy",
        choices=("td3", "scripted"),
        help="td3 (trained with dense reward) or scripted (the family's hand-designed policy, "
        "Meta-World); default: scripted where the family has one, else td3",
    )
    p.add_argument(
        "--target-family",
        help="the target's family when its body has other state and action spaces (paper Sec. "
        "6, e.g. halfcheetah-3leg): a state translator is learned jointly with H",
    )
    p.add_argument(
        "--distribution-weight",
        type=float,
        help="with a state translator: weight of the term that makes G(s) distributed like the "
        "target's states (default 1)",
    )
    p.add_argument(
        "--residual-state-translator",
        action="store_true",
        help="with --state-translator: G starts as the identity and learns a change to the state "
        "(tasks of one state space)",
    )
    p.add_argument(
        "--action-distribution-weight",
        type=float,
        help="with a state translator: weight of the term that keeps H's actions distributed "
        "like the target data's actions (default 0: left out)",
    )
    p.add_argument(
        "--state-translator",
        action="store_true",
        help="learn a state translator jointly with H between two tasks of the family (paper "
        "Sec. 6, tasks whose rewards differ)",
    )
    p.add_argument(
        "--target-data-policy",
        action="store_true",
        help="with --state-translator: the target's data come from a policy of the target "
        "(--target-policy), not from the source policy",
    )
    p.add_argument(
        "--target-policy",
        choices=("td3", "scripted"),
        help="with --target-data-policy: td3 (trained on the target, --target-policy-steps; the "
        "default) or scripted (the family's hand-designed policy told the target task)",
    )
    p.add_argument(
        "--target-policy-steps",
        type=int,
        help="with --target-family or --target-data-policy: TD3 steps of the policy that "
        "collects the target's data (default 20000; 0: random actions)",
    )
    _add_experiment_flags(
        p,
        source="TD3 steps for the source policy",
        episodes="episodes per evaluation",
        source_steps=60_000,
        dataset_size=100_000,
        eval_episodes=10,
    )
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser(
        "transfer-matrix", help="one conditioned translator for every pair of tasks (paper Fig. 5)"
    )
    p.add_argument("family")
    p.add_argument("--tasks", nargs="+", required=True, help="the tasks (at least two)")
    p.add_argument("--out", help="result directory (default runs/transfer-matrix/FAMILY-seedS)")
    _add_experiment_flags(
        p,
        source="ctd3 steps, all tasks together, for the source policy",
        episodes="episodes per policy and target",
        source_steps=300_000,
        dataset_size=50_000,
        eval_episodes=5,
    )
    p.set_defaults(func=cmd_transfer_matrix)

    p = sub.add_parser("eval", help="re-evaluate a saved run on its tasks or on given tasks")
    p.add_argument("run_dir")
    p.add_argument(
        "--tasks",
        nargs="+",
        help="task values to evaluate (default: the run's train and test tasks)",
    )
    p.add_argument("--episodes", type=int, help="episodes per task (default: the run's)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("presets", help="list the presets: the paper's settings for mcat train")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("algos", help="list the algorithms (--algo of mcat train), plugins included")
    p.set_defaults(func=cmd_algos)

    p = sub.add_parser("plot", help="learning curves of runs (mean and standard error over seeds)")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--title")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser(
        "sweep",
        help="a grid of runs from a spec, on Ray (resumable: re-run the same command)",
        description=(
            "Run every trial of a sweep spec (YAML or JSON, or a shipped name: mcat sweep "
            "--list) as a run folder under --out, on a local Ray or a cluster (--address)."
        ),
    )
    p.add_argument("spec", nargs="?", help="spec file or shipped spec name")
    p.add_argument("--out", help="folder of the sweep's runs")
    p.add_argument("--address", help="an existing Ray cluster (default: a local Ray)")
    p.add_argument("--status", metavar="DIR", help="show each trial's state, step and return")
    p.add_argument("--list", action="store_true", help="list the shipped specs")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "video",
        help="render a saved run's policy on one task to MP4 or GIF (offscreen)",
    )
    p.add_argument("run_dir", help="a training run, or an output folder of mcat transfer")
    p.add_argument("--task", help="the task to play (a training run's: required)")
    p.add_argument("--episodes", type=int, default=1, help="episodes, one after another (1)")
    p.add_argument(
        "--transfer-from",
        help="also play the policy of this training task carried over by the run's translator "
        "(MCAT runs), beside the learned one",
    )
    p.add_argument("--width", type=int, default=480, help="frame width in pixels (480)")
    p.add_argument("--height", type=int, default=360, help="frame height in pixels (360)")
    p.add_argument(
        "--cache",
        help="for a transfer result from before its summary named its source policy: the "
        "--cache of its mcat transfer (default runs/cache)",
    )
    p.add_argument("-o", "--output", required=True, help="video file to write (.mp4 or .gif)")
    p.set_defaults(func=cmd_video)

    p = sub.add_parser(
        "report",
        help="markdown report (tables, statistics, curves) of runs and sweeps",
    )
    p.add_argument("runs", nargs="+", help="run folders, sweep folders or folders of runs")
    p.add_argument("-o", "--output", required=True, help="markdown file to write (PNGs beside)")
    p.add_argument("--step", type=int, help="score each run at this step (default: its last)")
    p.add_argument(
        "--paper",
        type=int,
        choices=(2, 3, 4),
        help="compare with this table of the paper only (default: the first that has the "
        "setting, in the order 4, 2, 3)",
    )
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RunStopped as exc:  # asked to stop, and saved: not an error
        print(f"mcat: {exc}", file=sys.stderr)
        return exc.exit_code
    except MCATError as exc:
        print(f"mcat: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the file system said no somewhere not already checked: one line
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"mcat: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            "mcat: error: out of memory; use smaller batches, replay capacity or networks",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("mcat: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
