"""Garbage at a live relay process is counted and dropped while well-behaved agents are served.

The relay runs as ``python -m phobos.comms.relay`` on a random loopback port; agents ``a`` and
``b`` are reliable endpoints in this process, and ``mallory`` is a raw DEALER that sends
random bytes, truncated, oversized and wrong-version frames, spoofed senders, multipart
messages and valid frames that break the protocol. Each such message is one rejection.
"""

from __future__ import annotations

import shutil
import signal
import time

import pytest
import zmq
from hypothesis import HealthCheck, given, settings

from phobos.comms.codec import MAGIC, MAX_FRAME_SIZE, encode
from phobos.comms.endpoint import ReliableEndpoint
from phobos.comms.message import PROTOCOL_VERSION, Message
from phobos.comms.reliable import ACK, HEARTBEAT, ReliableConfig, RetryPolicy
from phobos.comms.security import generate_keys, load_keys
from phobos.comms.zmq_transport import ZmqClient
from tests.comms.relay_harness import HEARTBEAT as BEAT
from tests.comms.relay_harness import RETRY, Probe, Processes, relay_address
from tests.comms.test_zmq_garbage import garbage

pytestmark = [pytest.mark.network, pytest.mark.timeout(120)]

# Agents in this process are served only while a test calls them: a generous loss timeout
# keeps them alive across hypothesis examples (losing them would be harmless, only slower).
LOST_AFTER = 50
CONFIG = ReliableConfig(
    retry=RetryPolicy(initial=RETRY, max_interval=4 * RETRY),
    heartbeat_interval=BEAT,
    lost_after=LOST_AFTER,
)
MUTILATED = encode(Message("mallory", "b", "data", 0.0, 1, b"x" * 40))
HEADER = MAGIC + bytes((PROTOCOL_VERSION,))
CORPUS = [
    [b""],
    [b"\xff" * 32],
    [b"GET / HTTP/1.1\r\n\r\n"],
    [MUTILATED[:2]],
    [MUTILATED[: len(MUTILATED) // 2]],
    [MUTILATED + b"\x00"],
    [MAGIC + bytes((PROTOCOL_VERSION + 1,)) + MUTILATED[3:]],
    [MAGIC + b"\x00" + MUTILATED[3:]],
    [HEADER + b"\x93\x01\x02\x03"],  # msgpack [1, 2, 3]: not an envelope
    [HEADER + b"\x00" * MAX_FRAME_SIZE],  # over max_size, under the wire cap: decoded, refused
    [MUTILATED, MUTILATED],  # a message is one frame
    [encode(Message("a", "b", "data", 0.0, 1))],  # spoofed sender
    [encode(Message("mallory", "relay", ACK, 0.0, 0, "not a list"))],
    [encode(Message("mallory", "relay", ACK, 0.0, 0, [["a", 1.5]]))],
    [encode(Message("mallory", "relay", HEARTBEAT, 0.0, 0, None))],
    [encode(Message("mallory", "relay", "comms.bogus", 0.0, 0))],
    [encode(Message("mallory", "relay", "data", 0.0, 0))],  # the relay is not an agent
    [encode(Message("mallory", "b", "data", 0.0, 2**64 - 1))],  # seq beyond SQLite's range
]


@pytest.fixture
def procs(tmp_path):
    processes = Processes(tmp_path)
    yield processes
    processes.cleanup()


class Live:
    """A relay process, two agents, an attacker and a probe; all closed at teardown."""

    def __init__(self, procs, context, tmp_path, keys=None) -> None:
        self.relay = procs.relay(
            "tcp://127.0.0.1:*",
            tmp_path / "relay.db",
            f"reliable.lost_after={LOST_AFTER}",
            keys=keys,
        )
        self.address = relay_address(self.relay)
        self.context = context
        self.closables: list = []

    def agent(self, name: str, **curve) -> ReliableEndpoint:
        client = ZmqClient(self.address, name, context=self.context, **curve)
        endpoint = ReliableEndpoint(client, CONFIG)
        self.closables.append(endpoint)
        return endpoint

    def attacker(self) -> zmq.Socket:
        sock = self.context.socket(zmq.DEALER)
        sock.linger = 0
        sock.routing_id = b"mallory"
        sock.connect(self.address)
        self.closables.append(sock)
        return sock

    def close(self) -> None:
        for closable in reversed(self.closables):
            closable.close()


def round_trip(a: ReliableEndpoint, b: ReliableEndpoint, payload: int) -> None:
    """``a`` sends ``payload`` to ``b``, which gets it once; the relay acknowledges it."""
    a.send("b", "data", payload)
    deadline = time.monotonic() + 30.0
    while True:
        message = b.recv(0.05)
        a.recv(0.0)  # serve a: the relay's acknowledgement, heartbeats
        if message is not None:
            assert message.payload == payload, message
            break
        assert time.monotonic() < deadline, f"b did not get {payload}"
    assert a.wait_acked(30.0)
    b.recv(0.0)  # acknowledge it


@pytest.fixture
def live(procs, context, tmp_path):
    live = Live(procs, context, tmp_path)
    live.probe = Probe(context, live.address)
    live.closables.append(live.probe)
    live.a, live.b, live.mallory = live.agent("a"), live.agent("b"), live.attacker()
    yield live
    live.close()


def test_fixed_corpus_of_bad_frames_is_counted_one_by_one(live, procs):
    round_trip(live.a, live.b, -1)
    for number, frames in enumerate(CORPUS):
        before = live.probe.stats(5.0)["rejected"]
        live.mallory.send_multipart(frames)
        round_trip(live.a, live.b, number)
        live.probe.wait(lambda s, n=before: s["rejected"] == n + 1, what=f"rejection of {frames}")
    stats = live.probe.stats(5.0)
    assert stats["rejected"] == len(CORPUS) and stats["held"] == 0, stats
    assert "mallory" not in stats["alive"] and stats["accepted"] == len(CORPUS) + 1
    assert Processes.terminate(live.relay) == 0, procs.logs()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=garbage)
def test_random_garbage_is_counted_while_agents_are_served(live, batch):
    before = live.probe.stats(5.0)["rejected"]
    for frames in batch:
        live.mallory.send_multipart(frames)
    round_trip(live.a, live.b, before)
    live.probe.wait(lambda s: s["rejected"] == before + len(batch), what="every rejection")


def test_frame_beyond_the_wire_cap_drops_only_its_connection(live, procs):
    round_trip(live.a, live.b, 0)
    live.mallory.send(HEADER + b"\x00" * (4 * MAX_FRAME_SIZE + 1))
    round_trip(live.a, live.b, 1)
    stats = live.probe.stats(5.0)
    assert stats["rejected"] == 0 and stats["accepted"] == 2, stats  # cut off, never read
    assert Processes.terminate(live.relay, signal.SIGINT) == 0, procs.logs()


def test_relay_refuses_unknown_or_bad_settings(procs, tmp_path):
    for setting in ("reliable.hearbeat_interval=1", "max_held=0"):
        relay = procs.relay("tcp://127.0.0.1:*", tmp_path / "relay.db", setting)
        assert relay.wait(30) == 2
    assert "unknown key 'reliable.hearbeat_interval'" in procs.logs()


def test_curve_relay_serves_allowed_agents_and_no_one_else(procs, context, tmp_path):
    keys, mine = tmp_path / "relay-keys", tmp_path / "agent-keys"
    relay_keys = generate_keys(keys, "relay")
    for name in ("a", "b", "probe", "mallory"):
        generate_keys(mine, name)
        if name != "mallory":  # allowed: its public key is in the relay's folder
            shutil.copy(mine / f"{name}.key", keys / f"{name}.key")
    live = Live(procs, context, tmp_path, keys=keys)
    try:
        curve = {
            name: {"curve": load_keys(mine, name), "server_key": relay_keys.public}
            for name in ("a", "b", "probe", "mallory")
        }
        a, b = live.agent("a", **curve["a"]), live.agent("b", **curve["b"])
        probe = Probe(context, live.address, **curve["probe"])
        live.closables.append(probe)
        stranger = live.agent("mallory", **curve["mallory"])
        stranger.send("b", "data", "let me in")
        round_trip(a, b, 7)
        assert stranger.stats.acked == 0 and not stranger.wait_acked(0.5)
        stats = probe.stats(5.0)
        assert stats["accepted"] == 1 and sorted(stats["alive"]) == ["a", "b"], stats
        assert b.recv(0.2) is None
        assert Processes.terminate(live.relay) == 0, procs.logs()
    finally:
        live.close()
