"""ZeroMQ transports: ROUTER/DEALER for addressed, lock-step traffic.

- :class:`ZmqServer` binds a ROUTER. With CURVE, a client's name is the one the allow-list
  gives its key (the ZAP User-Id of every frame it sends): a message whose sender is another
  name is rejected, and the server sends to a name over the connection that name's key last
  spoke on. No connection takes over another by the routing id it chose: CURVE clients set
  none, and the ROUTER has no handover. Without CURVE (loopback tests only: nothing is
  authenticated) a client's routing id is its name, and the sender must match it.
- :class:`ZmqClient` connects a DEALER to one server; everything it sends goes to the server,
  which routes onwards.
- Telemetry, which may drop, goes over PUB/SUB instead: :mod:`phobos.comms.telemetry`.

Every endpoint works over ``inproc://`` (same :class:`zmq.Context`), ``ipc://`` and ``tcp://``.
Bind ``tcp://127.0.0.1:*`` to let the system pick a free port; :attr:`address` tells which.

Guarantees common to both (and to telemetry): a receive waits at most its timeout; a send
waits at most ``send_timeout`` for a peer that does not keep up, then raises
:class:`~phobos.comms.transport.TransportError`; sockets close with linger 0; a frame that is
not a valid message is counted in ``rejected``, logged, and skipped, and the socket keeps
serving. Frames longer than ``max_size`` are cut off by libzmq itself (``ZMQ_MAXMSGSIZE``,
which drops the offending connection) over ``ipc://`` and ``tcp://`` before they are read, so
they are not counted; over ``inproc://`` the decoder rejects and counts them.

Each message is one frame (a multipart send costs about ten times a single one), apart from
the identity frame that a ROUTER needs in front of it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import zmq

from phobos.comms.codec import MAX_FRAME_SIZE, DecodeError, decode, encode
from phobos.comms.limits import quote
from phobos.comms.message import Message
from phobos.comms.security import KeyPair, configure_curve
from phobos.comms.transport import (
    Transport,
    TransportError,
    check_timeout,
    destination,
    log_rejection,
)

_MAX_TIMEOUT_MS = 2**31 - 1  # ZMQ_RCVTIMEO is a C int


def make_socket(
    context: zmq.Context | None,
    kind: int,
    max_size: int,
    send_timeout: float,
    curve: KeyPair | None,
    server_key: bytes | None,
) -> zmq.Socket:
    """Create a socket of ``kind`` with linger 0, a frame size cap, a send timeout and CURVE."""
    context = context if context is not None else zmq.Context.instance()
    sock = context.socket(kind)
    try:
        sock.linger = 0
        sock.maxmsgsize = max_size
        sock.sndtimeo = milliseconds(check_timeout(send_timeout))
        if curve is not None:
            configure_curve(sock, curve, server_key)
        elif server_key is not None:
            raise ValueError("server_key needs this endpoint's own CURVE keys too (curve=...)")
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def waiting_frames(sock: zmq.Socket, most: int) -> Iterator[tuple[bytes, zmq.Frame | None]]:
    """A ROUTER's waiting messages, at most ``most``, without blocking: ``(ident, frame)``.

    ``frame`` is None for a message of more than one frame (its parts are read and dropped,
    for the caller to refuse). Bounded, so that a peer that never stops sending cannot keep
    the caller's loop here.
    """
    for _ in range(most):
        try:
            ident = sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        part = sock.recv(copy=False)
        if part.more:
            while sock.rcvmore:
                sock.recv()
            yield ident, None
        else:
            yield ident, part


def milliseconds(seconds: float) -> int:
    """Round a timeout up to whole milliseconds, capped where ZeroMQ's C int ends."""
    return min(math.ceil(seconds * 1000), _MAX_TIMEOUT_MS)


