"""Reliable delivery, independent of the socket: acknowledgements, retransmission, duplicates.

The pieces here know nothing of sockets or processes; :class:`~phobos.comms.endpoint.
ReliableEndpoint` (agent side) and :class:`~phobos.comms.relay.Relay` put them over any
:class:`~phobos.comms.transport.Transport`. The protocol is hop by hop custody transfer, as in
delay-tolerant networking:

- The sender keeps every message of a reliable kind in a :class:`RetransmitQueue` and sends it
  again on a :class:`RetryPolicy` schedule (exponential back-off, capped) until the next hop
  acknowledges it with an :data:`ACK` message naming its ``(sender, seq)``.
- The relay acknowledges a message only once it is journaled, and keeps it for its receiver
  until the receiver acknowledges it in turn: end to end, each hop holds the message until
  the next one has taken custody.
- Every hop drops duplicates (retransmissions whose acknowledgement was lost) by
  ``(sender, seq)`` with a :class:`DedupWindow` of bounded memory, and acknowledges them
  again so that the retransmissions stop.

Control messages (kinds starting with :data:`CONTROL_PREFIX`) are never acknowledged; their
``seq`` is 0 and means nothing.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

from phobos.comms.message import Message

CONTROL_PREFIX = "comms."
"""Kinds starting with this belong to the protocol; applications must not use them."""
ACK = "comms.ack"
"""Acknowledgement; payload ``[[sender, seq], ...]`` of the messages taken into custody."""
HEARTBEAT = "comms.heartbeat"
"""Liveness beacon; payload ``{"incarnation": int}`` that changes when the process restarts."""
STATS = "comms.stats"
"""Request for a relay's status; the reply has the same kind and seq, and as payload the
relay's counters (:meth:`ReliableStats.as_dict`) and ``"alive"``, the peers alive now."""

MAX_ACK_IDS = 512
"""Most ids in one acknowledgement, which keeps its frame far below the frame size limit."""

Key = tuple[str, int]
"""A message's ``(sender, seq)``: what acknowledgements and duplicate checks go by."""


def key_of(message: Message) -> Key:
    """The ``(sender, seq)`` of ``message``."""
    return message.sender, message.seq


def initial_seq() -> int:
    """A first sequence number above any a previous run of this endpoint used.

    Microseconds since the epoch: a restarted endpoint carries on above its last run, whose
    numbers receivers still hold as seen, as long as it sent fewer than a million reliable
    messages a second on average and the wall clock did not step back in between.
    """
    return time.time_ns() // 1000


@dataclass(frozen=True)
class RetryPolicy:
    """When a sender resends an unacknowledged message, and how many it keeps in flight."""

    initial: float = 0.2
    """Seconds from the first send to the first retransmission."""
    factor: float = 2.0
    """Each further wait is this many times the previous one..."""
    max_interval: float = 2.0
    """...up to this many seconds, so a returning peer is served within one interval."""
    max_attempts: int | None = None
    """Sends (first one included) before the message is given up; None never gives up."""
    window: int = 32
    """Most messages in flight per next hop: only the oldest ``window`` unacknowledged ones
    are sent, which bounds how far a late message can fall behind later ones."""

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.max_interval:
            raise ValueError(f"need 0 < initial <= max_interval, got {self}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None, got {self.max_attempts}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")

    def delay(self, level: int) -> float:
        """Seconds to wait after the ``level``-th consecutive unanswered send (from 0)."""
        return min(self.initial * self.factor**level, self.max_interval)


@dataclass(frozen=True)
class ReliableConfig:
    """Reliability and liveness settings shared by relays and agent endpoints."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Retransmission schedule and flight window."""
    heartbeat_interval: float = 0.5
    """Seconds between heartbeats each side sends the other."""
    lost_after: int = 4
    """A peer silent for this many heartbeat intervals is marked lost."""
    dedup_capacity: int = 1024
    """Out-of-order ids remembered per sender; at least four flight windows, so that a late
    message is never mistaken for one seen before (see :class:`DedupWindow`)."""
    reliable_kinds: tuple[str, ...] | None = None
    """Kinds acknowledged and retransmitted; None makes every application kind reliable.
    Other kinds go once, best effort, and are not checked for duplicates."""

    def __post_init__(self) -> None:
        if not self.heartbeat_interval > 0:
            raise ValueError(f"heartbeat_interval must be > 0, got {self.heartbeat_interval}")
        if self.lost_after < 1:
            raise ValueError(f"lost_after must be >= 1, got {self.lost_after}")
        if self.dedup_capacity < 4 * self.retry.window:
            raise ValueError(
                f"dedup_capacity {self.dedup_capacity} must be at least 4 x window "
                f"({4 * self.retry.window})"
            )

    def is_reliable(self, kind: str) -> bool:
        """Whether messages of ``kind`` are acknowledged and retransmitted."""
        if kind.startswith(CONTROL_PREFIX):
            return False
        return self.reliable_kinds is None or kind in self.reliable_kinds


