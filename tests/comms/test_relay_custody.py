"""Custody that is true: the relay acknowledges only what it journaled, dedups by message id.

In one process on a fake clock (the relay, a raw sender endpoint, the journal on disk), and
the relay's command line as a real process for its refusals.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from phobos.comms.journal import Journal
from phobos.comms.message import Message
from phobos.comms.relay import Relay, RelayConfig
from phobos.comms.reliable import ACK, ReliableConfig, RetryPolicy, ack_keys, heartbeat
from phobos.comms.transport import InProcessHub

REPO = Path(__file__).resolve().parents[2]
RELIABLE = ReliableConfig(retry=RetryPolicy(initial=0.1, window=8), dedup_capacity=32)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self, tmp_path: Path, **options) -> None:
        self.hub = InProcessHub(codec=True)
        self.clock = Clock()
        self.path = tmp_path / "relay.db"
        self.options = options
        self.config = RelayConfig(reliable=RELIABLE, peers=("a", "b"), **options)
        self.relay = self.start()
        self.a = self.hub.endpoint("a", via="relay")
        self.b = self.hub.endpoint("b", via="relay")
        self.acked: set = set()

    def start(self, receivers=("a", "b")) -> Relay:
        return Relay(
            self.hub.endpoint("relay"),
            Journal(self.path, "NORMAL"),
            self.config,
            clock=self.clock,
            wall_clock=self.clock,
            receivers=receivers,
        )

    def restart(self) -> None:
        self.relay.close()
        self.hub = InProcessHub(codec=True)
        self.relay = self.start()
        self.a = self.hub.endpoint("a", via="relay")
        self.b = self.hub.endpoint("b", via="relay")

    def send(self, seq: int, to: str = "b") -> None:
        self.a.send(Message("a", to, "data", 0.0, seq, seq))
        for _ in range(3):
            self.relay.step(0.0)
        while (message := self.a.recv(0.0)) is not None:
            if message.kind == ACK:
                self.acked.update(ack_keys(message))


def test_a_message_far_behind_its_senders_later_ones_is_taken_not_dropped(tmp_path) -> None:
    # The sender retries seq 3 while 200 later ones go through: a sliding window of 32 would
    # have moved its floor past 3 and acknowledged the retry as a duplicate, journaling nothing.
    setup = Setup(tmp_path)
    for seq in (*range(3), *range(4, 204)):
        setup.send(seq)
    setup.send(3)
    assert ("a", 3) in setup.acked
    assert setup.relay.journal.held() == 204  # acknowledged means journaled: every one
    assert setup.relay.stats.duplicates == 0
    setup.send(3)  # a real retransmission (its acknowledgement lost) is a duplicate
    assert setup.relay.stats.duplicates == 1 and setup.relay.journal.held() == 204


def test_a_delivered_id_is_remembered_across_a_restart_then_forgotten(tmp_path) -> None:
    setup = Setup(tmp_path, done_lifetime=100.0)
    setup.send(7)
    setup.b.send(heartbeat("b", "relay", 1))
    setup.relay.step(0.0)
    (copy,) = [m for m in iter(lambda: setup.b.recv(0.0), None) if m.kind == "data"]
    setup.b.send(Message("b", "relay", ACK, 0.0, 0, [["a", 7]]))
    setup.relay.step(0.0)
    assert setup.relay.journal.held() == 0 and copy.seq == 7
    setup.restart()  # as after a kill: what the journal holds is all there is
    setup.send(7)  # the sender never heard the acknowledgement and tries again
    assert setup.relay.stats.duplicates == 1 and setup.relay.journal.held() == 0
    setup.clock.now += 200.0  # past done_lifetime: the id is forgotten
    setup.relay.step(0.0)
    setup.send(7)
    assert setup.relay.journal.held() == 1


def test_unknown_receivers_and_a_full_journal_are_counted_refusals(tmp_path) -> None:
    setup = Setup(tmp_path, max_total=5)
    setup.send(0, to="mallory")  # not on the allow-list
    assert setup.relay.stats.rejected == 1 and setup.relay.journal.held() == 0
    for seq in range(1, 9):
        setup.send(seq)
    assert setup.relay.journal.held() == 5
    assert setup.relay.stats.refused == 3
    assert {("a", seq) for seq in range(6, 9)}.isdisjoint(setup.acked)  # not acknowledged


def relay_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "phobos.comms.relay", "--journal", "/nonexistent/j.db", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--address", "tcp://127.0.0.1:0"], "pass --insecure"),
        (["--address", "tcp://0.0.0.0:0", "--insecure"], "loopback addresses only"),
    ],
)
def test_a_relay_without_keys_refuses_to_start(args, reason) -> None:
    result = relay_cli(*args)
    assert result.returncode == 2 and reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_journal_is_bounded_in_bytes_too(tmp_path) -> None:
    setup = Setup(tmp_path, max_bytes=10_000)
    for seq in range(6):
        setup.a.send(Message("a", "b", "data", 0.0, seq, b"x" * 3000))
        setup.relay.step(0.0)
    assert setup.relay.journal.held() == 3 and setup.relay.stats.refused == 3
    assert 9000 < setup.relay.held_bytes <= 10_000
    setup.restart()
    assert 9000 < setup.relay.held_bytes <= 10_000  # recovered from the journal
