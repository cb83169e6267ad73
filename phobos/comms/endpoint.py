"""An agent's reliable endpoint: exactly-once messaging through a relay, over any transport.

:class:`ReliableEndpoint` wraps one client-like :class:`~phobos.comms.transport.Transport`
(a :class:`~phobos.comms.zmq_transport.ZmqClient`, or an in-process endpoint made with
``via``) whose server is a :class:`~phobos.comms.relay.Relay`. It numbers what the agent sends,
keeps reliable messages until the relay acknowledges them and resends them meanwhile, beats
a heartbeat, watches the relay's, drops duplicates of what it receives, and acknowledges what
it received. Nothing here blocks longer than the timeout it is given.

Exactly once, including across a restart of the agent: an acknowledgement goes out only when
the application comes back for the next message (its next :meth:`~ReliableEndpoint.recv`),
so a message is never acknowledged before the application had it. An application that
records what it processed durably passes those ids as ``delivered`` when it starts again;
the relay resends whatever it had not heard acknowledged, and the endpoint drops what the
record already holds. Without such a record a restarted agent may see again the messages
it had not acknowledged when it died (at least once).
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from phobos.comms.codec import encode
from phobos.comms.liveness import Change, Liveness
from phobos.comms.message import Message
from phobos.comms.reliable import (
    ACK,
    CONTROL_PREFIX,
    HEARTBEAT,
    MAX_ACK_IDS,
    DedupWindow,
    Key,
    ReliableConfig,
    ReliableStats,
    RetransmitQueue,
    ack_keys,
    ack_message,
    heartbeat,
    incarnation_of,
    initial_seq,
)
from phobos.comms.transport import Transport, TransportError, check_timeout, log_rejection

log = logging.getLogger(__name__)


class ReliableEndpoint:
    """Reliable, duplicate-free messaging for one agent, through its relay.

    The endpoint works only while the application calls it: :meth:`recv` (or
    :meth:`wait_acked`) sends the heartbeats, retransmissions and acknowledgements that are
    due. An agent that does not call it for ``lost_after`` heartbeat intervals is marked lost
    by the relay; that costs a pause, not messages (they are held for its return).

    Args:
        transport: A client-like transport whose server is the relay; this endpoint owns it
            from now on and closes it.
        config: Retransmission, heartbeat and duplicate-window settings; use the relay's.
        relay: The relay's endpoint name (the sender of its heartbeats and acknowledgements).
        delivered: ``(sender, seq)`` ids the application already processed in an earlier
            run; they are dropped as duplicates if they come again.
        first_seq: Sequence number of the first message sent; default
            :func:`~phobos.comms.reliable.initial_seq`, above any earlier run's.
        clock: Monotonic clock in seconds (tests pass a fake one).

    Attributes:
        name: This agent's id (the transport's).
        stats: Counters; ``held`` is the number of messages awaiting the relay's ack.

    """

    def __init__(
        self,
        transport: Transport,
        config: ReliableConfig | None = None,
        *,
        relay: str = "relay",
        delivered: Iterable[Key] = (),
        first_seq: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.name = transport.name
        self.config = config if config is not None else ReliableConfig()
        self.relay = relay
        self.stats = ReliableStats()
        self._clock = clock
        self._seq = initial_seq() if first_seq is None else first_seq
        self._incarnation = random.getrandbits(62)
        self._queue = RetransmitQueue(self.config.retry)
        self._window = DedupWindow(self.config.dedup_capacity)
        for sender, seq in delivered:
            self._window.add(sender, seq)
        self._inbox: deque[Message] = deque()
        self._acks: list[Key] = []  # received messages the application has not come back from
        self._returned: list[Key] = []  # handed to the application by the last recv
        now = clock()
        self._liveness = Liveness(
            self.name, self.config.heartbeat_interval, self.config.lost_after, self.stats
        )
        self._liveness.expect(relay, now)
        self._next_beat = now
        self._service(now)  # the first heartbeat also introduces us to the relay

    @property
    def relay_alive(self) -> bool:
        """Whether the relay was heard from within ``lost_after`` heartbeat intervals."""
        return self._liveness.alive(self.relay)

    @property
    def unacked(self) -> int:
        """Reliable messages sent or queued that the relay has not acknowledged."""
        return len(self._queue)

    def send(
        self, receiver: str, kind: str, payload: Any = None, send_time: float = 0.0
    ) -> Message:
        """Send a message to ``receiver`` (an agent id or the broadcast id) through the relay.

        A reliable kind is queued and goes out now if the flight window allows, else as soon
        as earlier messages are acknowledged; other kinds go once, now.

        Returns:
            The message, with the sequence number this endpoint gave it.

        Raises:
            ValueError: if ``kind`` is a protocol kind.
            phobos.comms.codec.EncodeError: if the payload cannot be encoded.
            TransportError: only for a best-effort kind the transport did not take.

        """
        if kind.startswith(CONTROL_PREFIX):
            raise ValueError(f"kind {kind!r} is reserved for the protocol")
        message = Message(self.name, receiver, kind, float(send_time), self._seq, payload)
        if not self.config.is_reliable(kind):
            self._seq += 1
            self.transport.send(message)
            return message
        encode(message)  # an unencodable payload fails here, not at every resend
        self._seq += 1
        self._queue.push(message)
        self.stats.held = len(self._queue)
        self._pump(self._clock())
        return message

    def recv(self, timeout: float) -> Message | None:
        """Return the next new message, or None if none comes within ``timeout`` seconds.

        Acknowledges the messages the previous call returned, then serves the protocol
        (heartbeats, retransmissions, acknowledgements) while it waits.

        Raises:
            ValueError: if ``timeout`` is negative or not finite.
            TransportError: if the transport is closed.

        """
        check_timeout(timeout)
        self._acks.extend(self._returned)
        self._returned.clear()
        deadline = self._clock() + timeout
        while True:
            if self._inbox:
                message = self._inbox.popleft()
                if self.config.is_reliable(message.kind):
                    self._returned.append((message.sender, message.seq))
                return message
            now = self._clock()
            self._service(now)
            got = self._receive(min(deadline, self._next_wake()) - now)
            if not got and self._clock() >= deadline:
                return None

    def wait_acked(self, timeout: float) -> bool:
        """Serve the protocol until the relay acknowledged everything sent, or ``timeout``.

        Messages that arrive meanwhile wait for :meth:`recv`. Returns whether all were acked.
        """
        deadline = self._clock() + check_timeout(timeout)
        while self._queue:
            now = self._clock()
            self._service(now)
            got = self._receive(min(deadline, self._next_wake()) - now)
            if not got and self._clock() >= deadline:
                return False
        return True

    def close(self) -> None:
        """Acknowledge what the application had, then close the transport. Twice is allowed."""
        self._acks.extend(self._returned)
        self._returned.clear()
        try:
            self._flush_acks()
        except TransportError:
            pass  # closed already, or the relay is gone: it will send them again
        self.transport.close()

    def _receive(self, timeout: float) -> bool:
        """Receive and handle at most one message; return whether one came."""
        message = self.transport.recv(max(0.0, timeout))
        if message is None:
            return False
        self._handle(message, self._clock())
        return True

    def _handle(self, message: Message, now: float) -> None:
        # Every frame comes from the relay, our single next hop: any of them is a sign of life.
        incarnation = None
        if message.kind == HEARTBEAT:
            try:
                incarnation = incarnation_of(message)
            except ValueError as exc:
                self._reject(str(exc))
                return
        change = self._liveness.heard(self.relay, now, incarnation)
        if change in (Change.REJOINED, Change.RESTARTED):
            self._queue.reset(now)
        if message.kind == ACK:
            try:
                keys = ack_keys(message)
            except ValueError as exc:
                self._reject(str(exc))
                return
            for key in keys:
                if self._queue.ack(key):
                    self.stats.acked += 1
            self.stats.held = len(self._queue)
        elif message.kind.startswith(CONTROL_PREFIX):
            pass  # heartbeats, and protocol replies (a relay's STATS) not for the application
        elif not self.config.is_reliable(message.kind):
            self._inbox.append(message)
        elif self._window.add(message.sender, message.seq):
            self.stats.accepted += 1
            self._inbox.append(message)
        else:
            self.stats.duplicates += 1
            self._acks.append((message.sender, message.seq))  # acknowledge again: stop resends

    def _reject(self, reason: str) -> None:
        self.stats.rejected += 1
        log_rejection(self.name, self.stats.rejected, reason)

    def _service(self, now: float) -> None:
        """Heartbeat, liveness, retransmissions and pending acknowledgements due at ``now``."""
        if now >= self._next_beat:
            self._next_beat = now + self.config.heartbeat_interval
            self._try_send(heartbeat(self.name, self.relay, self._incarnation))
        self._liveness.check(now)
        self._flush_acks()
        self._pump(now)

    def _pump(self, now: float) -> None:
        # While the relay is lost, sends would only pile up in the socket's queue; the
        # heartbeats probe it, and everything in flight goes again when it answers.
        if not self.relay_alive:
            return
        sends, expired = self._queue.due(now)
        for send in sends:
            if send.attempt == 1:
                self.stats.sent += 1
            else:
                self.stats.retransmitted += 1
            self._try_send(send.message)
        for message in expired:
            self.stats.expired += 1
            log.warning("%s: gave up on %s unacknowledged", self.name, message.message_id)
        if expired:
            self.stats.held = len(self._queue)

    def _flush_acks(self) -> None:
        while self._acks:
            batch, self._acks = self._acks[:MAX_ACK_IDS], self._acks[MAX_ACK_IDS:]
            self._try_send(ack_message(self.name, self.relay, batch))

    def _try_send(self, message: Message) -> None:
        try:
            self.transport.send(message)
        except TransportError as exc:
            # The relay is away or not keeping up: retransmission and heartbeats cover it.
            log.debug("%s: send of %s failed: %s", self.name, message.kind, exc)

    def _next_wake(self) -> float:
        """When :meth:`_service` next has something to do."""
        wake = min(self._next_beat, self._liveness.next_check())
        if self.relay_alive:
            wake = min(wake, self._queue.next_due())
        return wake
