"""``phobos demo``: the world server, one process per agent, a supervisor and the dashboard.

:class:`Demo` puts the pieces together on 127.0.0.1 (or ``bind``): a fresh key folder in the
run folder (``phobos keys``: the world, the dashboard and every agent), the world server
(:mod:`phobos.live.world`) in this process's main thread, the dashboard's web server
(:mod:`phobos.demo.dashboard`) in threads, and a supervisor (:mod:`phobos.live.supervisor`)
that runs ``phobos agent`` for every agent and restarts one that dies.

With ``relay="process"`` (the world's settings; the default of ``phobos demo`` for a task
with a message rule) the supervisor also runs the DTN relay process
(``python -m phobos.live.dtn.relay``, on a fixed loopback port and the run folder's
``relay.db`` journal, so a restarted relay resumes where it died), every agent keeps its
ledger in ``ledgers/<agent>.jsonl``, and at the end of :meth:`Demo.run` the demo writes
``summary.json`` (:mod:`phobos.demo.summary`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phobos.comms.security import generate_keys
from phobos.demo.dashboard import Dashboard
from phobos.demo.summary import message_summary, write_summary
from phobos.envs.orbit_scheduling import task as orbit_task
from phobos.live import protocol as p
from phobos.live.dtn.protocol import RELAY
from phobos.live.supervisor import Supervisor
from phobos.live.world import WorldServer, WorldSettings, WorldStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    """What ``phobos demo`` runs."""

    env_id: str = orbit_task.ID_V0
    """Registered environment id."""
    policy: str | None = None
    """Team spec every agent process flies; None: the task's demo team (``cautious`` for
    sampling, whose lander talks to Earth), else ``trained`` when it exists, else ``greedy``."""
    bind: str = "127.0.0.1"
    """Interface the world's agent socket binds (use 0.0.0.0 for agents on other hosts)."""
    port: int = 0
    """The world's agent port; 0 picks a free one."""
    http_port: int = 0
    """The dashboard's port; 0 picks a free one."""
    local_agents: tuple[str, ...] | None = None
    """Agents to start here (None: all); the others are expected from other hosts."""
    run_dir: Path | None = None
    """Folder for keys and agent logs; None makes a temporary one."""
    dashboard: bool = True
    """Serve the dashboard."""
    trust_checkpoint: bool = False
    """Let the agents load pickle-based checkpoints (``sb3:``, ``rllib:``), which run code."""


class Demo:
    """The whole live demonstration; :meth:`run` steps it, :meth:`close` stops everything.

    Args:
        options: What to run.
        settings: The world's stepping and telemetry settings.
        config: The environment's configuration (None: its default).
        agent_args: Extra arguments for every ``phobos agent`` process.

    """

    def __init__(
        self,
        options: DemoOptions,
        settings: WorldSettings | None = None,
        config: Any = None,
        agent_args: Sequence[str] = (),
    ) -> None:
        self.options = options
        self.run_dir = Path(options.run_dir or tempfile.mkdtemp(prefix="phobos-demo-"))
        self.keys = self.run_dir / "keys"
        self.world: WorldServer | None = None
        self.dashboard: Dashboard | None = None
        self.supervisor: Supervisor | None = None
        from phobos.envs import make

        probe = make(options.env_id, config)
        self.agents = list(probe.possible_agents)
        self.policy = options.policy or _default_policy(probe)
        settings = settings or WorldSettings()
        self.relay_command: list[str] | None = None
        if settings.relay == "process" and not hasattr(probe, "agent_messages"):
            log.info("demo: %s has no message rule for agents; the world relays", options.env_id)
            settings = dataclasses.replace(settings, relay="zmq", relay_address=None)
        if settings.relay == "process" and settings.relay_address is None:
            address = f"tcp://{options.bind}:{free_port()}"
            settings = dataclasses.replace(settings, relay_address=address)
            self.relay_command = relay_command(address, self.keys, self.run_dir / "relay.db")
        self.settings = settings
        for name in (p.WORLD, p.DASHBOARD, RELAY, *self.agents):
            # A run folder used again keeps its keys, so agents on other hosts keep theirs.
            if not (self.keys / f"{name}.key_secret").exists():
                generate_keys(self.keys, name)
        try:
            self.world = WorldServer(
                options.env_id,
                config,
                address=f"tcp://{options.bind}:{options.port or '*'}",
                keys=self.keys,
                settings=settings,
            )
            if options.dashboard:
                self.dashboard = Dashboard(
                    self.world.telemetry_address,
                    self.world.address,
                    self.keys,
                    port=options.http_port,
                    supervisor=self._supervisor_status,
                ).start()
            local = options.local_agents if options.local_agents is not None else self.agents
            unknown = sorted(set(local) - set(self.agents))
            if unknown:
                raise ValueError(f"unknown agents {unknown}; agents are {', '.join(self.agents)}")
            world_address = self.world.address.replace("0.0.0.0", "127.0.0.1")
            if options.trust_checkpoint:
                agent_args = (*agent_args, "--trust-checkpoint")
            module, named, _ = options.env_id.rpartition(":")
            if named:  # the demo's own task module: its agents may import it
                agent_args = (*agent_args, "--task-module", module)
            if settings.relay == "process":
                ledgers = self.run_dir / "ledgers"
                ledger_args = {a: ("--ledger", str(ledgers / f"{a}.jsonl")) for a in local}
            else:
                ledger_args = {a: () for a in local}
            commands = {
                agent: agent_command(
                    agent, world_address, self.keys, self.policy, (*agent_args, *ledger_args[agent])
                )
                for agent in local
            }
            if self.relay_command is not None:
                commands[RELAY] = self.relay_command
            self.supervisor = Supervisor(commands, log_dir=self.run_dir / "logs").start()
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str | None:
        """The dashboard's address, or None without one."""
        return self.dashboard.url if self.dashboard is not None else None

    def run(
        self, episodes: int | None = None, steps: int | None = None, seconds: float | None = None
    ) -> WorldStats:
        """Step the world until a bound or :meth:`stop`; tell the agents to exit at the end.

        With the DTN relay, it then waits (bounded) for the agents to exit and writes
        ``summary.json`` in the run folder.
        """
        stats = self.world.run(episodes, steps, seconds)
        if self.settings.relay == "process":
            self.write_summary()
        return stats

    def write_summary(self, timeout: float = 10.0) -> dict[str, Any]:
        """Write ``summary.json`` once the agents have exited (or ``timeout`` passed)."""
        if self.supervisor is not None:
            self.supervisor.wait_exited([a for a in self.agents if a != RELAY], timeout)
        world = self.world
        bus = world.env.router
        summary = {
            "env": self.options.env_id,
            "steps": world.stats.steps,
            "episodes": world.stats.episodes,
            "messages": message_summary(
                self.agents,
                self.run_dir / "ledgers",
                world.relay_ledger,
                getattr(bus, "duplicated", 0),
            ),
        }
        write_summary(self.run_dir / "summary.json", summary)
        return summary

    def stop(self) -> None:
        """Make :meth:`run` return after the current step (thread- and signal-safe)."""
        if self.world is not None:
            self.world.stop()

    def close(self) -> None:
        """Stop the agents, the dashboard and the world."""
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.dashboard is not None:
            self.dashboard.close()
        if self.world is not None:
            self.world.close()

    def _supervisor_status(self) -> dict[str, Any]:
        return self.supervisor.status() if self.supervisor is not None else {}


