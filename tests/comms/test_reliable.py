"""The protocol pieces on their own: duplicate window, retransmission schedule, acks, liveness."""

from __future__ import annotations

import logging
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phobos.comms.liveness import Change, Liveness
from phobos.comms.message import Message
from phobos.comms.reliable import (
    ACK,
    MAX_ACK_IDS,
    DedupWindow,
    ReliableConfig,
    ReliableStats,
    RetransmitQueue,
    RetryPolicy,
    ack_keys,
    ack_message,
    heartbeat,
    incarnation_of,
)

# --- duplicate window ---------------------------------------------------------------------


def test_window_says_new_once_then_duplicate():
    window = DedupWindow(capacity=8)
    assert window.add("a", 5)
    assert not window.add("a", 5)
    assert window.add("b", 5)  # per sender
    assert ("a", 5) in window and ("a", 6) not in window


def test_window_floor_climbs_over_contiguous_seqs_and_forgets_them():
    window = DedupWindow(capacity=8)
    window.restore("a", 9, [])
    for seq in (11, 12, 10):
        assert window.add("a", seq)
    assert window.state("a") == (12, [])
    assert not window.add("a", 3)


def test_window_memory_stays_bounded_with_gaps():
    # A receiver sees only some of a sender's seqs (it writes to others too).
    window = DedupWindow(capacity=64)
    for seq in range(0, 100_000, 3):
        assert window.add("a", seq)
    floor, seen = window.state("a")
    assert len(seen) <= 64 and floor is not None
    assert not window.add("a", 99_999)  # a seq beyond the ones held: still recognised


def test_window_mistakes_only_messages_later_than_its_documented_bound():
    window = DedupWindow(capacity=8)
    for seq in range(1, 9):
        window.add("a", seq)  # 8 seqs, seq 0 late: within capacity, still new
    assert window.add("a", 0)
    late = DedupWindow(capacity=8)
    for seq in range(1, 10):  # 9 higher seqs exceed capacity: the floor jumps over 0
        late.add("a", seq)
    assert ("a", 0) in late


def test_window_state_round_trips():
    window = DedupWindow(capacity=16)
    for seq in (3, 7, 8, 20):
        window.add("a", seq)
    window.restore("b", 4, [6, 9])
    copy = DedupWindow(capacity=16)
    for sender in window.senders():
        copy.restore(sender, *window.state(sender))
    for sender in ("a", "b"):
        assert copy.state(sender) == window.state(sender)
    assert copy.state("b") == (4, [6, 9])
    assert not copy.add("b", 2) and copy.add("b", 5)
    assert copy.state("b") == (6, [9])


def test_window_rejects_a_useless_capacity():
    with pytest.raises(ValueError, match="capacity"):
        DedupWindow(capacity=1)


@st.composite
def deliveries(draw):
    """Ids of two senders, each sender's seqs with gaps, reordered by at most ``shift``
    places and with duplicates anywhere after the first copy."""
    capacity = draw(st.sampled_from([8, 32, 128]))
    shift = capacity // 2  # the window's documented bound
    rng = random.Random(draw(st.integers(0, 2**32)))
    ids = []
    for sender in ("a", "b"):
        seq = draw(st.integers(-5, 2**40))
        for _ in range(draw(st.integers(0, 150))):
            seq += draw(st.sampled_from([1, 1, 1, 2, 7]))
            ids.append((sender, seq))
    # Reorder each sender's stream by at most `shift` of its own places.
    order = {s: sorted(i for i in ids if i[0] == s) for s in ("a", "b")}
    keyed = []
    for stream in order.values():
        for place, key in enumerate(stream):
            keyed.append((place + rng.uniform(0, shift - 1), rng.random(), key))
    arrivals = [key for *_, key in sorted(keyed)]
    for _ in range(draw(st.integers(0, 100))):
        if arrivals:
            first = rng.randrange(len(arrivals))
            arrivals.insert(rng.randrange(first + 1, len(arrivals) + 1), arrivals[first])
    return capacity, ids, arrivals


@settings(max_examples=150, deadline=None)
@given(case=deliveries())
def test_any_interleaving_of_duplicates_and_reorders_yields_each_id_once(case):
    capacity, ids, arrivals = case
    window = DedupWindow(capacity)
    delivered = [key for key in arrivals if window.add(*key)]
    assert sorted(delivered) == sorted(ids)
    assert all(len(window.state(s)[1]) <= capacity for s in window.senders())


