"""Transports: move a :class:`~phobos.comms.message.Message` one hop between named endpoints.

A transport is the socket layer under the store-and-forward router: it knows nothing of light
time or contact plans, only how to hand a message to a peer now and how to wait, never
forever, for the next one. Two implementations share the :class:`Transport` interface and one
test suite (STYLE 9: the perfect in-memory channel first, then the same tests over sockets):

- :class:`InProcessHub` / :class:`InProcessTransport`: queues inside one process, for training
  and for tests; optionally round-trips every message through the wire codec.
- :mod:`phobos.comms.zmq_transport`: ZeroMQ ROUTER (server) and DEALER (clients) over
  ``inproc://``, ``ipc://`` or ``tcp://``.

Telemetry that may drop goes over PUB/SUB instead (:mod:`phobos.comms.telemetry`); it is not a
transport, since each end only publishes or only receives.

Addressing is by endpoint name. A server-like endpoint (a ROUTER, or an in-process endpoint
made without ``via``) sends to ``message.receiver`` unless ``to`` names another next hop, as
when a relay forwards a broadcast's copy to each receiver in turn; it carries one copy to one
endpoint and refuses :data:`~phobos.comms.message.BROADCAST` as a destination (expand
broadcasts with :class:`~phobos.comms.router.Router` first). A client-like endpoint (a DEALER,
or an in-process endpoint made with ``via``) has one next hop, its server, which routes every
message onwards, broadcasts included; it refuses ``to`` and messages whose sender is not
itself (its server enforces the latter too, against peers that skip this check).
"""

from __future__ import annotations

import abc
import logging
import math
import queue
import threading

from phobos.comms.closing import Closing
from phobos.comms.codec import MAX_FRAME_SIZE, decode, encode
from phobos.comms.limits import clip
from phobos.comms.message import BROADCAST, Message

log = logging.getLogger(__name__)

_LOUD_REJECTIONS = 10
"""Rejections logged as warnings before the log drops to one warning per thousand."""


class TransportError(ConnectionError):
    """A send could not complete: unknown or unreachable peer, peer not keeping up, or closed."""


class Transport(Closing):
    """One endpoint's connection to its peers.

    Required: :meth:`send`, :meth:`recv` and :meth:`close`. A transport is used from one thread
    at a time (ZeroMQ sockets are not thread-safe) and is a context manager that closes it.

    Attributes:
        name: This endpoint's id.
        rejected: Frames that arrived but were not valid messages, since creation; each is
            logged and dropped, and the transport keeps serving.

    """

    name: str
    rejected: int = 0

    @abc.abstractmethod
    def send(self, message: Message, to: str | None = None) -> None:
        """Hand ``message`` to its next hop: ``to``, else ``message.receiver``, else the server.

        Raises:
            ValueError: if a server-like endpoint is asked to send to
                :data:`~phobos.comms.message.BROADCAST`, or a client-like one is given ``to``
                or a message whose sender is not itself.
            phobos.comms.codec.EncodeError: if the message cannot be encoded.
            TransportError: if the peer is unknown or does not take the message in time.

        """

    @abc.abstractmethod
    def recv(self, timeout: float) -> Message | None:
        """Return the next valid message, or None if none arrives within ``timeout`` seconds.

        Invalid frames that arrive meanwhile are counted in :attr:`rejected` and skipped.

        Raises:
            ValueError: if ``timeout`` is negative or not finite.
            TransportError: if the transport is closed.

        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the endpoint; pending messages are dropped. Closing twice is allowed."""


def check_timeout(timeout: float) -> float:
    """Validate a receive timeout in seconds: finite and non-negative (never block forever)."""
    if not 0 <= timeout < math.inf:  # also refuses NaN
        raise ValueError(f"timeout must be finite and >= 0 seconds, got {timeout!r}")
    return timeout


def destination(message: Message, to: str | None) -> str:
    """Resolve the next hop of ``message``; refuse a broadcast."""
    dest = message.receiver if to is None else to
    if dest == BROADCAST:
        raise ValueError(
            f"cannot send {message.message_id} to {BROADCAST!r}: a transport carries one copy "
            "to one endpoint; expand broadcasts with the Router and pass `to`"
        )
    return dest


