"""Agent processes that send their own messages through the DTN relay process (tcp+CURVE).

With every agent answering, a seeded episode gives the same observations, rewards and
delivered-message log as in-process. Waits are on sockets, process lines and joins.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from phobos import config as config_tools
from phobos.agents import make_team
from phobos.comms.router import Router
from phobos.comms.security import generate_keys
from phobos.envs import make, make_config
from phobos.envs.orbit_scheduling import OrbitSchedulingEnv
from phobos.live.runtime import AgentRuntime, AgentSettings
from phobos.live.world import WorldServer, WorldSettings
from tests.live.relay_process import RelayProcess

pytestmark = [pytest.mark.network, pytest.mark.timeout(90)]
ENV = "orbit-scheduling-v0"


def small_config():
    return config_tools.replace(make_config(ENV), horizon_steps=48, message_loss=0.2)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    for name in ("world", "relay", "dashboard", *make(ENV).possible_agents):
        generate_keys(folder, name)
    return folder


@pytest.fixture
def relay(keys: Path, tmp_path: Path):
    process = RelayProcess(keys, tmp_path / "relay.db", tmp_path / "relay.log").start()
    yield process
    process.stop()


class LoggingRouter(Router):
    """The in-process router, keeping every copy delivered."""

    log: list = []

    def deliver(self, until):  # noqa: D102
        delivered = super().deliver(until)
        LoggingRouter.log.extend(delivered)
        return delivered


def recorded(env, steps: list) -> None:
    """Keep every step's observations and rewards of ``env`` in ``steps``."""
    step = env.step

    def recording(actions):
        result = step(actions)
        steps.append((result[0], result[1]))
        return result

    env.step = recording


def in_process(config, seed: int):
    LoggingRouter.log = []
    env = OrbitSchedulingEnv(config, message_bus=LoggingRouter)
    team = make_team("greedy", env)
    observations, _ = env.reset(seed=seed)
    for i, agent in enumerate(env.possible_agents):
        team[agent].reset(seed=seed + i)
    steps = []
    while env.agents:
        actions = {agent: int(team[agent](observations[agent])) for agent in env.agents}
        observations, rewards, *_ = env.step(actions)
        steps.append((observations, rewards))
    return steps, list(LoggingRouter.log)


def run_live(
    keys: Path, relay: RelayProcess, config, seed: int, tmp_path: Path, env_id=ENV, policy="greedy"
):
    address = relay.address
    # Telemetry on every step (not at most 10 a second), so that the messages in flight the
    # test checks are sampled whatever the step rate.
    settings = WorldSettings(
        record=True, seed=seed, relay="process", relay_address=address, telemetry_hz=1e4
    )
    world = WorldServer(env_id, config, keys=keys, settings=settings)
    steps: list = []
    recorded(world.env, steps)
    threads, runtimes = [], []
    try:
        for name in world.agents:
            runtime = AgentRuntime(
                name, world.address, keys, policy, AgentSettings(connect_timeout=20),
                ledger=tmp_path / "ledgers" / f"{name}.jsonl",
            )  # fmt: skip
            runtime.say = lambda line: None
            thread = threading.Thread(target=runtime.run, daemon=True)
            thread.start()
            threads.append(thread)
            runtimes.append(runtime)
        stats = world.run(episodes=1)
        for thread in threads:
            thread.join(20)
            assert not thread.is_alive()
        return world, stats, steps, runtimes
    finally:
        world.close()


def normal(log):
    return [(r, m.sender, m.receiver, m.kind, m.send_time, m.seq, list(m.payload)) for r, m in log]


def test_agent_sent_messages_through_the_relay_process_match_in_process(keys, relay, tmp_path):
    config = small_config()
    world, stats, live_steps, runtimes = run_live(keys, relay, config, 7, tmp_path)
    expected_steps, expected_log = in_process(config, 7)

    assert all(not defaulted for _, _, defaulted in stats.records)
    assert len(live_steps) == len(expected_steps) == 48
    for (obs, rewards), (want_obs, want_rewards) in zip(live_steps, expected_steps, strict=True):
        assert rewards == want_rewards
        for agent, want in want_obs.items():
            np.testing.assert_array_equal(obs[agent]["observations"], want["observations"])
            np.testing.assert_array_equal(obs[agent]["action_mask"], want["action_mask"])
    bus = world.bus
    assert normal(bus.log) == normal(expected_log)
    assert len(expected_log) > 50  # messages did flow (and the loss dropped some)
    assert bus.built == 48 * len(world.agents)  # the env's own copies were not sent
    assert bus.ahead > 0 and bus.mismatched == 0  # steps the relay routed unasked agree
    # The dashboard draws messages in flight from the relay's own record.
    flights = list(world.telemetry.flights)
    assert flights and all(f.arrival_time > f.depart_time for f in flights)
    assert {f.sender for f in flights} <= set(world.agents)
    assert bus.ledger()["unaccounted"] == 0 and bus.ledger()["duplicated"] == 0
    ledger = world.relay_ledger
    assert ledger["accepted"] == 48 * len(world.agents)
    assert ledger["dropped_loss"] > 0
    assert ledger["owed"] == 0
    received = sum(len(rt.talk.ledger.received) for rt in runtimes)
    assert received == len(expected_log)
