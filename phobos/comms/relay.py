"""The relay: store-and-forward between agents, durable across crashes, aware of who is alive.

Run one per bus::

    python -m phobos.comms.relay --address tcp://127.0.0.1:5555 --journal relay.db --keys DIR

(or ``--insecure`` instead of ``--keys``: no CURVE, loopback addresses only; see
:mod:`phobos.comms.relay_cli`). Under CURVE a name is its key's: messages to names outside
the allow-list are refused, and no connection takes over another's by name.

Agents connect with a :class:`~phobos.comms.endpoint.ReliableEndpoint` over a
:class:`~phobos.comms.zmq_transport.ZmqClient`. For each message of a reliable kind the relay

1. drops it if it is a duplicate (acknowledging it again), or refuses it (no acknowledgement;
   the sender tries again later) if its receiver already has ``max_held`` copies waiting or
   the journal ``max_total`` copies or ``max_bytes``, or its receiver is not known
   (``receivers``: the allow-list);
   a broadcast skips the receivers that are full and goes to the others;
2. journals one copy per receiver (every known peer but the sender, for a broadcast) and
   only then acknowledges it to the sender: custody has passed to the relay;
3. sends each copy to its receiver while the receiver is alive, in order, at most
   ``window`` in flight, again on the retry schedule, until the receiver acknowledges it,
   and then deletes it from the journal.

Peers and the relay exchange heartbeats; a peer silent for ``lost_after`` intervals is lost,
and what is addressed to it is held until it is heard again. Killed (SIGKILL) at any point and
started again on the same journal, the relay resumes with every copy it had acknowledged.
Best-effort kinds are forwarded at once to receivers alive now, and never journaled.

Duplicates are recognised by message id for as long as the message lives, as custody is in
ION's bundle protocol: an id is a duplicate while any copy of it is in custody (journaled),
and for ``done_lifetime`` seconds after its last copy was delivered (or given up), which the
journal remembers across restarts. No sliding count decides: a message still being retried
however far behind its sender's later ones is never taken for one seen before (a floor that
had passed it would acknowledge it and drop it).

Every receive waits at most its timeout; a frame that is not a valid message (garbage,
truncated, oversized, another version, a spoofed sender, a broken protocol message) is
counted in the rejections and dropped, and the relay keeps serving the others. The relay
serves until SIGTERM or SIGINT, then closes its sockets with linger 0 and exits with 0.

The contact plan is not modelled here: copies go as soon as their receiver is alive. A
light-time :class:`~phobos.comms.router.Router` would sit between step 2 and step 3.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

from phobos.comms.codec import encode
from phobos.comms.journal import Journal
from phobos.comms.liveness import Change, Liveness
from phobos.comms.message import BROADCAST, Message
from phobos.comms.reliable import (
    ACK,
    CONTROL_PREFIX,
    HEARTBEAT,
    MAX_ACK_IDS,
    STATS,
    Key,
    ReliableConfig,
    ReliableStats,
    RetransmitQueue,
    ack_keys,
    ack_message,
    heartbeat,
    incarnation_of,
)
from phobos.comms.transport import Transport, TransportError, check_timeout, log_rejection

log = logging.getLogger(__name__)

_SEQ_RANGE = range(-(2**63), 2**63)  # what SQLite's INTEGER holds


@dataclass(frozen=True)
class RelayConfig:
    """Settings of a relay."""

    name: str = "relay"
    """The relay's endpoint name: agents address acknowledgements and heartbeats to it."""
    reliable: ReliableConfig = field(default_factory=ReliableConfig)
    """Retransmission, heartbeat and duplicate-window settings (agents should use the same)."""
    max_held: int = 10_000
    """Most copies held for one receiver; more are refused until it catches up."""
    batch: int = 256
    """Most messages received, journaled in one transaction and acknowledged together."""
    peers: tuple[str, ...] = ()
    """Agents expected before they first connect: broadcasts include them from the start."""
    max_total: int = 1_000_000
    """Most copies journaled for all receivers together; more are refused (and counted)."""
    max_bytes: int = 1 << 30
    """Most bytes of frames journaled for all receivers together; more are refused."""
    done_lifetime: float = 86_400.0
    """Seconds a delivered message's id is remembered after its last copy left custody: a
    retransmission within it (its acknowledgement lost) is a duplicate, not a new message."""
    synchronous: Literal["NORMAL", "FULL"] = "FULL"
    """SQLite ``synchronous`` level of the journal; FULL survives power loss, NORMAL only
    process crashes (see :mod:`phobos.comms.journal`)."""

    def __post_init__(self) -> None:
        if self.max_held < 1 or self.batch < 1 or self.max_total < 1 or self.max_bytes < 1:
            raise ValueError(
                f"max_held, max_total, max_bytes and batch must be >= 1, got {self.max_held}, "
                f"{self.max_total}, {self.max_bytes}, {self.batch}"
            )
        if not self.done_lifetime > 0:
            raise ValueError(f"done_lifetime must be > 0, got {self.done_lifetime}")
        if self.name == BROADCAST or self.name in self.peers:
            raise ValueError(f"relay name {self.name!r} is the broadcast id or a peer's name")


