"""The relay and agent endpoints in one process, on a fake clock: every rule, deterministically.

A :class:`Chaos` transport drops, duplicates and delays (reorders) messages at random, and a
relay can be "crashed" (its socket closed, its memory dropped) and started again on its
journal; whatever happens, each message reaches each receiver exactly once.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phobos.comms.codec import EncodeError
from phobos.comms.endpoint import ReliableEndpoint
from phobos.comms.journal import Journal
from phobos.comms.message import BROADCAST, Message
from phobos.comms.relay import Relay, RelayConfig
from phobos.comms.reliable import ACK, HEARTBEAT, STATS, ReliableConfig, RetryPolicy
from phobos.comms.transport import InProcessHub, Transport, TransportError

CONFIG = ReliableConfig(
    retry=RetryPolicy(initial=0.1, max_interval=0.4, window=8),
    heartbeat_interval=0.1,
    lost_after=3,
    dedup_capacity=64,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Chaos(Transport):
    """Drops, duplicates and delays what it sends (a delayed copy goes within 5 calls)."""

    def __init__(self, inner: Transport, rng: random.Random, drop=0.0, dup=0.0, delay=0.0):
        self.inner, self.name, self.rejected = inner, inner.name, 0
        self.rng, self.drop, self.dup, self.delay = rng, drop, dup, delay
        self.late: list[list] = []

    def send(self, message, to=None):
        self._tick()
        if self.rng.random() < self.drop:
            return
        for _ in range(2 if self.rng.random() < self.dup else 1):
            if self.rng.random() < self.delay:
                self.late.append([self.rng.randint(1, 5), message, to])
            else:
                self.inner.send(message, to=to)

    def recv(self, timeout):
        self._tick()
        return self.inner.recv(timeout)

    def close(self):
        self.inner.close()

    def _tick(self):
        due = [item for item in self.late if item[0] <= 1]
        self.late = [[n - 1, m, t] for n, m, t in self.late if n > 1]
        for _, message, to in due:
            try:
                self.inner.send(message, to=to)
            except TransportError:
                pass  # its receiver is gone: lost like any other


class Bus:
    """A relay and agents on one hub; ``run`` steps them all on the fake clock."""

    def __init__(self, tmp_path, rng=None, chaos=(0.0, 0.0, 0.0), **relay_options):
        self.hub = InProcessHub(codec=True)
        self.clock = Clock()
        self.rng = rng or random.Random(0)
        self.chaos = chaos
        self.journal_path = tmp_path / "relay.db"
        self.relay_config = RelayConfig(reliable=CONFIG, **relay_options)
        self.relay = self.start_relay()
        self.agents: dict[str, ReliableEndpoint] = {}
        self.got: dict[str, list[Message]] = {}

    def wrap(self, transport):
        return Chaos(transport, self.rng, *self.chaos) if any(self.chaos) else transport

    def start_relay(self) -> Relay:
        transport = self.wrap(self.hub.endpoint("relay"))
        return Relay(transport, Journal(self.journal_path), self.relay_config, clock=self.clock)

    def crash_relay(self) -> None:
        self.relay.close()  # its queue is gone; the journal holds what it committed
        self.relay = None

    def agent(self, name: str, **options) -> ReliableEndpoint:
        transport = self.wrap(self.hub.endpoint(name, via="relay"))
        options.setdefault("first_seq", 0)
        endpoint = ReliableEndpoint(transport, CONFIG, clock=self.clock, **options)
        self.agents[name] = endpoint
        self.got.setdefault(name, [])
        return endpoint

    def run(self, until=None, seconds: float = 60.0, quiet=(), step: float = 0.01) -> None:
        """Step everything (agents in ``quiet`` stay silent) until ``until()`` holds, or for
        ``seconds`` of simulated time if ``until`` is None."""
        for _ in range(round(seconds / step)):
            if self.relay is not None:
                self.relay.step(0.0)
            for name, endpoint in self.agents.items():
                if name in quiet:
                    continue
                while (message := endpoint.recv(0.0)) is not None:
                    self.got[name].append(message)
            if until is not None and until():
                return
            self.clock.now += step
        if until is None:
            return
        raise AssertionError(f"not done after {seconds} simulated seconds: {self.relay.counters()}")

    def payloads(self, name: str) -> list:
        return [m.payload for m in self.got[name]]


@pytest.fixture
def bus(tmp_path):
    bus = Bus(tmp_path)
    yield bus
    if bus.relay is not None:
        bus.relay.close()


def test_messages_flow_in_order_and_custody_ends_with_the_receiver(bus):
    a, b = bus.agent("a"), bus.agent("b")
    for i in range(20):
        a.send("b", "intent", {"i": i, "power": np.arange(3.0) * i})
    bus.run(lambda: len(bus.got["b"]) == 20 and a.unacked == 0 and bus.relay.stats.held == 0)
    assert [m.payload["i"] for m in bus.got["b"]] == list(range(20))
    assert np.array_equal(bus.got["b"][5].payload["power"], np.arange(3.0) * 5)
    stats = bus.relay.counters()
    assert stats["accepted"] == stats["sent"] == stats["acked"] == 20
    assert stats["held"] == 0 and stats["rejected"] == 0
    assert bus.relay.journal.held() == 0
    assert a.stats.sent == a.stats.acked == 20 and b.stats.accepted == 20


def test_broadcast_reaches_every_known_peer_and_waits_for_expected_ones(tmp_path):
    bus = Bus(tmp_path, peers=("later",))
    a = bus.agent("a")
    bus.agent("b"), bus.agent("c")
    bus.run(lambda: bus.relay.alive_peers() == ["a", "b", "c"])
    a.send(BROADCAST, "intent", "hello all")
    # Every copy acknowledged but the one for "later", which has not connected yet.
    bus.run(lambda: bus.got["b"] and bus.got["c"] and bus.relay.stats.held == 1)
    assert a.unacked == 0 and bus.relay.journal.held() == 1
    bus.agent("later")
    bus.run(lambda: bus.got["later"] and bus.relay.stats.held == 0)
    for name in ("b", "c", "later"):
        assert bus.payloads(name) == ["hello all"]
    assert bus.got["a"] == []
    bus.relay.close()


def test_full_receiver_refuses_until_it_catches_up(tmp_path):
    bus = Bus(tmp_path, max_held=3)
    a = bus.agent("a")
    for i in range(5):
        a.send("b", "intent", i)
    bus.run(lambda: bus.relay.stats.refused >= 2 and bus.relay.stats.held == 3)
    assert a.unacked == 2  # refused means not acknowledged: a keeps them and retries
    bus.agent("b")
    bus.run(lambda: len(bus.got["b"]) == 5 and a.unacked == 0)
    assert bus.payloads("b") == [0, 1, 2, 3, 4]
    bus.relay.close()


def test_broadcast_skips_a_full_receiver_and_reaches_the_others(tmp_path):
    bus = Bus(tmp_path, max_held=3, peers=("dead",))
    a = bus.agent("a")
    bus.agent("b")
    bus.run(lambda: bus.relay.alive_peers() == ["a", "b"])
    for i in range(5):
        a.send(BROADCAST, "intent", i)
        bus.run(lambda i=i: len(bus.got["b"]) == i + 1 and a.unacked == 0)
    assert bus.payloads("b") == [0, 1, 2, 3, 4]
    bus.run(lambda: bus.relay.journal.held() == 3)  # what "dead" holds; b acknowledged all
    assert bus.relay.stats.refused == 2
    bus.relay.close()


def test_silent_peer_is_lost_held_for_and_served_exactly_once_on_return(bus):
    a = bus.agent("a")
    bus.agent("b")
    a.send("b", "intent", 0)
    bus.run(lambda: bus.payloads("b") == [0])
    bus.run(lambda: "b" not in bus.relay.alive_peers(), quiet=("b",))
    assert bus.relay.stats.peers_lost == 1
    sent_before = bus.relay.stats.sent
    for i in range(1, 30):
        a.send("b", "intent", i)
    bus.run(lambda: a.unacked == 0, quiet=("b",))
    bus.run(seconds=2.0, quiet=("b",))
    assert bus.relay.stats.sent == sent_before  # nothing goes to a lost peer
    assert bus.relay.stats.held == 29 and bus.relay.journal.held() == 29
    bus.run(lambda: len(bus.got["b"]) == 30 and bus.relay.stats.held == 0)
    assert bus.payloads("b") == list(range(30))
    assert bus.relay.stats.peers_rejoined == 1 and "b" in bus.relay.alive_peers()


def test_endpoint_pauses_while_the_relay_is_lost_and_resends_when_it_returns(bus):
    a, b = bus.agent("a"), bus.agent("b")
    bus.run(lambda: a.relay_alive and bus.relay.alive_peers() == ["a", "b"])
    bus.crash_relay()
    a.send("b", "intent", "while away")
    bus.run(lambda: not a.relay_alive and not b.relay_alive)
    assert a.stats.peers_lost == 1 and a.unacked == 1
    bus.relay = bus.start_relay()
    bus.run(lambda: bus.payloads("b") == ["while away"] and a.unacked == 0)
    assert a.relay_alive and a.stats.peers_rejoined == 1


def test_restarted_receiver_drops_what_its_record_says_it_processed(bus):
    a, b = bus.agent("a"), bus.agent("b")
    for i in range(3):
        a.send("b", "intent", i)
    bus.run(lambda: bus.relay.stats.sent == 3, quiet=("b",))
    # b processes all three, which acknowledges the first two (each recv acknowledges what
    # the previous one returned), then dies before acknowledging the third.
    record = [(m.sender, m.seq) for m in (b.recv(0.0), b.recv(0.0), b.recv(0.0))]
    b.transport.close()
    del bus.agents["b"]
    b2 = bus.agent("b", delivered=record)
    bus.run(lambda: bus.relay.stats.held == 0)
    assert bus.got["b"] == [] and b2.stats.duplicates == 1
    assert bus.relay.stats.peers_rejoined == 1  # noticed by b2's new incarnation


def test_best_effort_kinds_are_forwarded_once_and_never_journaled(tmp_path):
    bus = Bus(tmp_path)
    config = ReliableConfig(reliable_kinds=("intent",), heartbeat_interval=0.1, lost_after=3)
    bus.relay_config = RelayConfig(reliable=config)
    bus.relay.close()
    bus.relay = bus.start_relay()
    a, b = bus.agent("a"), bus.agent("b")
    bus.run(lambda: bus.relay.alive_peers() == ["a", "b"])
    a.config = b.config = config
    a.send("b", "telemetry", 1.5)
    bus.run(lambda: bus.payloads("b") == [1.5])
    assert a.unacked == 0 and bus.relay.stats.accepted == 0 and bus.relay.journal.held() == 0
    bus.relay.close()


def test_protocol_violations_are_counted_and_do_not_make_a_peer(bus):
    bus.agent("b")
    raw = bus.hub.endpoint("mallory", via="relay")
    bad = [
        Message("mallory", "relay", ACK, 0.0, 0, "not a list"),
        Message("mallory", "relay", ACK, 0.0, 0, [["b", "1"]]),
        Message("mallory", "relay", HEARTBEAT, 0.0, 0, {"incarnation": "x"}),
        Message("mallory", "relay", "comms.bogus", 0.0, 0),
        Message("mallory", "relay", "intent", 0.0, 0),  # the relay is not an agent
    ]
    for message in bad:
        raw.send(message)
    bus.run(lambda: bus.relay.stats.rejected == len(bad))
    assert "mallory" not in bus.relay.alive_peers()
    raw.send(Message("mallory", "b", "intent", 0.0, 2**64 - 1))  # beyond SQLite's integers
    bus.run(lambda: bus.relay.stats.rejected == len(bad) + 1)
    assert bus.relay.journal.held() == 0


def test_status_request_answers_with_counters_and_live_peers(bus):
    bus.agent("a")
    probe = bus.hub.endpoint("probe", via="relay")
    bus.run(lambda: bus.relay.alive_peers() == ["a"])
    probe.send(Message("probe", "relay", STATS, 0.0, 7))
    bus.relay.step(0.0)
    reply = probe.recv(0.0)
    assert reply.kind == STATS and reply.seq == 7
    assert reply.payload["alive"] == ["a"] and reply.payload["rejected"] == 0
    assert "probe" not in bus.relay.alive_peers()


def test_endpoint_refuses_protocol_kinds_and_unencodable_payloads(bus):
    a = bus.agent("a")
    with pytest.raises(ValueError, match="reserved"):
        a.send("b", ACK)
    with pytest.raises(EncodeError):
        a.send("b", "intent", {1, 2})
    assert a.unacked == 0


def test_relay_config_refuses_nonsense():
    with pytest.raises(ValueError):
        RelayConfig(max_held=0)
    with pytest.raises(ValueError):
        RelayConfig(name=BROADCAST)
    with pytest.raises(ValueError):
        RelayConfig(peers=("relay",))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    drop=st.sampled_from([0.0, 0.1, 0.3]),
    dup=st.sampled_from([0.0, 0.2]),
    delay=st.sampled_from([0.0, 0.2]),
    crash_after=st.one_of(st.none(), st.integers(1, 40)),
)
def test_lossy_duplicating_reordering_links_and_relay_crashes_deliver_exactly_once(
    tmp_path_factory, seed, drop, dup, delay, crash_after
):
    bus = Bus(tmp_path_factory.mktemp("chaos"), random.Random(seed), (drop, dup, delay))
    a = bus.agent("a")
    bus.agent("b"), bus.agent("c")
    bus.run(lambda: bus.relay.alive_peers() == ["a", "b", "c"])
    expected = {"b": [], "c": []}
    accepted_before_crash = 0
    for i in range(40):
        receiver = ("b", "c", BROADCAST)[i % 3]
        a.send(receiver, "intent", i)
        for name in expected:
            if receiver in (name, BROADCAST):
                expected[name].append(i)
        bus.run(seconds=0.03)
        if i == crash_after:
            accepted_before_crash = bus.relay.stats.accepted
            bus.crash_relay()
            bus.run(lambda: not a.relay_alive, seconds=5.0)
            bus.relay = bus.start_relay()
    try:
        bus.run(
            lambda: (
                a.unacked == 0
                and bus.relay.journal.held() == 0
                and all(len(bus.got[n]) >= len(expected[n]) for n in expected)
            ),
            seconds=120.0,
        )
        # Late duplicates still in the links must change nothing.
        bus.run(seconds=1.0)
        for name, payloads in expected.items():
            assert sorted(bus.payloads(name)) == payloads
        # The restarted relay knew every message its predecessor took (the window is
        # journaled), so it took custody of each message once in all.
        assert accepted_before_crash + bus.relay.stats.accepted == 40
    finally:
        bus.relay.close()