@dataclass
class ReliableStats:
    """Counters of one relay or endpoint since it started.

    Attributes:
        sent: Reliable messages (a relay: copies) sent for the first time.
        acked: Of those, acknowledged by the next hop.
        retransmitted: Sends after the first of the same message.
        expired: Messages given up after ``max_attempts`` sends.
        duplicates: Reliable messages received again and dropped.
        accepted: Reliable messages taken into custody (a relay: journaled).
        refused: Copies not taken because the receiver's buffer was full (a message to one
            receiver is not acknowledged, so the sender tries again later; a broadcast
            goes to the receivers that have room).
        held: Messages held now, waiting for acknowledgement (a relay: journaled copies).
        rejected: Frames or messages that broke the protocol, dropped.
        peers_lost: Times a peer fell silent for ``lost_after`` heartbeat intervals.
        peers_rejoined: Times a lost peer was heard again, or a peer came back restarted.

    """

    sent: int = 0
    acked: int = 0
    retransmitted: int = 0
    expired: int = 0
    duplicates: int = 0
    accepted: int = 0
    refused: int = 0
    held: int = 0
    rejected: int = 0
    peers_lost: int = 0
    peers_rejoined: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (what a relay's :data:`STATS` reply carries)."""
        return asdict(self)


def ack_message(sender: str, receiver: str, keys: Iterable[Key]) -> Message:
    """An acknowledgement from ``sender`` to ``receiver`` of the messages ``keys``."""
    return Message(sender, receiver, ACK, 0.0, 0, [[s, q] for s, q in keys])


def ack_keys(message: Message) -> list[Key]:
    """The ``(sender, seq)`` pairs an :data:`ACK` acknowledges.

    Raises:
        ValueError: if the payload is not a list of at most :data:`MAX_ACK_IDS` pairs of
            ``[str, int]``.

    """
    payload = message.payload
    if type(payload) is not list or len(payload) > MAX_ACK_IDS:
        raise ValueError(f"ack from {message.sender!r}: payload must be a list of pairs")
    keys = []
    for item in payload:
        if not (
            type(item) is list and len(item) == 2 and type(item[0]) is str and type(item[1]) is int
        ):
            raise ValueError(f"ack from {message.sender!r}: bad id {item!r}")
        keys.append((item[0], item[1]))
    return keys


def heartbeat(sender: str, receiver: str, incarnation: int) -> Message:
    """A heartbeat from ``sender``, whose process run is ``incarnation``."""
    return Message(sender, receiver, HEARTBEAT, 0.0, 0, {"incarnation": incarnation})


def incarnation_of(message: Message) -> int:
    """The incarnation a :data:`HEARTBEAT` carries.

    Raises:
        ValueError: if the payload is not ``{"incarnation": int}``.

    """
    payload = message.payload
    if type(payload) is not dict or type(payload.get("incarnation")) is not int:
        raise ValueError(f"heartbeat from {message.sender!r}: bad payload {payload!r}")
    return payload["incarnation"]


class DedupWindow:
    """Which ``(sender, seq)`` ids have been seen, in bounded memory.

    Per sender it keeps a floor (every seq at or below it counts as seen) and the set of seen
    seqs above it. The floor climbs over seqs as soon as they are contiguous; when the set
    outgrows ``capacity``, the floor jumps to keep only the ``capacity // 2`` highest seqs.

    A new message is mistaken for a duplicate only if ``capacity // 2`` higher seqs of its
    sender were seen before it. Along one path each hop keeps at most ``window`` messages in
    flight, in order, so a message falls at most one window per hop behind later ones; a
    capacity of four windows therefore never drops a new message on a sender -> relay ->
    receiver path. Seqs of a sender need not be contiguous at a receiver (the sender also
    writes to others): the gaps stay in the set until the floor jumps over them.

    Args:
        capacity: Most seqs kept above the floor per sender (at least 2).

    """

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity}")
        self.capacity = capacity
        self._floor: dict[str, int] = {}
        self._seen: dict[str, set[int]] = {}

    def __contains__(self, key: Key) -> bool:
        sender, seq = key
        floor = self._floor.get(sender)
        return (floor is not None and seq <= floor) or seq in self._seen.get(sender, ())

    def add(self, sender: str, seq: int) -> bool:
        """Record ``(sender, seq)``; return True if it is new, False if seen before."""
        floor = self._floor.get(sender)
        if floor is not None and seq <= floor:
            return False
        seen = self._seen.setdefault(sender, set())
        if seq in seen:
            return False
        seen.add(seq)
        if floor is not None and seq == floor + 1:
            self._climb(sender, floor)
        elif len(seen) > self.capacity:
            self._compact(sender)
        return True

    def senders(self) -> list[str]:
        """Senders with any state."""
        return list(self._seen)

    def state(self, sender: str) -> tuple[int | None, list[int]]:
        """``(floor, sorted seen seqs above it)`` of ``sender``, for saving."""
        return self._floor.get(sender), sorted(self._seen.get(sender, ()))

    def restore(self, sender: str, floor: int | None, seen: Iterable[int]) -> None:
        """Replace ``sender``'s state with one :meth:`state` returned."""
        self._seen[sender] = {seq for seq in seen if floor is None or seq > floor}
        if floor is None:
            self._floor.pop(sender, None)
        else:
            self._climb(sender, floor)
        if len(self._seen[sender]) > self.capacity:
            self._compact(sender)

    def _climb(self, sender: str, floor: int) -> None:
        seen = self._seen[sender]
        while floor + 1 in seen:
            floor += 1
            seen.remove(floor)
        self._floor[sender] = floor

    def _compact(self, sender: str) -> None:
        ordered = sorted(self._seen[sender])
        cut = len(ordered) - self.capacity // 2
        self._seen[sender] = set(ordered[cut:])
        self._climb(sender, ordered[cut - 1])


