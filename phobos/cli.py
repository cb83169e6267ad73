"""The ``phobos`` command: run, train, evaluate, demo, agent, bench and keys.

Run ``phobos <command> --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import importlib
import json
import os
import platform
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phobos import config as config_tools
from phobos.envs.orbit_scheduling.task import ID_V0 as DEFAULT_ENV
from phobos.ray_cluster import use_torch_env


def env_help() -> str:
    """``--env``'s help: the registered ids (``module:name-vN`` for a task outside the package)."""
    from phobos.envs import registered

    return (
        f"registered environment id: {', '.join(registered())}; or module:id for a task that "
        "module registers"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``phobos`` console script."""
    use_torch_env()  # before anything imports torch (see TORCH_ENV)
    parser = argparse.ArgumentParser(prog="phobos", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="fly one episode with scripted agents and summarise it")
    run.add_argument("--env", default=DEFAULT_ENV, help=env_help())
    run.add_argument(
        "--policy", default="greedy", help="team: random, greedy (sampling: cautious, oracle)"
    )
    run.add_argument("--seed", type=int, default=0, help="episode seed")
    run.add_argument("--config", type=Path, help="YAML file of the environment's config fields")
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a field"
    )
    _add_print_config(run)
    run.set_defaults(handler=_run)

    evaluate = commands.add_parser(
        "evaluate", help="evaluate teams over seeded episodes (Ray-parallel) and write a report"
    )
    evaluate.add_argument("--env", default=DEFAULT_ENV, help=env_help())
    evaluate.add_argument(
        "--policy",
        action="append",
        required=True,
        metavar="TEAM",
        help="team spec, repeatable: random, greedy, trained, cautious, informed, oracle, "
        "planner (orbit scheduling: the oracle's schedule flown in the env; a reference, not "
        "deployable), or BASE,AGENT=POLICY with POLICY a team name, sb3:PATH[@ALGO] or "
        "rllib:PATH",
    )
    episodes = evaluate.add_mutually_exclusive_group(required=True)
    episodes.add_argument("--episodes", type=int, help="seeds 0..N-1")
    episodes.add_argument("--seeds", help="seeds: 1,2,3 or 0-9")
    evaluate.add_argument("--workers", type=int, default=2, help="Ray workers; 0 runs serially")
    evaluate.add_argument("--ray-address", help="join this Ray cluster (HOST:PORT)")
    evaluate.add_argument("--out", type=Path, default=Path("runs/evaluation"), help="output folder")
    evaluate.add_argument(
        "--force", action="store_true", help="overwrite the report already in --out"
    )
    evaluate.add_argument(
        "--oracle",
        action="store_true",
        help="proven upper bound per seed (orbit scheduling): the episode's model solved by "
        "SCIP or CP-SAT, its LP relaxation beside; a seed without a proven bound gets none",
    )
    evaluate.add_argument(
        "--oracle-seconds", type=float, default=10.0, help="CP-SAT time limit per seed (> 0)"
    )
    evaluate.add_argument(
        "--oracle-workers", type=int, default=1, help="CP-SAT search workers per seed (>= 1)"
    )
    evaluate.add_argument(
        "--oracle-cache",
        type=Path,
        default=Path("runs/oracle-cache"),
        help="folder of cached solves, per (config, seed, time limit, workers)",
    )
    evaluate.add_argument("--no-oracle-cache", action="store_true", help="solve every time")
    evaluate.add_argument(
        "--oracle-solver",
        choices=("scip", "cp-sat"),
        default="scip",
        help="solver of the oracle's model: SCIP on its linear form, or CP-SAT",
    )
    evaluate.add_argument("--training-log", type=Path, help="CSV of training metrics to plot")
    evaluate.add_argument("--config", type=Path, help="YAML file of the environment's config")
    evaluate.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a field"
    )
    evaluate.add_argument(
        "--save-episodes",
        action="store_true",
        help="also write every episode's per-step actions, rewards and messages as JSON lines "
        "into OUT/episodes/ (one file per team and seed; phobos demo --replay plays one)",
    )
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="let sb3: and rllib: checkpoints load: they are pickles, and loading one runs any "
        "code it holds (use only for checkpoints you made or trust)",
    )
    _add_print_config(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    from phobos.demo.commands import add_commands as add_demo_commands
    from phobos.training.commands import add_commands as add_training_commands

    add_training_commands(commands)
    add_demo_commands(commands)

    bench = commands.add_parser("bench", help="benchmarks beside their peers")
    bench.add_argument("suite", choices=list(BENCH_SUITES), help="what to measure")
    bench.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    bench.add_argument("--write", type=Path, help="update this Markdown file's section")
    bench.set_defaults(handler=_bench)

    keys = commands.add_parser("keys", help="create CURVE key pairs for agents")
    keys.add_argument("directory", type=Path, help="folder for the key files")
    keys.add_argument("names", nargs="+", help="agent ids (and 'world' for the server)")
    keys.add_argument("--force", action="store_true", help="replace key pairs that exist")
    keys.set_defaults(handler=_keys)

    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, config_tools.ConfigError, FileNotFoundError) as error:
        print(f"phobos {args.command}: error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from phobos.agents import make_team
    from phobos.envs import config_class, make, task_spec
    from phobos.envs.episode import play

    _check_seed(args.seed)
    config = config_tools.load(config_class(args.env), args.config, args.set)
    if args.print_config:
        command = f"phobos run --env {args.env} --policy {args.policy} --seed {args.seed}"
        return _print_config(config, command)
    env = make(args.env, config)
    team = make_team(args.policy, env, seed=args.seed)
    observations, _ = env.reset(seed=args.seed)
    actions_taken = {agent: collections.Counter() for agent in env.possible_agents}
    total = 0.0
    infos: dict[str, dict[str, Any]] = {}
    for step in play(env, team, observations):
        infos = step.infos
        total += next(iter(step.rewards.values()))
        for agent, info in infos.items():
            actions_taken[agent][info["executed_action"]] += 1
    summary = next(iter(infos.values()))["episode"]
    print(f"{args.env} | {args.policy} team | seed {args.seed} | team return {total:.2f}")
    task = task_spec(args.env)
    if task.describe_episode is not None:
        for line in task.load("describe_episode")(env):
            print(f"  {line}")
    for line in textwrap.wrap(
        ", ".join(f"{key} {_number(value)}" for key, value in summary.items()), 96
    ):
        print(f"  {line}")
    for agent, counts in actions_taken.items():
        names = getattr(env, "action_names", lambda _: None)(agent)
        top = ", ".join(f"{names[a] if names else a} {n}" for a, n in counts.most_common(4))
        print(f"  {agent:>20}: {top}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from phobos.agents.team_spec import TeamSpec
    from phobos.envs import config_class
    from phobos.evaluation.oracle import check_time_limit
    from phobos.evaluation.oracle.model import check_config
    from phobos.evaluation.report import write_report
    from phobos.evaluation.runner import (
        OracleRequest,
        check_oracle_task,
        evaluate,
        make_request,
    )
    from phobos.ray_cluster import check_ray_address

    # Every check first, so that bad input fails before any episode or solver runs.
    if args.episodes is not None and args.episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {args.episodes}")
    seeds = range(args.episodes) if args.episodes is not None else args.seeds
    if args.oracle:
        check_oracle_task(args.env, "--oracle", "evaluate the 'oracle' team")
    try:
        check_time_limit(args.oracle_seconds)
    except ValueError:
        raise ValueError(f"--oracle-seconds must be positive, got {args.oracle_seconds}") from None
    if args.oracle_workers < 1:
        raise ValueError(f"--oracle-workers must be at least 1, got {args.oracle_workers}")
    if args.training_log is not None and not args.training_log.exists():
        raise ValueError(f"training log {args.training_log} does not exist")
    if args.ray_address:
        check_ray_address(args.ray_address)
    config = config_tools.load(config_class(args.env), args.config, args.set)
    teams = [TeamSpec.parse(team, trust=args.trust_checkpoint) for team in args.policy]
    request = make_request(args.env, teams, seeds, config)
    if args.save_episodes:
        request = dataclasses.replace(request, record=True)
    planner = any(team.base == "planner" for team in request.teams)
    oracle = None
    if args.oracle or planner:
        check_config(config)
        oracle = OracleRequest(
            args.oracle_seconds,
            args.oracle_workers,
            None if args.no_oracle_cache else str(args.oracle_cache),
            args.oracle_solver,
        )
    if args.print_config:
        command = (
            f"phobos evaluate --env {args.env} "
            + " ".join(f"--policy {team}" for team in args.policy)
            + f" --seeds {_seed_text(request.seeds)} --out {args.out}"
        )
        return _print_config(config, command)
    _check_report_folder(args.out, args.force)
    run = evaluate(
        request, args.workers, args.ray_address, progress=not args.no_progress, oracle=oracle
    )
    report = write_report(run, args.out, args.training_log)
    summary = json.loads((args.out / "summary.json").read_text())
    print(f"{args.env} | {len(request.seeds)} seeds | team return, mean [95% CI]:")
    gaps = summary.get("oracle", {}).get("teams", {})
    for team, data in summary["teams"].items():
        ci = data["metrics"].get("team_return")
        text = f"{ci['estimate']:.2f} [{ci['low']:.2f}, {ci['high']:.2f}]" if ci else "-"
        extra = ""
        team_gaps = gaps.get(team, {})
        if team_gaps.get("to_bound"):
            share = team_gaps["share"]
            extra += f"; bound - return median {team_gaps['to_bound']['median']:.2f}"
            if share:
                extra += f" ({share['median']:.0%} of the bound reached)"
        if team_gaps.get("to_planner"):
            extra += f"; planner - return median {team_gaps['to_planner']['median']:.2f}"
        label = f"{team} (reference, full knowledge)" if team == "planner" else team
        print(f"  {label}: {text} over {data['episodes']} episodes{extra}")
    if "oracle" in summary:
        oracle_summary = summary["oracle"]
        unproven = ", ".join(f"{o['seed']} ({o['status']})" for o in oracle_summary["unproven"])
        print(
            f"  bound proven on {oracle_summary['proven']}/{oracle_summary['seeds']} episodes"
            + (f"; none on seeds {unproven}" if unproven else "")
        )
    for result in run.failed():
        print(f"  FAILED team {result.team} seed {result.seed}:\n{result.error}", file=sys.stderr)
    if args.save_episodes:
        _save_episodes(run, args.out / "episodes")
    print(f"report: {report}")
    return 1 if run.failed() else 0


def _save_episodes(run: Any, folder: Path) -> None:
    """Write each recorded episode of ``run`` into ``folder`` (``--save-episodes``)."""
    from phobos.envs import recording

    saved = [r for r in run.results if r.episode is not None]
    for result in saved:
        recording.write(folder / recording.file_name(result.team, result.seed), result.episode)
    skipped = len(run.results) - len(saved)
    note = f" ({skipped} not recorded: failed or planner episodes)" if skipped else ""
    print(f"episodes: {folder} ({len(saved)} files{note})")


def _add_print_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (defaults, --config, --set) as YAML for --config, "
        "and exit without running",
    )


def _print_config(config: Any, command: str) -> int:
    """Print ``config`` as YAML, headed by the command that would run it with that file."""
    print(config_tools.dump(config, [f"{command} --config THIS_FILE"]), end="")
    return 0


def _seed_text(seeds: Sequence[int]) -> str:
    """Seeds as ``--seeds`` reads them: ``A-B`` for a run of consecutive seeds, else a list."""
    seeds = list(seeds)
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("phobos-autonomy")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _check_seed(seed: int, flag: str = "--seed") -> None:
    """Refuse a negative episode seed (numpy's generators take only seeds >= 0)."""
    if seed < 0:
        raise ValueError(f"{flag} must be >= 0, got {seed}")


def _check_report_folder(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that holds a report (unless ``force``) or cannot be written.

    Checked before any episode runs, so that an hour of episodes is not lost at the end.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if not force and out.is_dir() and any(out.iterdir()):
        raise ValueError(
            f"--out {out} already holds files; pass --force to overwrite them or choose "
            "another --out"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".phobos-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"--out {out} cannot be written: {error.strerror or error}") from None


def _number(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


# Each suite's module has ``markdown(seconds) -> str``: the section it measures, as Markdown.
BENCH_SUITES = {
    "env": "phobos.benchmarks.env",
    "comms": "phobos.benchmarks.comms",
    "evaluation": "phobos.benchmarks.evaluation",
    "train": "phobos.benchmarks.train",
    "demo": "phobos.demo.bench",
}


def _bench(args: argparse.Namespace) -> int:
    if not args.seconds > 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds}")
    body = importlib.import_module(BENCH_SUITES[args.suite]).markdown(args.seconds)
    command = "phobos bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else [])
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    section = f"Command: `{command.strip()}` ({stamp}; {machine})\n\n{body}\n"
    print(section)
    if args.write:
        _write_section(args.write, args.suite, section)
        print(f"updated {args.write}")
    return 0


def _write_section(path: Path, name: str, section: str) -> None:
    begin, end = f"<!-- begin bench {name} -->", f"<!-- end bench {name} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{section}{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    path.write_text(text)


def _keys(args: argparse.Namespace) -> int:
    from phobos.comms.security import generate_keys

    existing = [
        path
        for name in args.names
        for path in (args.directory / f"{name}.key", args.directory / f"{name}.key_secret")
        if path.exists()
    ]
    if existing and not args.force:
        raise ValueError(
            f"{existing[0]} exists; pass --force to replace the key pairs (agents holding the "
            "old keys are then refused)"
        )
    for name in args.names:
        keys = generate_keys(args.directory, name)
        print(f"{name}: public key {keys.public.decode()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
