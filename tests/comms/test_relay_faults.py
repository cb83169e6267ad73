"""Faults with real processes: kill -9 a receiver or the relay, freeze a peer; nothing is lost.

Each test runs ``python -m phobos.comms.relay`` and agent processes
(``python -m tests.comms.relay_agents``) over ``ipc://`` in a temporary folder. A receiver
logs every message before acknowledging it and restores its duplicate window from that log
when restarted, so "exactly once" is checked on the log: every payload sent, once.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.comms.relay_agents import read_log
from tests.comms.relay_harness import Probe, Processes, eventually

pytestmark = [pytest.mark.network, pytest.mark.timeout(120)]


@pytest.fixture
def procs(tmp_path):
    processes = Processes(tmp_path)
    yield processes
    processes.cleanup()


@pytest.fixture
def address(short_dir) -> str:
    return f"ipc://{short_dir}/relay.sock"


@pytest.fixture
def probe(context, address):
    probe = Probe(context, address)
    yield probe
    probe.close()


def assert_exactly_once(log: Path, payloads: range, procs: Processes) -> None:
    entries = read_log(str(log))
    counts = Counter(payload for _, _, payload in entries)
    duplicated = sorted(p for p, n in counts.items() if n > 1)
    missing = sorted(set(payloads) - set(counts))
    assert not duplicated and not missing and len(entries) == len(payloads), (
        f"duplicated {duplicated[:20]}, missing {missing[:20]}, {len(entries)} lines\n"
        + procs.logs()
    )
    assert len({(sender, seq) for sender, seq, _ in entries}) == len(entries)


def lines(log: Path) -> int:
    return len(read_log(str(log)))


def test_receiver_killed_and_restarted_mid_stream_gets_every_message_once(
    procs, probe, address, tmp_path
):
    count = 300
    log = tmp_path / "b.log"
    relay = procs.relay(address, tmp_path / "relay.db")
    probe.wait(lambda s: True, what="the relay to answer")
    receiver = procs.agent("recv", "b", address, f"--log={log}")
    sender = procs.agent("send", "a", address, "--to=b", f"--count={count}")
    eventually(lambda: lines(log) >= 60, what="b to receive 60 messages")
    Processes.kill(receiver)
    assert lines(log) < count, "the receiver should die mid-stream"
    receiver = procs.agent("recv", "b", address, f"--log={log}")
    assert sender.wait(60) == 0, procs.logs()
    eventually(lambda: lines(log) >= count, what=f"b to log {count} messages")
    stats = probe.wait(lambda s: s["held"] == 0, what="every copy acknowledged by b")
    assert stats["accepted"] == count and stats["peers_rejoined"] >= 1, stats
    assert Processes.terminate(receiver) == 0
    assert Processes.terminate(relay) == 0, procs.logs()
    assert_exactly_once(log, range(count), procs)


def test_relay_killed_and_restarted_delivers_what_it_had_acknowledged_once(
    procs, probe, address, tmp_path
):
    journal = tmp_path / "relay.db"
    log = tmp_path / "b.log"
    first, second = 100, 300
    relay = procs.relay(address, journal)
    # Phase 1: the receiver is away. The sender exits once the relay has acknowledged
    # everything, so after the kill the journal is the only place the messages are.
    sender = procs.agent("send", "a", address, "--to=b", f"--count={first}", "--pace=0.001")
    assert sender.wait(60) == 0, procs.logs()
    probe.wait(lambda s: s["held"] == first, what="the relay to hold phase 1")
    Processes.kill(relay)
    relay = procs.relay(address, journal)
    stats = probe.wait(lambda s: True, what="the restarted relay")
    assert stats["held"] == first and stats["accepted"] == 0, stats
    receiver = procs.agent("recv", "b", address, f"--log={log}")
    eventually(lambda: lines(log) >= first, what="b to get phase 1 from the journal")
    # Phase 2: kill the relay mid-stream while a new sender process (same name) is sending.
    sender = procs.agent("send", "a", address, "--to=b", f"--count={second}", f"--first={first}")
    eventually(lambda: lines(log) >= first + 60, what="phase 2 to flow")
    Processes.kill(relay)
    assert lines(log) < first + second, "the relay should die mid-stream"
    relay = procs.relay(address, journal)
    assert sender.wait(60) == 0, procs.logs()
    eventually(lambda: lines(log) >= first + second, what="b to log everything")
    probe.wait(lambda s: s["held"] == 0, what="every copy acknowledged by b")
    assert Processes.terminate(receiver) == 0
    assert Processes.terminate(relay) == 0, procs.logs()
    assert_exactly_once(log, range(first + second), procs)


def test_silent_peer_is_lost_its_messages_held_and_all_delivered_once_on_return(
    procs, probe, address, tmp_path
):
    count = 200
    log = tmp_path / "b.log"
    relay = procs.relay(address, tmp_path / "relay.db")
    receiver = procs.agent("recv", "b", address, f"--log={log}")
    sender = procs.agent("send", "a", address, "--to=b", f"--count={count}")
    eventually(lambda: lines(log) >= 40, what="b to receive 40 messages")
    os.kill(receiver.pid, signal.SIGSTOP)  # frozen: connected, but silent
    probe.wait(lambda s: "b" not in s["alive"], what="b to be marked lost")
    assert sender.wait(60) == 0, procs.logs()
    held = probe.wait(lambda s: s["accepted"] == count, what="the relay to accept everything")
    frozen_at = lines(log)
    # b acknowledges only what it logged, and logs nothing while frozen.
    assert frozen_at < count and held["held"] >= count - frozen_at, (held, frozen_at)
    assert "b" not in held["alive"] and held["peers_lost"] >= 1, held
    rejoined = held["peers_rejoined"]
    os.kill(receiver.pid, signal.SIGCONT)
    eventually(lambda: lines(log) >= count, what="b to log everything after it returns")
    stats = probe.wait(lambda s: s["held"] == 0, what="every copy acknowledged by b")
    assert stats["peers_rejoined"] > rejoined, stats
    assert Processes.terminate(receiver) == 0
    assert Processes.terminate(relay) == 0, procs.logs()
    assert_exactly_once(log, range(count), procs)


def kill_mid_stream(procs, probe, address, tmp_path, count: int, window: int, kills: int):
    """``count`` messages a -> b with flight window ``window``, the relay killed ``kills``
    times while they flow; every payload must be logged by b exactly once."""
    journal, log = tmp_path / "relay.db", tmp_path / "b.log"
    setting = f"reliable.retry.window={window}"
    relay = procs.relay(address, journal, setting)
    receiver = procs.agent("recv", "b", address, f"--log={log}", f"--window={window}")
    sender = procs.agent(
        "send",
        "a",
        address,
        "--to=b",
        f"--count={count}",
        "--pace=0",
        f"--window={window}",
        "--deadline=240",
    )
    for kill in range(kills):
        eventually(
            lambda k=kill: lines(log) >= count * (k + 1) // (kills + 1),
            timeout=120.0,
            what=f"the stream to reach kill {kill + 1}",
        )
        Processes.kill(relay)
        relay = procs.relay(address, journal, setting)
    assert sender.wait(240) == 0, procs.logs()
    eventually(lambda: lines(log) >= count, timeout=120.0, what="b to log everything")
    probe.wait(lambda s: s["held"] == 0, what="every copy acknowledged by b")
    assert Processes.terminate(receiver) == 0
    assert Processes.terminate(relay) == 0, procs.logs()
    assert_exactly_once(log, range(count), procs)


def test_relay_killed_mid_stream_with_a_wide_window_loses_and_repeats_nothing(
    procs, probe, address, tmp_path
):
    kill_mid_stream(procs, probe, address, tmp_path, count=2000, window=128, kills=1)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("window", [1, 8, 32, 128, 256])  # 256: the widest 1024 accepts
def test_relay_kill_9_under_20000_messages_for_every_window(
    procs, probe, address, tmp_path, window
):
    kill_mid_stream(procs, probe, address, tmp_path, count=20_000, window=window, kills=2)