class Send(NamedTuple):
    """One send a :class:`RetransmitQueue` asks for.

    Attributes:
        message: The message.
        attempt: 1 for the first send, 2 for the first retransmission, and so on.

    """

    message: Message
    attempt: int


class _Entry:
    __slots__ = ("attempts", "due", "level", "message")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.attempts = 0
        self.level = 0
        self.due = 0.0


class RetransmitQueue:
    """Messages for one next hop, oldest first, kept until acknowledged.

    The caller owns the clock: :meth:`due` is given the time and says what to send now.
    Only the oldest ``policy.window`` unacknowledged messages are ever sent; the rest wait.

    Args:
        policy: The retransmission schedule and window.

    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._entries: dict[Key, _Entry] = {}  # insertion order is send order

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Key) -> bool:
        return key in self._entries

    def push(self, message: Message) -> bool:
        """Queue ``message`` behind the others; False if its key is already queued."""
        key = key_of(message)
        if key in self._entries:
            return False
        self._entries[key] = _Entry(message)
        return True

    def ack(self, key: Key) -> bool:
        """Forget the message ``key``; return whether it was queued."""
        return self._entries.pop(key, None) is not None

    def in_flight(self) -> int:
        """Messages sent at least once and not yet acknowledged."""
        count = 0
        for entry in self._entries.values():
            if entry.attempts == 0:
                break  # the window sends in order: nothing after an unsent one was sent
            count += 1
        return count

    def due(self, now: float) -> tuple[list[Send], list[Message]]:
        """Mark what is due at ``now`` as sent and return it, with what was given up.

        Returns:
            ``(sends, expired)``: the sends to make now, in queue order, and the messages
            dropped because their last allowed send went unanswered.

        """
        sends: list[Send] = []
        gone: list[Key] = []
        limit = self.policy.max_attempts
        # Only the window is looked at: a relay may hold thousands for one receiver.
        for key, entry in itertools.islice(self._entries.items(), self.policy.window):
            if entry.attempts and entry.due > now:
                continue
            if limit is not None and entry.attempts >= limit:
                gone.append(key)
                continue
            entry.attempts += 1
            entry.due = now + self.policy.delay(entry.level)
            entry.level += 1
            sends.append(Send(entry.message, entry.attempts))
        return sends, [self._entries.pop(key).message for key in gone]

    def next_due(self) -> float:
        """Earliest time :meth:`due` has something to do (0 if now, inf if never)."""
        earliest = float("inf")
        for entry in itertools.islice(self._entries.values(), self.policy.window):
            if not entry.attempts:
                return 0.0
            earliest = min(earliest, entry.due)
        return earliest

    def reset(self, now: float) -> None:
        """Make every message in flight due at ``now`` and restart its back-off.

        For a peer that just came back (or restarted): what it had not acknowledged goes
        again at once, in order, rather than after the back-off built up while it was away.
        """
        for entry in self._entries.values():
            if not entry.attempts:
                break
            entry.due = now
            entry.level = 0

    def messages(self) -> list[Message]:
        """Every queued message, oldest first."""
        return [entry.message for entry in self._entries.values()]