def agent_command(
    agent: str, world: str, keys: Path, policy: str, extra: Sequence[str] = ()
) -> list[str]:
    """The argv of ``phobos agent`` for ``agent`` (with this Python)."""
    return [
        sys.executable,
        "-m",
        "phobos.cli",
        "agent",
        "--id",
        agent,
        "--world",
        world,
        "--keys",
        str(keys),
        "--policy",
        policy,
        *extra,
    ]


def relay_command(address: str, keys: Path, journal: Path) -> list[str]:
    """The argv of the DTN relay process (with this Python)."""
    return [
        sys.executable,
        "-m",
        "phobos.live.dtn.relay",
        "--address",
        address,
        "--keys",
        str(keys),
        "--journal",
        str(journal),
    ]


def free_port() -> int:
    """A loopback port free now (the relay binds it, and binds it again after a restart)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _default_policy(env: Any) -> str:
    """The task's demo team (its telemetry view's choice), else the agents' default."""
    from phobos.live.runtime import default_policy
    from phobos.live.world.views import view_for

    return view_for(env).demo_team or default_policy(env)


def run_demo(
    options: DemoOptions,
    settings: WorldSettings,
    config: Any = None,
    episodes: int | None = None,
    steps: int | None = None,
) -> int:
    """``phobos demo``: run until a bound, Ctrl-C or SIGTERM; print the address and a summary."""
    demo = Demo(options, settings, config)
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: demo.stop())
    try:
        print(
            f"phobos demo: {options.env_id}, {len(demo.agents)} agent processes flying "
            f"policy {demo.policy}; world at {demo.world.address}; run folder {demo.run_dir}",
            flush=True,
        )
        if demo.url:
            print(f"dashboard: {demo.url}", flush=True)
        try:
            stats = demo.run(episodes, steps)
        except KeyboardInterrupt:
            stats = demo.world.stats
        rate = stats.steps / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
        returns = ", ".join(f"{r:.2f}" for r in stats.returns[-5:]) or "-"
        print(
            f"phobos demo: {stats.steps} steps in {stats.elapsed_s:.1f} s ({rate:.0f} steps/s), "
            f"{stats.episodes} episodes finished (team returns {returns}); "
            f"refused {stats.refused}",
            flush=True,
        )
        for agent, record in demo.world.records.items():
            print(
                f"  {agent:>20}: {record.status}, actions {record.actions}, "
                f"safe defaults {record.defaults}, errors {record.errors}, "
                f"restarts {record.restarts}",
                flush=True,
            )
        summary = demo.run_dir / "summary.json"
        if demo.settings.relay == "process" and summary.exists():
            m = json.loads(summary.read_text(encoding="utf-8"))["messages"]
            print(
                f"phobos demo: messages sent {m['sent']}, delivered {m['delivered']}, "
                f"held {m['held']}, dropped {m['dropped']['buffer'] + m['dropped']['loss']}, "
                f"lost {m['lost']}, duplicated {m['duplicated']} (all in {summary})",
                flush=True,
            )
    finally:
        demo.close()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
    return 0