class Relay:
    """Store-and-forward relay over a server-like transport, journaled in SQLite.

    Drive it with :meth:`step` (or :meth:`serve`); it is used from one thread.

    Args:
        transport: Server-like endpoint the agents' clients connect to; the relay owns it.
        journal: Its journal; what it holds is recovered now. The relay owns it.
        config: Settings; default :class:`RelayConfig`.
        clock: Monotonic clock in seconds (tests pass a fake one).
        wall_clock: Wall clock in seconds, for the remembered ids (they outlive the process).
        receivers: The names messages may be addressed to (the allow-list); None takes any
            (an insecure relay with no peers configured).

    Attributes:
        stats: Counters; ``held`` is the number of journaled copies, ``rejected`` counts
            protocol violations (see :meth:`counters` for the transport's rejections too).

    """

    def __init__(
        self,
        transport: Transport,
        journal: Journal,
        config: RelayConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        receivers: Collection[str] | None = None,
    ) -> None:
        self.config = config if config is not None else RelayConfig()
        self.name = self.config.name
        self.transport = transport
        self.journal = journal
        self.stats = ReliableStats()
        self._clock = clock
        self._reliable = self.config.reliable
        self._incarnation = random.getrandbits(62)
        self._custody: dict[Key, int] = {}  # id -> copies still journaled
        self._size: dict[Key, int] = {}  # id -> its frame's size, while in custody
        self.held_bytes = 0  # bytes of frames journaled, one frame per copy
        self._done: dict[Key, float] = {}  # id -> wall time its memory expires
        self._wall = wall_clock
        self.receivers = frozenset(receivers) if receivers is not None else None
        self._queues: dict[str, RetransmitQueue] = {}
        self._liveness = Liveness(
            self.name, self._reliable.heartbeat_interval, self._reliable.lost_after, self.stats
        )
        recovered = journal.recover()
        # (A journal's old duplicate windows, floors and counts, are not ids: not used.)
        self._done.update(recovered.done)
        for name in (*recovered.peers, *self.config.peers):
            self._liveness.remember(name)
        for receiver, message in recovered.held:
            self._queue(receiver).push(message)
            key = (message.sender, message.seq)
            self._custody[key] = self._custody.get(key, 0) + 1
            self._size[key] = size = len(encode(message))
            self.held_bytes += size
        self.stats.held = len(recovered.held)
        log.info(
            "%s: journal %s (synchronous=%s) holds %d copies for %d receivers; %d known peers",
            self.name,
            journal.path,
            journal.synchronous,
            len(recovered.held),
            len({receiver for receiver, _ in recovered.held}),
            len(self._liveness.known()),
        )
        self._next_beat = clock()
        self._next_forget = clock()

    def counters(self) -> dict[str, int]:
        """Every counter, with the transport's rejected frames added to ``rejected``."""
        counters = self.stats.as_dict()
        counters["rejected"] += self.transport.rejected
        counters["held_bytes"] = self.held_bytes
        return counters

    def alive_peers(self) -> list[str]:
        """Peers heard from within ``lost_after`` heartbeat intervals, sorted."""
        return sorted(filter(self._liveness.alive, self._liveness.known()))

    def serve(self, stop: Callable[[], bool], tick: float = 0.1) -> None:
        """Serve until ``stop()`` is true; it is checked at least every ``tick`` seconds."""
        while not stop():
            self.step(tick)

    def step(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for messages, handle a batch, and do what is due."""
        now = self._clock()
        wait = max(0.0, min(now + check_timeout(timeout), self._next_wake()) - now)
        message = self.transport.recv(wait)
        if message is not None:
            batch = [message]
            while len(batch) < self.config.batch:
                message = self.transport.recv(0.0)
                if message is None:
                    break
                batch.append(message)
            self._handle(batch, self._clock())
        self._service(self._clock())

    def close(self) -> None:
        """Close the transport (linger 0) and the journal. Closing twice is allowed."""
        self.transport.close()
        self.journal.close()

    def _queue(self, receiver: str) -> RetransmitQueue:
        queue = self._queues.get(receiver)
        if queue is None:
            queue = self._queues[receiver] = RetransmitQueue(self._reliable.retry)
        return queue

    def _handle(self, batch: Sequence[Message], now: float) -> None:
        accepted: list[tuple[Message, tuple[str, ...]]] = []
        acks: defaultdict[str, list[Key]] = defaultdict(list)  # custody, to send after commit
        delivered: list[tuple[str, Key]] = []
        finished: list[tuple[Key, float]] = []  # ids whose last copy left custody
        pending = 0  # copies accepted in this batch, not yet counted in stats.held
        pending_bytes = 0  # and their frames' bytes, not yet in held_bytes
        joined: list[str] = []
        waiting = {receiver: len(queue) for receiver, queue in self._queues.items()}
        for message in batch:
            sender, kind = message.sender, message.kind
            if kind == STATS:
                status = {**self.counters(), "alive": self.alive_peers()}
                reply = Message(self.name, sender, STATS, 0.0, message.seq, status)
                self._send(reply, sender)
                continue  # a probe, not a peer
            # Only a message that keeps the protocol counts as a sign of life.
            incarnation = None
            keys: list[Key] = []
            try:
                if kind == HEARTBEAT:
                    incarnation = incarnation_of(message)
                elif kind == ACK:
                    keys = ack_keys(message)
                elif kind.startswith(CONTROL_PREFIX) or message.receiver == self.name:
                    raise ValueError(f"{message.message_id}: {kind!r} to {message.receiver!r}")
                elif message.seq not in _SEQ_RANGE:
                    raise ValueError(f"{message.message_id}: seq beyond 64-bit signed")
            except ValueError as exc:
                self._reject(str(exc))
                continue
            change = self._liveness.heard(sender, now, incarnation)
            if change is Change.JOINED:
                joined.append(sender)
            elif change in (Change.REJOINED, Change.RESTARTED) and sender in self._queues:
                self._queues[sender].reset(now)
            if kind == HEARTBEAT:
                continue
            if kind == ACK:
                queue = self._queues.get(sender)
                for key in keys:
                    if queue is not None and queue.ack(key):
                        delivered.append((sender, key))
                continue
            receivers = self._receivers(message)
            if not self._reliable.is_reliable(kind):
                for receiver in receivers:
                    if self._liveness.alive(receiver):
                        self._send(message, receiver)
                continue
            key = (sender, message.seq)
            if key in self._custody or key in self._done:
                self.stats.duplicates += 1
                acks[sender].append(key)
                continue
            if self.receivers is not None and message.receiver != BROADCAST:
                if message.receiver not in self.receivers:
                    self._reject(f"{message.message_id}: unknown receiver")
                    continue
            size = len(encode(message))
            full_bytes = self.held_bytes + pending_bytes + size * len(receivers)
            if self.stats.held + pending + len(receivers) > self.config.max_total or (
                full_bytes > self.config.max_bytes
            ):
                self.stats.refused += 1
                log_rejection(self.name, self.stats.refused, "the journal is full")
                continue  # not acknowledged: the sender tries again later
            full = [r for r in receivers if waiting.get(r, 0) >= self.config.max_held]
            if full:
                self.stats.refused += len(full)
                reason = f"{message.message_id}: buffer of {', '.join(full)} full"
                log_rejection(self.name, self.stats.refused, reason)
                if message.receiver != BROADCAST:
                    continue  # not acknowledged: the sender tries again later
                # A broadcast cannot be acknowledged in part: the full receivers miss it
                # (as the router's tail drop), lest one dead peer block everyone's.
                receivers = tuple(r for r in receivers if r not in full)
            for receiver in receivers:
                waiting[receiver] = waiting.get(receiver, 0) + 1
            if receivers:
                self._custody[key] = len(receivers)
                self._size[key] = size
                pending += len(receivers)
                pending_bytes += size * len(receivers)
            else:
                self._done[key] = self._wall() + self.config.done_lifetime
                finished.append((key, self._done[key]))
            accepted.append((message, receivers))
            acks[sender].append(key)
        # Durable first: nothing is acknowledged to a sender before its commit returns.
        for _, key in delivered:
            finished.extend(self._release(key))
        self.journal.commit(accepted=accepted, delivered=delivered, peers=joined, finished=finished)
        for message, receivers in accepted:
            for receiver in receivers:
                self._queue(receiver).push(message)
        copies = sum(len(receivers) for _, receivers in accepted)
        self.held_bytes += pending_bytes
        self.stats.accepted += len(accepted)
        self.stats.acked += len(delivered)
        self.stats.held += copies - len(delivered)
        for sender, keys in acks.items():
            for start in range(0, len(keys), MAX_ACK_IDS):
                self._send(
                    ack_message(self.name, sender, keys[start : start + MAX_ACK_IDS]), sender
                )

    def _receivers(self, message: Message) -> tuple[str, ...]:
        if message.receiver != BROADCAST:
            return (message.receiver,)
        return tuple(sorted(p for p in self._liveness.known() if p != message.sender))

    def _service(self, now: float) -> None:
        """Heartbeats, liveness and the sends due at ``now``."""
        if now >= self._next_beat:
            self._next_beat = now + self._reliable.heartbeat_interval
            for peer in self._liveness.known():
                if self._liveness.alive(peer):
                    self._send(heartbeat(self.name, peer, self._incarnation), peer)
        self._liveness.check(now)
        expired: list[tuple[str, Key]] = []
        for receiver, queue in self._queues.items():
            if not self._liveness.alive(receiver):
                continue  # held: it goes when the receiver is heard again
            sends, gone = queue.due(now)
            for send in sends:
                if send.attempt == 1:
                    self.stats.sent += 1
                else:
                    self.stats.retransmitted += 1
                self._send(send.message, receiver)
            for message in gone:
                log.warning("%s: gave up on %s for %s", self.name, message.message_id, receiver)
                expired.append((receiver, (message.sender, message.seq)))
        finished = [done for _, key in expired for done in self._release(key)]
        forget = None
        if now >= self._next_forget:
            self._next_forget = now + 60.0
            forget = self._forget()
        if expired or forget is not None:
            self.journal.commit(delivered=expired, finished=finished, forget_before=forget)
            self.stats.expired += len(expired)
            self.stats.held -= len(expired)

    def _release(self, key: Key) -> list[tuple[Key, float]]:
        """One copy of ``key`` left custody; when it was the last, remember the id."""
        left = self._custody.get(key, 0) - 1
        self.held_bytes -= self._size.get(key, 0)
        if left > 0:
            self._custody[key] = left
            return []
        self._custody.pop(key, None)
        self._size.pop(key, None)
        expires = self._done[key] = self._wall() + self.config.done_lifetime
        # Bounded as the journal is: the oldest memories go first (insertion order).
        while len(self._done) > self.config.max_total:
            del self._done[next(iter(self._done))]
        return [(key, expires)]

    def _forget(self) -> float:
        """Drop the remembered ids that expired; return the cut-off for the journal."""
        now = self._wall()
        for key in [k for k, expires in self._done.items() if expires < now]:
            del self._done[key]
        return now

    def _next_wake(self) -> float:
        wake = min(self._next_beat, self._liveness.next_check())
        for receiver, queue in self._queues.items():
            if self._liveness.alive(receiver):
                wake = min(wake, queue.next_due())
        return wake

    def _send(self, message: Message, to: str) -> None:
        try:
            self.transport.send(message, to=to)
        except TransportError as exc:
            # Gone or not keeping up: heartbeats and the retry schedule take care of it.
            log.debug("%s: send of %s to %s failed: %s", self.name, message.kind, to, exc)

    def _reject(self, reason: str) -> None:
        self.stats.rejected += 1
        log_rejection(self.name, self.stats.rejected, reason)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a relay over ZeroMQ until SIGTERM or SIGINT; see :mod:`phobos.comms.relay_cli`."""
    from phobos.comms.relay_cli import main as run

    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