class _ZmqEndpoint(Transport):
    """Shared socket handling of the ROUTER and DEALER ends."""

    def __init__(self, sock: zmq.Socket, name: str, max_size: int) -> None:
        self.name = name
        self.rejected = 0
        self.max_size = max_size
        self._sock = sock
        self._timeout = -1.0  # the receive timeout RCVTIMEO now holds, in seconds

    @property
    def socket(self) -> zmq.Socket:
        """The underlying socket, for polling together with others."""
        return self._sock

    @property
    def address(self) -> str:
        """The endpoint last bound or connected, with a wildcard port resolved."""
        return self._sock.last_endpoint.decode()

    def recv(self, timeout: float) -> Message | None:
        """See :meth:`Transport.recv`."""
        if self._sock.closed:
            raise TransportError(f"endpoint {self.name!r} is closed")
        deadline = time.monotonic() + check_timeout(timeout)
        while True:
            if timeout != self._timeout:
                # RCVTIMEO makes libzmq poll inside recv: one call instead of poll + recv.
                # Loops call recv with one timeout, so setting it is rare.
                self._sock.rcvtimeo = milliseconds(timeout)
                self._timeout = timeout
            try:
                message = self._recv_one()
            except zmq.Again:
                return None
            if message is not None:
                return message
            timeout = max(0.0, deadline - time.monotonic())

    def close(self) -> None:
        """See :meth:`Transport.close`."""
        if not self._sock.closed:
            self._sock.close(linger=0)

    def _recv_one(self) -> Message | None:
        """Receive one ZeroMQ message (raising zmq.Again on timeout); None if rejected."""
        raise NotImplementedError

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        log_rejection(self.name, self.rejected, reason)

    def _drain(self) -> int:
        """Discard the remaining frames of a multipart message; return how many."""
        extra = 0
        while self._sock.getsockopt(zmq.RCVMORE):
            self._sock.recv()
            extra += 1
        return extra


class ZmqServer(_ZmqEndpoint):
    """ROUTER end bound to ``address``; sends to clients by name, receives from all of them.

    Args:
        address: Where to bind, for example ``"tcp://127.0.0.1:*"`` or ``"ipc:///tmp/w.sock"``.
        name: This endpoint's name.
        context: ZeroMQ context (required to share ``inproc://``); default the global one.
        curve: This server's CURVE key pair; the context then needs a running
            :class:`~phobos.comms.security.CurveAuthenticator`.
        max_size: Largest frame, in bytes, sent or accepted.
        send_timeout: Seconds a send may wait for a client that does not keep up.
        wire_max_size: Largest frame libzmq reads off ``ipc://`` and ``tcp://`` before it drops
            the connection instead (``ZMQ_MAXMSGSIZE``); default ``max_size``. Set it above
            ``max_size`` to have frames between the two counted in :attr:`rejected`.

    """

    def __init__(
        self,
        address: str,
        name: str,
        *,
        context: zmq.Context | None = None,
        curve: KeyPair | None = None,
        max_size: int = MAX_FRAME_SIZE,
        send_timeout: float = 1.0,
        wire_max_size: int | None = None,
    ) -> None:
        wire = max_size if wire_max_size is None else max(wire_max_size, max_size)
        sock = make_socket(context, zmq.ROUTER, wire, send_timeout, curve, None)
        super().__init__(sock, name, max_size)
        self._authenticated = curve is not None
        self._routes: dict[str, bytes] = {}  # name -> routing id of its key's latest frame
        try:
            # Unknown peers raise EHOSTUNREACH instead of vanishing silently.
            sock.router_mandatory = 1
            sock.bind(address)
        except BaseException:
            sock.close(linger=0)
            raise

    def send(self, message: Message, to: str | None = None) -> None:
        """See :meth:`Transport.send`; ``to`` or the receiver is a client's name."""
        dest = destination(message, to)
        frame = encode(message, self.max_size)
        sock = self._sock
        if sock.closed:
            raise TransportError(f"endpoint {self.name!r} is closed")
        identity = self._routes.get(dest) if self._authenticated else dest.encode()
        if identity is None:
            raise TransportError(f"no client named {dest!r} is connected")
        try:
            sock.send(identity, zmq.SNDMORE)
            sock.send(frame)
        except zmq.Again:
            raise TransportError(f"client {dest!r} did not take a message in time") from None
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                raise TransportError(f"no client named {dest!r} is connected") from None
            raise TransportError(f"send to {dest!r} failed: {exc}") from exc

    def _recv_one(self) -> Message | None:
        sock = self._sock
        # A ROUTER hands over [identity, part, ...] and a DEALER sends at least one part, so
        # the body is there. Its Frame tells whether more follow more cheaply than RCVMORE.
        identity = sock.recv()
        part = sock.recv(copy=False)
        if part.more:
            self._reject(f"peer {identity!r} sent {self._drain() + 1} frames, expected 1")
            return None
        frame = part.bytes
        try:
            message = decode(frame, self.max_size)
        except DecodeError as exc:
            self._reject(f"peer {identity!r}: {exc}")
            return None
        if self._authenticated:
            user = part.get("User-Id")
            if user != message.sender:
                self._reject(
                    f"peer authenticated as {user!r} sent a message as {quote(message.sender)}"
                )
                return None
            # Only the key's holder can make a frame with this User-Id: its latest connection
            # (a restarted process) is where the name's messages go from now on.
            self._routes[user] = identity
        elif message.sender.encode() != identity:
            self._reject(f"peer {quote(identity)} sent a message as {quote(message.sender)}")
            return None
        return message


