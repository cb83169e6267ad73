"""The sampling task's agents send their own messages through the DTN relay (tcp+CURVE).

The lander builds its data products from its own onboard record (the world's side channel),
the science team its advice from its own belief, built from the copies the relay delivered to
it. With every agent answering, a seeded episode with message loss gives the same
observations, rewards and delivered-message log as in-process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from phobos import config as config_tools
from phobos.agents.team_spec import TeamSpec, build_team
from phobos.comms.security import generate_keys
from phobos.envs import make_config
from phobos.envs.sampling import PhobosSamplingEnv
from tests.live.relay_process import RelayProcess
from tests.live.test_dtn_relay import LoggingRouter, run_live

pytestmark = [pytest.mark.network, pytest.mark.timeout(90)]
ENV = "phobos-sampling-v0"
STEPS = 96
TEAM = "cautious,science_team=random"  # the lander sends; the team advises often (and masked)
SEED = 9


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    for name in ("world", "relay", "dashboard", *PhobosSamplingEnv().possible_agents):
        generate_keys(folder, name)
    return folder


@pytest.fixture
def relay(keys: Path, tmp_path: Path):
    process = RelayProcess(keys, tmp_path / "relay.db", tmp_path / "relay.log").start()
    yield process
    process.stop()


def small_config():
    return config_tools.replace(make_config(ENV), horizon_steps=STEPS, message_loss=0.2)


def plain(value):
    """Tuples as lists, recursively (the wire carries lists)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def normal(log):
    return [
        (r, m.sender, m.receiver, m.kind, m.send_time, m.seq, plain(m.payload)) for r, m in log
    ]


def in_process(config, seed: int):
    LoggingRouter.log = []
    env = PhobosSamplingEnv(config, message_bus=LoggingRouter)
    team = build_team(TeamSpec.parse(TEAM), env)
    observations, _ = env.reset(seed=seed)
    for i, agent in enumerate(env.possible_agents):
        team[agent].reset(seed=seed + i)
    steps = []
    while env.agents:
        actions = {agent: int(team[agent](observations[agent])) for agent in env.agents}
        observations, rewards, *_ = env.step(actions)
        steps.append((observations, rewards))
    return steps, list(LoggingRouter.log)


def test_sampling_agents_send_their_own_messages_as_in_process(keys, relay, tmp_path):
    config = small_config()
    world, stats, live_steps, runtimes = run_live(
        keys, relay, config, SEED, tmp_path, env_id=ENV, policy=TEAM
    )
    expected_steps, expected_log = in_process(config, SEED)

    assert all(not defaulted for _, _, defaulted in stats.records)
    assert len(live_steps) == len(expected_steps) > 60  # (this seed ends at a sealed container)
    for (obs, rewards), (want_obs, want_rewards) in zip(live_steps, expected_steps, strict=True):
        assert rewards == want_rewards
        for agent, want in want_obs.items():
            np.testing.assert_array_equal(obs[agent]["observations"], want["observations"])
            np.testing.assert_array_equal(obs[agent]["action_mask"], want["action_mask"])
    bus = world.bus
    assert normal(bus.log) == normal(expected_log)
    kinds = {m.kind for _, m in expected_log}
    assert kinds == {"data", "advice"}  # both agents' rules were exercised
    assert len(expected_log) >= 10
    assert bus.built > 0 and bus.ledger()["duplicated"] == 0
    ledger = world.relay_ledger
    assert ledger["accepted"] == bus.built  # every message the env built, its agent sent
    assert ledger["dropped_loss"] > 0 and ledger["owed"] == 0
    assert all(rt.talk.rule_errors == 0 for rt in runtimes)
    received = sum(len(rt.talk.ledger.received) for rt in runtimes)
    assert received == len(expected_log)
