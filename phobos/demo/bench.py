"""``phobos bench demo``: lock-step steps per second, one process per agent, beside in-process.

The same seeded orbit-scheduling (v0) episodes with the same greedy policies, three ways:

- in-process: one loop calls the environment and every policy (the peer);
- lock-step, one process per agent over tcp+CURVE on 127.0.0.1 (the world server of the demo,
  throttle off, telemetry published at 10 Hz), the intents in the world's in-memory router;
- the same with the intents carried over ZeroMQ through the in-world relay (the demo's
  default before agents sent their own);
- every agent process building and sending its own messages through the DTN relay process
  (tcp+CURVE, custody journaled), the world asking it each step for the copies that arrive
  (``relay="process"``, the demo's default now).

Each figure is the median of three runs of ``seconds`` each (after the agents joined); the
machine's load average is printed beside them because other jobs share its cores.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

from phobos.agents import make_team
from phobos.benchmarks.targets import Target, table
from phobos.comms.security import generate_keys
from phobos.demo.launcher import agent_command, free_port, relay_command
from phobos.envs import make
from phobos.envs.episode import play
from phobos.envs.orbit_scheduling.task import ID_V0 as ORBIT
from phobos.live import protocol as p
from phobos.live.dtn import protocol as r
from phobos.live.supervisor import Supervisor
from phobos.live.world import WorldServer, WorldSettings

ENV = ORBIT
POLICY = "greedy"
RUNS = 3


def in_process(seconds: float) -> float:
    """Steps per second of the in-process loop over seeded episodes."""
    env = make(ENV)
    team = make_team(POLICY, env)
    steps, episode = 0, 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        observations, _ = env.reset(seed=episode)
        for i, agent in enumerate(env.possible_agents):
            team[agent].reset(seed=episode + i)
        for _ in play(env, team, observations):
            steps += 1
        episode += 1
    return steps / (time.perf_counter() - started)


def lock_step(seconds: float, relay: str) -> tuple[float, int]:
    """Steps per second with one agent process each over tcp+CURVE; and safe defaults used."""
    with tempfile.TemporaryDirectory(prefix="phobos-bench-") as folder:
        keys = Path(folder) / "keys"
        agents = make(ENV).possible_agents
        for name in (p.WORLD, r.RELAY, *agents):
            generate_keys(keys, name)
        settings = WorldSettings(relay=relay, action_timeout=2.0)
        relay_argv = None
        if relay == "process":
            address = f"tcp://127.0.0.1:{free_port()}"
            settings = dataclasses.replace(settings, relay_address=address)
            relay_argv = relay_command(address, keys, Path(folder) / "relay.db")
        world = WorldServer(ENV, keys=keys, settings=settings)
        supervisor = None
        try:
            commands = {a: agent_command(a, world.address, keys, POLICY) for a in agents}
            if relay_argv is not None:
                commands[r.RELAY] = relay_argv
            supervisor = Supervisor(commands).start()
            if world.relay_link is not None:  # the relay is up before the clock starts
                world.relay_link.request(r.FLUSH, 0.0, (r.FLUSHED,))
            stats = world.run(seconds=seconds)
        finally:
            if supervisor is not None:
                supervisor.stop()
            world.close()
        defaults = sum(record.defaults for record in world.records.values())
        return stats.steps / stats.elapsed_s, defaults


def markdown(seconds: float) -> str:
    """The benchmark section: a table of medians with every run, and the target."""
    rows = []
    peer = [in_process(seconds) for _ in range(RUNS)]
    load_before = os.getloadavg()[0]
    memory = [lock_step(seconds, "memory") for _ in range(RUNS)]
    relayed = [lock_step(seconds, "zmq") for _ in range(RUNS)]
    agent_sent = [lock_step(seconds, "process") for _ in range(RUNS)]
    load_after = os.getloadavg()[0]
    median_peer = statistics.median(peer)
    for label, runs in (
        ("in-process loop, same env and policies (peer)", [(rate, 0) for rate in peer]),
        ("lock-step, 5 agent processes, tcp+CURVE, intents in memory", memory),
        ("lock-step, 5 agent processes, tcp+CURVE, intents over in-world ZeroMQ relay", relayed),
        ("lock-step, 5 agent processes, every message agent-sent via DTN relay process (demo)",
         agent_sent),
    ):  # fmt: skip
        rates = [rate for rate, _ in runs]
        median = statistics.median(rates)
        defaults = sum(d for _, d in runs)
        rows.append(
            f"| {label} | {median:,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} | "
            f"{1000.0 / median:.3f} | {median / median_peer:.2f} | {defaults} |"
        )
    best = statistics.median([rate for rate, _ in memory])
    demo = statistics.median([rate for rate, _ in relayed])
    dtn = statistics.median([rate for rate, _ in agent_sent])
    verdict = lambda rate: "met" if rate >= 1000 else "**MISSED**"  # noqa: E731
    goals = [
        Target(f"lock-step steps/s, {label}", ">= 1,000", f"{rate:,.0f}", rate >= 1000)
        for label, rate in (("intents in memory", best), ("intents over the ZeroMQ relay", demo))
    ]
    goals.append(
        Target(
            "lock-step steps/s, 5 agent processes, every message agent-sent via the DTN relay",
            ">= 500",
            f"{dtn:,.0f}",
            dtn >= 500,
        )
    )
    return "\n".join(
        [
            f"`{ENV}`, team `{POLICY}`, {RUNS} runs of {seconds:g} s each (after the agents "
            f"joined), dashboard throttle off; load average {load_before:.2f} before the "
            f"process runs, {load_after:.2f} after.",
            "",
            "| setup | steps/s (median) | runs | ms/step | x in-process | safe defaults |",
            "|---|---:|---|---:|---:|---:|",
            *rows,
            "",
            f"Target: at least 1,000 lock-step steps/s with one process per agent over "
            f"tcp+CURVE: {verdict(best)} with the intents in memory ({best:,.0f}), "
            f"{verdict(demo)} with them over the in-world ZeroMQ relay ({demo:,.0f}).",
            "",
            f"Target: at least 500 lock-step steps/s with 5 agent processes over tcp+CURVE, "
            f"every message sent by its agent and relayed by the DTN relay process: "
            f"{'met' if dtn >= 500 else '**MISSED**'} ({dtn:,.0f}).",
            "",
            table(goals),
        ]
    )