def log_rejection(endpoint: str, count: int, reason: str) -> None:
    """Log the ``count``-th rejected frame at ``endpoint``, loudly at first, then sparsely."""
    if count <= _LOUD_REJECTIONS or count % 1000 == 0:
        log.warning("%s rejected frame #%d: %s", endpoint, count, clip(reason))
    else:
        log.debug("%s rejected frame #%d: %s", endpoint, count, clip(reason))


class InProcessHub:
    """Endpoints inside one process, each with an unbounded queue.

    Args:
        codec: Encode every message at send and decode it at receive, exactly as a socket
            would, so that payloads the wire cannot carry fail here too. Off, messages pass
            by reference (fastest; the receiver shares the sender's payload objects).
        max_size: Largest frame, in bytes, when ``codec`` is on.

    """

    def __init__(self, codec: bool = False, max_size: int = MAX_FRAME_SIZE) -> None:
        self.codec = codec
        self.max_size = max_size
        self._queues: dict[str, queue.SimpleQueue] = {}
        self._lock = threading.Lock()

    def endpoint(self, name: str, via: str | None = None) -> InProcessTransport:
        """Create the endpoint ``name``.

        Args:
            name: Its name.
            via: For a client-like endpoint, the endpoint every send goes to (as a DEALER's
                go to its ROUTER); None for a server-like one that sends by receiver.

        Raises:
            ValueError: if ``name`` is taken or is the broadcast id.

        """
        if name == BROADCAST:
            raise ValueError(f"{BROADCAST!r} is the broadcast id, not an endpoint name")
        with self._lock:
            if name in self._queues:
                raise ValueError(f"endpoint {name!r} already exists")
            inbox: queue.SimpleQueue = queue.SimpleQueue()
            self._queues[name] = inbox
        return InProcessTransport(self, name, inbox, via)

    def names(self) -> tuple[str, ...]:
        """Names of the open endpoints."""
        with self._lock:
            return tuple(self._queues)

    def _inbox(self, name: str) -> queue.SimpleQueue | None:
        return self._queues.get(name)

    def _remove(self, name: str) -> None:
        with self._lock:
            self._queues.pop(name, None)


class InProcessTransport(Transport):
    """An endpoint of an :class:`InProcessHub`; create it with :meth:`InProcessHub.endpoint`."""

    def __init__(
        self, hub: InProcessHub, name: str, inbox: queue.SimpleQueue, via: str | None
    ) -> None:
        self.name = name
        self.via = via
        self.rejected = 0
        self._hub = hub
        self._inbox = inbox
        self._closed = False

    def send(self, message: Message, to: str | None = None) -> None:
        """See :meth:`Transport.send`."""
        if self._closed:
            raise TransportError(f"endpoint {self.name!r} is closed")
        if self.via is None:
            dest = destination(message, to)
        elif to is not None:
            raise ValueError(f"endpoint {self.name!r} sends only via {self.via!r}; got to={to!r}")
        elif message.sender != self.name:
            raise ValueError(f"endpoint {self.name!r} cannot send as {message.sender!r}")
        else:
            dest = self.via
        inbox = self._hub._inbox(dest)
        if inbox is None:
            raise TransportError(f"no endpoint named {dest!r}")
        inbox.put(encode(message, self._hub.max_size) if self._hub.codec else message)

    def recv(self, timeout: float) -> Message | None:
        """See :meth:`Transport.recv`."""
        if self._closed:
            raise TransportError(f"endpoint {self.name!r} is closed")
        check_timeout(timeout)
        try:
            item = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get(False)
        except queue.Empty:
            return None
        # Frames here come only from encode() in send(): a DecodeError would be a codec bug.
        return item if isinstance(item, Message) else decode(item, self._hub.max_size)

    def close(self) -> None:
        """See :meth:`Transport.close`."""
        if not self._closed:
            self._closed = True
            self._hub._remove(self.name)
