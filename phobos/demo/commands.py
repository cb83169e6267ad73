"""Command-line parsers of ``phobos demo`` and ``phobos agent``."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from phobos.cli import DEFAULT_ENV, env_help


def add_commands(commands: Any) -> None:
    """Add the demo's subcommands to the ``phobos`` parser's ``commands``."""
    demo = commands.add_parser(
        "demo",
        help="live demonstration: world server, one process per agent, web dashboard",
        description="Runs the world server, one agent process per agent (restarted when one "
        "dies) and the dashboard on 127.0.0.1, and prints the dashboard's address. Runs until "
        "Ctrl-C unless --steps or --episodes bounds it.",
    )
    demo.add_argument("--env", default=DEFAULT_ENV, help=env_help())
    demo.add_argument(
        "--policy",
        help="team spec every agent flies (default: the task's demo team: cautious for "
        "the sampling task, whose lander sends its data to Earth and waits for advice; "
        "otherwise trained if it exists, else greedy)",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    demo.add_argument("--steps", type=int, help="stop after this many steps")
    demo.add_argument("--episodes", type=int, help="stop after this many episodes")
    demo.add_argument(
        "--speed",
        type=float,
        default=4.0,
        help="target steps per second (0: as fast as the agents answer); the dashboard can "
        "change it",
    )
    demo.add_argument(
        "--action-timeout", type=float, default=2.0, help="seconds to wait for each action"
    )
    demo.add_argument(
        "--join-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for every agent to join before the first step (the dashboard "
        "says who is missing meanwhile); those still missing then get safe defaults",
    )
    demo.add_argument(
        "--grace",
        type=float,
        default=20.0,
        help="extra seconds the world waits for an agent's first action after it joined or "
        "restarted (its policy may still be loading); later deadlines are --action-timeout",
    )
    demo.add_argument(
        "--relay",
        choices=("process", "zmq", "memory"),
        default="process",
        help="process (default): every agent process sends its own messages through the DTN "
        "relay process; zmq / memory: the world carries them over ZeroMQ / in memory",
    )
    demo.add_argument("--bind", default="127.0.0.1", help="interface of the world's agent socket")
    demo.add_argument("--port", type=int, default=0, help="the world's agent port (0: any)")
    demo.add_argument("--http-port", type=int, default=0, help="the dashboard's port (0: any)")
    demo.add_argument(
        "--remote",
        action="append",
        default=[],
        metavar="AGENT",
        help="do not start this agent here: it joins from another host (repeatable)",
    )
    demo.add_argument(
        "--out",
        type=Path,
        help="run folder for keys and agent logs (default: a fresh temporary one); one used "
        "again keeps its keys, so remote agents keep theirs, and appends to its logs",
    )
    demo.add_argument(
        "--run-dir", type=Path, dest="out", action=_DeprecatedAlias, help=argparse.SUPPRESS
    )
    demo.add_argument("--no-dashboard", action="store_true", help="serve no dashboard")
    demo.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="let sb3: and rllib: checkpoints load: they are pickles, and loading one runs any "
        "code it holds (use only for checkpoints you made or trust)",
    )
    demo.add_argument("--config", type=Path, help="YAML file of the environment's config")
    demo.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a field"
    )
    demo.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="play an episode saved by 'phobos evaluate --save-episodes' on the dashboard (no "
        "agent processes; each step's rewards are checked against the file); runs until "
        "Ctrl-C unless --steps or --episodes bounds it",
    )
    demo.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (defaults, --config, --set) as YAML for --config, "
        "and exit without running",
    )
    demo.set_defaults(handler=_demo)

    agent = commands.add_parser(
        "agent",
        help="run one agent's policy in its own process, connected to a world server",
    )
    agent.add_argument("--id", required=True, dest="agent_id", help="the agent's id")
    agent.add_argument("--world", required=True, help="the world's address, tcp://HOST:PORT")
    agent.add_argument(
        "--keys", required=True, type=Path, help="folder with <id>.key_secret and world.key"
    )
    agent.add_argument("--policy", help="team spec (default: trained if it exists, else greedy)")
    agent.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        help="seconds to keep retrying an unanswering world before exiting non-zero",
    )
    agent.add_argument(
        "--world-timeout", type=float, default=10.0, help="reconnect after this much silence"
    )
    agent.add_argument(
        "--ledger", type=Path, help="this agent's message ledger file (kept across restarts)"
    )
    agent.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="let sb3: and rllib: checkpoints load: they are pickles, and loading one runs any "
        "code it holds (use only for checkpoints you made or trust)",
    )
    agent.add_argument(
        "--task-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module this agent may import for a task the world names as MODULE:name-vN "
        "(importing runs its code; repeatable)",
    )
    agent.set_defaults(handler=_agent)

    relay = commands.add_parser(
        "relay",
        help="run the DTN relay process alone (phobos demo starts one; this is for agents on "
        "other hosts)",
    )
    relay.add_argument("--address", default="tcp://127.0.0.1:*", help="where to bind")
    relay.add_argument(
        "--keys", required=True, type=Path, help="folder with relay.key_secret and the allow-list"
    )
    relay.add_argument("--journal", required=True, type=Path, help="custody journal (SQLite)")
    relay.add_argument(
        "--gather-timeout", type=float, default=2.0, help="seconds a step waits for messages"
    )
    relay.set_defaults(handler=_relay)


class _DeprecatedAlias(argparse.Action):
    """An old flag name that still works, with a one-line note naming the new one."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        new = f"--{self.dest.replace('_', '-')}"
        print(f"{parser.prog}: note: {option} is deprecated; use {new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _demo(args: argparse.Namespace) -> int:
    from phobos import config as config_tools
    from phobos.demo.launcher import DemoOptions, run_demo
    from phobos.envs import config_class
    from phobos.live.world import WorldSettings

    for name in ("steps", "episodes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be at least 1, got {value}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    for flag, value in (("--join-timeout", args.join_timeout), ("--grace", args.grace)):
        if not value >= 0:  # also refuses nan
            raise ValueError(f"{flag} must be at least 0 seconds, got {value}")
    if args.replay is not None:
        return _replay(args)
    config = config_tools.load(config_class(args.env), args.config, args.set)
    if args.print_config:
        command = f"phobos demo --env {args.env} --seed {args.seed}"
        command += f" --policy {args.policy}" if args.policy else ""
        print(config_tools.dump(config, [f"{command} --config THIS_FILE"]), end="")
        return 0
    _check_port_free("--port", args.bind, args.port)
    if not args.no_dashboard:
        _check_port_free("--http-port", "127.0.0.1", args.http_port)
    _log_to_stderr()
    options = DemoOptions(
        env_id=args.env,
        policy=args.policy,
        bind=args.bind,
        port=args.port,
        http_port=args.http_port,
        local_agents=None,
        run_dir=args.out,
        dashboard=not args.no_dashboard,
        trust_checkpoint=args.trust_checkpoint,
    )
    if args.remote:
        from phobos.envs import make

        agents = make(args.env, config).possible_agents
        unknown = sorted(set(args.remote) - set(agents))
        if unknown:
            raise ValueError(f"--remote {unknown[0]!r}: agents are {', '.join(agents)}")
        options = DemoOptions(
            **{**options.__dict__, "local_agents": tuple(a for a in agents if a not in args.remote)}
        )
    settings = WorldSettings(
        action_timeout=args.action_timeout,
        join_timeout=args.join_timeout,
        first_action_grace=args.grace,
        seed=args.seed,
        speed=args.speed,
        relay=args.relay,
    )
    settings.validate()
    return run_demo(options, settings, config, episodes=args.episodes, steps=args.steps)


def _replay(args: argparse.Namespace) -> int:
    """``phobos demo --replay FILE``: check the whole file, then play it on the dashboard."""
    import signal
    import threading

    from phobos.demo.dashboard import Dashboard
    from phobos.envs import recording
    from phobos.live.replay import ReplayWorld

    clashing = [f for f in ("config", "set", "policy", "remote") if getattr(args, f)]
    if clashing:
        raise ValueError(
            f"--replay plays the file's own env, config and actions; drop --{clashing[0]}"
        )
    if not args.speed >= 0:
        raise ValueError(f"--speed must be at least 0, got {args.speed}")
    saved = recording.read(args.replay)
    team_return = recording.check(saved)  # every step, before anything is served
    if not args.no_dashboard:
        _check_port_free("--http-port", "127.0.0.1", args.http_port)
    world = ReplayWorld(saved, speed=args.speed)
    dashboard = None
    previous = signal.getsignal(signal.SIGTERM)
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        signal.signal(signal.SIGTERM, lambda *_: world.stop())
    try:
        if not args.no_dashboard:
            dashboard = Dashboard(world.telemetry_address, port=args.http_port).start()
        print(
            f"phobos demo: replaying {args.replay} ({saved.env_id}, team {saved.team}, seed "
            f"{saved.seed}, {len(saved.steps)} steps, team return {team_return:.2f})",
            flush=True,
        )
        if dashboard is not None:
            print(f"dashboard: {dashboard.url}", flush=True)
        hold = args.steps is None and args.episodes is None
        try:
            stats = world.run(steps=args.steps, hold=hold)
        except KeyboardInterrupt:
            stats = world.stats
        print(f"phobos demo: replayed {stats.steps} steps in {stats.elapsed_s:.1f} s", flush=True)
    finally:
        if dashboard is not None:
            dashboard.close()
        world.close()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _agent(args: argparse.Namespace) -> int:
    from phobos.live.runtime import AgentSettings, run_agent

    scheme, _, rest = args.world.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme != "tcp" or not host or not port.isdigit():
        hint = args.world if "://" in args.world else f"tcp://{args.world}"
        raise ValueError(f"--world {args.world!r} is not tcp://HOST:PORT (for example {hint})")
    if not args.connect_timeout > 0:
        raise ValueError(f"--connect-timeout must be positive, got {args.connect_timeout}")
    settings = AgentSettings(connect_timeout=args.connect_timeout, world_timeout=args.world_timeout)
    return run_agent(
        args.agent_id,
        args.world,
        args.keys,
        args.policy,
        settings,
        trust=args.trust_checkpoint,
        ledger=args.ledger,
        task_modules=args.task_module,
    )


def _relay(args: argparse.Namespace) -> int:
    from phobos.live.dtn.relay import main

    if not args.gather_timeout > 0:
        raise ValueError(f"--gather-timeout must be positive, got {args.gather_timeout}")
    argv = ["--address", args.address, "--keys", str(args.keys), "--journal", str(args.journal)]
    return main([*argv, "--gather-timeout", str(args.gather_timeout)])


def _check_port_free(flag: str, host: str, port: int) -> None:
    """Refuse a fixed ``port`` that something already listens on, before anything starts."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ValueError(
                    f"{flag} {port}: {host}:{port} is already in use (another demo?); "
                    f"choose another {flag}, or 0 for any free port"
                ) from None
            raise ValueError(f"{flag} {port} on {host}: {error.strerror or error}") from None


def _log_to_stderr() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