# --- retransmission -----------------------------------------------------------------------


def msg(seq: int, sender: str = "a") -> Message:
    return Message(sender, "b", "data", 0.0, seq, seq)


def seqs(sends) -> list[tuple[int, int]]:
    return [(send.message.seq, send.attempt) for send in sends]


def test_schedule_backs_off_exponentially_up_to_its_cap():
    # Binary fractions keep the arithmetic exact.
    policy = RetryPolicy(initial=0.25, factor=2.0, max_interval=1.0)
    assert [policy.delay(level) for level in range(5)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    queue = RetransmitQueue(policy)
    queue.push(msg(0))
    times = []
    now = 0.0
    while len(times) < 6:
        sends, _ = queue.due(now)
        if sends:
            times.append(now)
        now += 0.125
    assert times == [0.0, 0.25, 0.75, 1.75, 2.75, 3.75]


def test_ack_stops_the_resends():
    queue = RetransmitQueue(RetryPolicy(initial=0.1))
    queue.push(msg(0))
    queue.push(msg(1))
    assert seqs(queue.due(0.0)[0]) == [(0, 1), (1, 1)]
    assert queue.ack(("a", 0)) and not queue.ack(("a", 0)) and not queue.ack(("z", 0))
    assert seqs(queue.due(0.1)[0]) == [(1, 2)]
    assert len(queue) == 1 and ("a", 1) in queue


def test_window_limits_messages_in_flight_and_slides_in_order():
    queue = RetransmitQueue(RetryPolicy(initial=1.0, window=3))
    for seq in range(6):
        queue.push(msg(seq))
    assert seqs(queue.due(0.0)[0]) == [(0, 1), (1, 1), (2, 1)]
    assert queue.in_flight() == 3 and queue.due(0.5) == ([], [])
    queue.ack(("a", 1))  # not the oldest: the window is the 3 oldest unacknowledged
    assert seqs(queue.due(0.5)[0]) == [(3, 1)]
    queue.ack(("a", 0))
    assert seqs(queue.due(0.6)[0]) == [(4, 1)]
    assert queue.next_due() == pytest.approx(1.0)


def test_duplicate_push_is_ignored():
    queue = RetransmitQueue(RetryPolicy())
    assert queue.push(msg(0)) and not queue.push(msg(0))
    assert queue.messages() == [msg(0)]


def test_gives_up_after_max_attempts():
    queue = RetransmitQueue(RetryPolicy(initial=0.1, max_interval=0.1, max_attempts=2))
    queue.push(msg(0))
    assert seqs(queue.due(0.0)[0]) == [(0, 1)]
    assert seqs(queue.due(0.1)[0]) == [(0, 2)]
    sends, expired = queue.due(0.2)
    assert sends == [] and expired == [msg(0)] and len(queue) == 0


def test_reset_resends_what_is_in_flight_now_with_fresh_back_off():
    queue = RetransmitQueue(RetryPolicy(initial=0.125, max_interval=10.0, window=2))
    for seq in range(3):
        queue.push(msg(seq))
    for now in (0.0, 0.125, 0.375, 0.875):
        assert len(queue.due(now)[0]) == 2  # back-off has grown to 1 s
    assert queue.next_due() == 1.875
    queue.reset(1.0)
    assert seqs(queue.due(1.0)[0]) == [(0, 5), (1, 5)]
    assert queue.next_due() == 1.125


@settings(max_examples=60, deadline=None)
@given(
    initial=st.floats(0.01, 1.0),
    factor=st.floats(1.0, 4.0),
    cap=st.floats(1.0, 5.0),
    steps=st.lists(st.floats(0.001, 0.7), min_size=1, max_size=200),
)
def test_resend_gaps_never_shrink_and_never_exceed_the_cap(initial, factor, cap, steps):
    queue = RetransmitQueue(RetryPolicy(initial=initial, factor=factor, max_interval=cap))
    queue.push(msg(0))
    now, sent_at = 0.0, []
    for step in steps:
        if queue.due(now)[0]:
            sent_at.append(now)
        now += step
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:], strict=False)]
    biggest_step = max(steps)
    for gap, level in zip(gaps, range(len(gaps)), strict=False):
        wanted = min(initial * factor**level, cap)
        assert wanted - 1e-9 <= gap < wanted + biggest_step + 1e-9


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0},
        {"initial": 3.0, "max_interval": 2.0},
        {"factor": 0.5},
        {"max_attempts": 0},
        {"window": 0},
    ],
)
def test_retry_policy_refuses_nonsense(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_reliable_config_checks_and_kinds():
    with pytest.raises(ValueError, match="dedup_capacity"):
        ReliableConfig(dedup_capacity=10)
    with pytest.raises(ValueError):
        ReliableConfig(heartbeat_interval=0)
    assert ReliableConfig().is_reliable("intent") and not ReliableConfig().is_reliable(ACK)
    only = ReliableConfig(reliable_kinds=("intent",))
    assert only.is_reliable("intent") and not only.is_reliable("telemetry")


# --- control messages ---------------------------------------------------------------------


def test_ack_round_trip_and_validation():
    ack = ack_message("relay", "a", [("a", 1), ("b", 2)])
    assert ack.kind == ACK and ack_keys(ack) == [("a", 1), ("b", 2)]
    for payload in (
        "x",
        [["a"]],
        [["a", "1"]],
        [[1, 1]],
        [("a", 1)],
        [["a", 1]] * (MAX_ACK_IDS + 1),
    ):
        with pytest.raises(ValueError):
            ack_keys(Message("relay", "a", ACK, 0.0, 0, payload))


def test_heartbeat_carries_the_incarnation():
    assert incarnation_of(heartbeat("a", "relay", 42)) == 42
    for payload in (None, {}, {"incarnation": "1"}, [1]):
        with pytest.raises(ValueError):
            incarnation_of(Message("a", "relay", "comms.heartbeat", 0.0, 0, payload))


# --- liveness -----------------------------------------------------------------------------


def test_liveness_lost_after_silence_and_back_on_the_next_sign_of_life(caplog):
    caplog.set_level(logging.INFO, logger="phobos.comms.liveness")
    stats = ReliableStats()
    live = Liveness("relay", interval=0.1, lost_after=3, stats=stats)
    assert live.heard("a", 0.0, incarnation=1) is Change.JOINED
    assert live.next_check() == pytest.approx(0.3)
    assert live.check(0.29) == [] and live.alive("a")
    assert live.check(0.31) == ["a"] and not live.alive("a")
    assert live.check(1.0) == []  # lost once, counted once
    assert live.heard("a", 1.0) is Change.REJOINED and live.alive("a")
    assert live.heard("a", 1.1, incarnation=2) is None  # its return was counted already
    assert live.heard("a", 1.2, incarnation=3) is Change.RESTARTED
    assert (stats.peers_lost, stats.peers_rejoined) == (1, 2)
    assert "peer a lost" in caplog.text and "peer a rejoined" in caplog.text


def test_liveness_remembered_peers_start_lost_and_expected_ones_alive():
    live = Liveness("x", interval=1.0, lost_after=2, stats=ReliableStats())
    live.remember("old")
    live.expect("relay", 5.0)
    assert not live.alive("old") and live.alive("relay")
    assert live.heard("old", 6.0) is Change.REJOINED
    assert sorted(live.known()) == ["old", "relay"]
    assert live.check(7.0) == ["relay"]


def test_liveness_lost_when_told_keeps_the_incarnation_to_tell_a_restart_from_a_rejoin(caplog):
    caplog.set_level(logging.INFO, logger="phobos.comms.liveness")
    live = Liveness("world", log_changes=False)  # loses peers only when told: no clock
    assert not live.lose("a")  # never heard from: nothing to lose
    assert live.heard("a", 0.0, incarnation=1) is Change.JOINED
    assert live.next_check() == float("inf") and live.check(1e9) == []
    assert live.lose("a") and not live.alive("a")
    assert not live.lose("a")  # lost once, counted once
    assert live.heard("a", 1.0, incarnation=1) is Change.REJOINED  # the same process, back
    assert live.heard("a", 2.0, incarnation=1) is None
    assert live.lose("a")
    assert live.heard("a", 3.0, incarnation=2) is Change.RESTARTED  # a new process
    assert live.heard("a", 4.0, incarnation=3) is Change.RESTARTED  # faster than a loss
    assert (live.stats.peers_lost, live.stats.peers_rejoined) == (2, 3)
    assert "peer a" not in caplog.text  # the owner logs its own lines
