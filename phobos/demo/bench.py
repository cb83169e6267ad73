"""``phobos bench demo``: lock-step steps per second, one process per agent, beside in-process.

The same seeded orbit-scheduling (v0) episodes with the same greedy policies, three ways:

- in-process: one loop calls the environment and every policy (the peer);
- lock-step, one process per agent over tcp+CURVE on 127.0.0.1 (the world server of the demo,
  throttle off, telemetry published at 10 Hz), the intents in the world's in-memory router;
- the same with the intents carried over ZeroMQ through the relay (the demo's default).

Each figure is the median of three runs of ``seconds`` each (after the agents joined); the
machine's load average is printed beside them because other jobs share its cores.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from phobos.agents import make_team
from phobos.benchmarks.targets import Target, table
from phobos.comms.security import generate_keys
from phobos.demo.launcher import agent_command
from phobos.envs import make
from phobos.envs.episode import play
from phobos.envs.orbit_scheduling.task import ID_V0 as ORBIT
from phobos.live import protocol as p
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
        for name in (p.WORLD, *agents):
            generate_keys(keys, name)
        world = WorldServer(ENV, keys=keys, settings=WorldSettings(relay=relay, action_timeout=2.0))
        supervisor = None
        try:
            commands = {a: agent_command(a, world.address, keys, POLICY) for a in agents}
            supervisor = Supervisor(commands).start()
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
    load_after = os.getloadavg()[0]
    median_peer = statistics.median(peer)
    for label, runs in (
        ("in-process loop, same env and policies (peer)", [(r, 0) for r in peer]),
        ("lock-step, 5 agent processes, tcp+CURVE, intents in memory", memory),
        ("lock-step, 5 agent processes, tcp+CURVE, intents over ZeroMQ relay (demo)", relayed),
    ):
        rates = [rate for rate, _ in runs]
        median = statistics.median(rates)
        defaults = sum(d for _, d in runs)
        rows.append(
            f"| {label} | {median:,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} | "
            f"{1000.0 / median:.3f} | {median / median_peer:.2f} | {defaults} |"
        )
    best = statistics.median([rate for rate, _ in memory])
    demo = statistics.median([rate for rate, _ in relayed])
    verdict = lambda rate: "met" if rate >= 1000 else "**MISSED**"  # noqa: E731
    goals = [
        Target(f"lock-step steps/s, {label}", ">= 1,000", f"{rate:,.0f}", rate >= 1000)
        for label, rate in (("intents in memory", best), ("intents over the ZeroMQ relay", demo))
    ]
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
            f"{verdict(demo)} with them over the ZeroMQ relay ({demo:,.0f}).",
            "",
            table(goals),
        ]
    )