class ZmqClient(_ZmqEndpoint):
    """DEALER end connected to one server; without CURVE its routing id is ``name``.

    Args:
        address: The server's address.
        name: This endpoint's name; the server addresses it by this, and every message it
            sends must have this sender.
        context: ZeroMQ context (required to share ``inproc://``); default the global one.
        curve: This client's CURVE key pair (with ``server_key``).
        server_key: The server's CURVE public key.
        max_size: Largest frame, in bytes, sent or accepted.
        send_timeout: Seconds a send may wait while the server's queue is full or before the
            first connection exists.

    """

    def __init__(
        self,
        address: str,
        name: str,
        *,
        context: zmq.Context | None = None,
        curve: KeyPair | None = None,
        server_key: bytes | None = None,
        max_size: int = MAX_FRAME_SIZE,
        send_timeout: float = 1.0,
    ) -> None:
        if (curve is None) != (server_key is None):
            raise ValueError("a CURVE client needs both its own keys and the server's public key")
        sock = make_socket(context, zmq.DEALER, max_size, send_timeout, curve, server_key)
        super().__init__(sock, name, max_size)
        try:
            if curve is None:
                # Without CURVE the routing id is the name; with it the server names the
                # connection after its key, and a chosen routing id could only collide.
                sock.routing_id = name.encode()
            sock.connect(address)
        except BaseException:
            sock.close(linger=0)
            raise

    def send(self, message: Message, to: str | None = None) -> None:
        """Send ``message`` to the server, which routes it to its receiver (or receivers).

        Raises:
            ValueError: if ``to`` is given (a client has a single next hop, its server), or
                the sender is not this client.
            phobos.comms.codec.EncodeError: if the message cannot be encoded.
            TransportError: if the server does not take the message in time.

        """
        if to is not None:
            raise ValueError("a client sends only to its server; address the message instead")
        if message.sender != self.name:
            raise ValueError(f"client {self.name!r} cannot send as {message.sender!r}")
        frame = encode(message, self.max_size)
        if self._sock.closed:
            raise TransportError(f"endpoint {self.name!r} is closed")
        try:
            self._sock.send(frame)
        except zmq.Again:
            raise TransportError("the server did not take a message in time") from None

    def _recv_one(self) -> Message | None:
        # No RCVMORE check (it costs more than the recv): a DEALER's frames carry no
        # envelope, so each part of a multipart message is judged, and rejected, on its own.
        frame = self._sock.recv()
        try:
            return decode(frame, self.max_size)
        except DecodeError as exc:
            self._reject(str(exc))
            return None
