"""The world server over real sockets: lock-step determinism, safe defaults, bad input.

Agents here are :class:`~phobos.live.runtime.AgentRuntime` threads or raw DEALER clients on
127.0.0.1 with CURVE; waits are on sockets and thread joins with deadlines, never sleeps.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
import zmq

from phobos.agents import make_team
from phobos.comms.codec import decode, encode
from phobos.comms.message import Message
from phobos.comms.security import generate_keys, load_keys
from phobos.envs import make, make_config
from phobos.live import protocol as p
from phobos.live.runtime import AgentRuntime, AgentSettings
from phobos.live.world import SAFE_ACTION, WorldServer, WorldSettings

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]
ENV = "orbit-scheduling-v0"


def small_config(**changes):
    from phobos import config as config_tools

    return config_tools.replace(make_config(ENV), horizon_steps=48, **changes)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    for name in ("world", "dashboard", "intruder", *make(ENV).possible_agents):
        generate_keys(folder, name)
    return folder


def start_world(world: WorldServer, **run) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def target() -> None:
        result["stats"] = world.run(**run)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def start_agents(world: WorldServer, keys: Path, names, policy="greedy"):
    runtimes, threads = [], []
    for name in names:
        runtime = AgentRuntime(name, world.address, keys, policy, AgentSettings(connect_timeout=10))
        runtime.say = lambda line: None
        thread = threading.Thread(target=runtime.run, daemon=True)
        thread.start()
        runtimes.append(runtime)
        threads.append(thread)
    return runtimes, threads


class RawAgent:
    """A hand-driven DEALER, to send what a real agent never would."""

    def __init__(
        self, context: zmq.Context, world: WorldServer, keys: Path, name: str, key_name=None
    ):
        own = load_keys(keys, key_name or name)
        self.name = name
        self.sock = context.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.routing_id = name.encode()
        self.sock.curve_secretkey = own.secret
        self.sock.curve_publickey = own.public
        self.sock.curve_serverkey = load_keys(keys, "world").public
        self.sock.connect(world.address)

    def send(self, kind: str, payload=None, seq: int = 0) -> None:
        self.sock.send(encode(Message(self.name, "world", kind, 0.0, seq, payload)))

    def recv(self, timeout: float = 5.0, kinds=None) -> Message | None:
        while self.sock.poll(int(timeout * 1000)):
            message = decode(self.sock.recv())
            if kinds is None or message.kind in kinds:
                return message
        return None


def test_lock_step_matches_in_process_episode(keys: Path) -> None:
    config = small_config()
    world = WorldServer(ENV, config, keys=keys, settings=WorldSettings(record=True, seed=7))
    try:
        _, threads = start_agents(world, keys, world.agents)
        stats = world.run(episodes=1)
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive()
    finally:
        world.close()

    env = make(ENV, config)
    team = make_team("greedy", env)
    observations, _ = env.reset(seed=7)
    for i, agent in enumerate(env.possible_agents):
        team[agent].reset(seed=7 + i)
    expected_actions, total = [], 0.0
    while env.agents:
        actions = {agent: int(team[agent](observations[agent])) for agent in env.agents}
        expected_actions.append(actions)
        observations, rewards, _, _, _ = env.step(actions)
        total += next(iter(rewards.values()))

    assert [actions for _, actions, _ in stats.records] == expected_actions
    assert all(not defaulted for _, _, defaulted in stats.records)
    assert stats.returns == [pytest.approx(total)]
    assert all(r.defaults == 0 and r.actions == 48 for r in world.records.values())


def test_bad_actions_get_an_error_and_the_safe_default(keys: Path, caplog) -> None:
    settings = WorldSettings(record=True, join_timeout=5.0, action_timeout=1.0, relay="memory")
    world = WorldServer(ENV, small_config(), keys=keys, settings=settings)
    context = zmq.Context()
    try:
        others = [a for a in world.agents if a != "yinghuo1"]
        _, threads = start_agents(world, keys, others)
        raw = RawAgent(context, world, keys, "yinghuo1")
        raw.send(p.HELLO, {"incarnation": 1})
        thread, result = start_world(world, steps=4)
        assert raw.recv(kinds={p.WELCOME}) is not None
        replies = []
        for bad in (99, 1.5, None):
            obs = raw.recv(kinds={p.OBS})
            assert obs is not None
            raw.send(p.ACT, bad, seq=obs.seq)
            replies.append(raw.recv(kinds={p.ERROR}))
        obs = raw.recv(kinds={p.OBS})
        raw.send(p.ACT, 0, seq=obs.seq - 1)  # stale: answers the previous step
        raw.send(p.ACT, 1, seq=obs.seq)
        thread.join(15)
        assert not thread.is_alive()
    finally:
        context.destroy(linger=0)
        world.close()
    assert all(reply is not None and "outside Discrete(7)" in reply.payload for reply in replies)
    record = world.records["yinghuo1"]
    assert (record.errors, record.stale, record.actions) == (3, 1, 1)
    steps = result["stats"].records
    assert [actions["yinghuo1"] for _, actions, _ in steps] == [SAFE_ACTION] * 3 + [1]
    assert [("yinghuo1" in defaulted) for _, _, defaulted in steps] == [True] * 3 + [False]
    assert "outside Discrete(7)" in caplog.text


def test_unknown_id_and_unlisted_key_are_refused_and_the_world_goes_on(
    keys: Path, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.INFO)
    settings = WorldSettings(join_timeout=10.0, action_timeout=1.0, relay="memory")
    world = WorldServer(ENV, small_config(), keys=keys, settings=settings)
    context = zmq.Context()
    # A yinghuo1 key that is not on the world's allow-list (the world's public key is known).
    other = tmp_path / "other"
    generate_keys(other, "yinghuo1")
    (other / "world.key").write_bytes((keys / "world.key").read_bytes())
    try:
        intruder = RawAgent(context, world, keys, "intruder")
        intruder.send(p.HELLO, {"incarnation": 5})
        impostor = RawAgent(context, world, other, "yinghuo1")
        impostor.send(p.HELLO, {"incarnation": 6})
        _, threads = start_agents(world, keys, world.agents)
        thread, result = start_world(world, episodes=1)
        refused = intruder.recv(kinds={p.REFUSED})
        assert impostor.recv(timeout=1.0) is None
        thread.join(20)
        assert not thread.is_alive()
    finally:
        context.destroy(linger=0)
        world.close()
    assert refused is not None and "unknown agent id 'intruder'" in refused.payload
    assert result["stats"].refused == 1 and result["stats"].episodes == 1
    assert "refused 'intruder': unknown agent id" in caplog.text
    assert "CURVE: refused client key" in caplog.text
    assert world.records["yinghuo1"].defaults == 0


def test_world_without_agents_flags_every_default(keys: Path) -> None:
    settings = WorldSettings(join_timeout=0.2, action_timeout=0.2, record=True, relay="memory")
    world = WorldServer(ENV, small_config(), keys=keys, settings=settings)
    try:
        stats = world.run(steps=3)
    finally:
        world.close()
    assert stats.steps == 3
    assert all(set(defaulted) == set(world.agents) for _, _, defaulted in stats.records)
    assert all(set(actions.values()) == {SAFE_ACTION} for _, actions, _ in stats.records)
