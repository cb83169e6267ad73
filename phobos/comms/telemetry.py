"""Telemetry over ZeroMQ PUB/SUB: for data a dashboard may miss, never for lock-step traffic.

PUB/SUB drops by design. A subscriber misses everything published before its subscription
reached the publisher (the "slow joiner"), and once a subscriber's queue (``hwm`` messages)
is full, the publisher drops what it cannot queue rather than wait. Nothing here retries.

Each message is one frame, ``kind`` + NUL + the codec frame, so that a subscriber filters by
kind with ZeroMQ's prefix subscription and nothing else is parsed for messages it skipped.
Either end may bind: a world server that publishes binds its PUB; a dashboard that collects
from many agents binds its SUB.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import zmq

from phobos.comms.closing import Closing
from phobos.comms.codec import MAX_FRAME_SIZE, DecodeError, decode, encode
from phobos.comms.message import Message
from phobos.comms.security import KeyPair
from phobos.comms.transport import TransportError, check_timeout, log_rejection
from phobos.comms.zmq_transport import make_socket, milliseconds

_SEPARATOR = b"\x00"


class _TelemetryEnd(Closing):
    """Socket ownership shared by the two ends."""

    _sock: zmq.Socket

    def _attach(self, address: str, bind: bool) -> None:
        try:
            if bind:
                self._sock.bind(address)
            else:
                self._sock.connect(address)
        except BaseException:
            self._sock.close(linger=0)
            raise

    @property
    def address(self) -> str:
        """The endpoint last bound or connected, with a wildcard port resolved."""
        return self._sock.last_endpoint.decode()

    @property
    def socket(self) -> zmq.Socket:
        """The underlying socket, for polling together with others."""
        return self._sock

    def close(self) -> None:
        """Close the socket with linger 0 (queued messages are dropped). Twice is allowed."""
        if not self._sock.closed:
            self._sock.close(linger=0)


class TelemetryPublisher(_TelemetryEnd):
    """PUB end: publishes messages by kind; never blocks, may drop.

    Args:
        address: Where to bind (default) or connect.
        bind: Bind ``address``; False connects to a subscriber that binds.
        context: ZeroMQ context (required to share ``inproc://``); default the global one.
        curve: CURVE keys: the binding end acts as CURVE server, the connecting end as client
            and also needs ``server_key``.
        server_key: The binding end's CURVE public key, when this end connects.
        max_size: Largest frame, in bytes.
        hwm: Messages queued per subscriber before further ones are dropped.

    Attributes:
        published: Messages handed to ZeroMQ (not necessarily delivered).

    """

    def __init__(
        self,
        address: str,
        *,
        bind: bool = True,
        context: zmq.Context | None = None,
        curve: KeyPair | None = None,
        server_key: bytes | None = None,
        max_size: int = MAX_FRAME_SIZE,
        hwm: int = 1000,
    ) -> None:
        self.max_size = max_size
        self.published = 0
        self._sock = make_socket(context, zmq.PUB, max_size, 0.0, curve, server_key)
        self._sock.sndhwm = hwm
        self._attach(address, bind)

    def publish(self, message: Message) -> None:
        """Publish ``message`` under its kind; returns at once whether or not anyone listens.

        Raises:
            ValueError: if the kind contains a NUL character.
            phobos.comms.codec.EncodeError: if the message cannot be encoded.
            TransportError: if the publisher is closed.

        """
        topic = message.kind.encode()
        if _SEPARATOR in topic:
            raise ValueError(f"telemetry kind {message.kind!r} contains NUL")
        frame = topic + _SEPARATOR + encode(message, self.max_size)
        if self._sock.closed:
            raise TransportError("telemetry publisher is closed")
        try:
            self._sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            return  # PUB drops rather than blocks; kept for a connecting PUB with no peers yet
        self.published += 1


class TelemetrySubscriber(_TelemetryEnd):
    """SUB end: receives the kinds it subscribed to, as they come, with gaps.

    Args:
        address: Where to connect (default) or bind.
        kinds: Message kinds to receive; empty receives every kind.
        bind: Bind ``address``; False connects to a publisher that binds.
        context: ZeroMQ context (required to share ``inproc://``); default the global one.
        curve: CURVE keys, as for :class:`TelemetryPublisher`.
        server_key: The binding end's CURVE public key, when this end connects.
        max_size: Largest frame, in bytes.
        hwm: Messages queued before further ones are dropped.

    Attributes:
        rejected: Frames that were not valid telemetry, counted, logged and skipped.

    """

    def __init__(
        self,
        address: str,
        kinds: Iterable[str] = (),
        *,
        bind: bool = False,
        context: zmq.Context | None = None,
        curve: KeyPair | None = None,
        server_key: bytes | None = None,
        max_size: int = MAX_FRAME_SIZE,
        hwm: int = 1000,
    ) -> None:
        self.max_size = max_size
        self.rejected = 0
        # The topic prefix and separator make the frame longer than the codec frame.
        self._sock = make_socket(context, zmq.SUB, max_size + 256, 0.0, curve, server_key)
        self._sock.rcvhwm = hwm
        topics = [kind.encode() + _SEPARATOR for kind in kinds] or [b""]
        for topic in topics:
            if _SEPARATOR in topic[:-1]:
                self._sock.close(linger=0)
                raise ValueError(f"telemetry kind {topic[:-1]!r} contains NUL")
            self._sock.subscribe(topic)
        self._attach(address, bind)

    def recv(self, timeout: float) -> Message | None:
        """Return the next valid message, or None if none arrives within ``timeout`` seconds.

        Raises:
            ValueError: if ``timeout`` is negative or not finite.
            TransportError: if the subscriber is closed.

        """
        check_timeout(timeout)
        if self._sock.closed:
            raise TransportError("telemetry subscriber is closed")
        deadline = time.monotonic() + timeout
        while self._sock.poll(milliseconds(timeout), zmq.POLLIN):
            frame = self._sock.recv()
            extra = 0
            while self._sock.rcvmore:
                self._sock.recv()
                extra += 1
            message = self._parse(frame, extra)
            if message is not None:
                return message
            timeout = max(0.0, deadline - time.monotonic())
        return None

    def _parse(self, frame: bytes, extra: int) -> Message | None:
        topic, separator, body = frame.partition(_SEPARATOR)
        try:
            if extra:
                raise DecodeError(f"telemetry message of {extra + 1} frames, expected 1")
            if not separator:
                raise DecodeError("telemetry frame has no kind separator")
            message = decode(body, self.max_size)
            if message.kind.encode() != topic:
                raise DecodeError(f"kind {message.kind!r} does not match topic {topic!r}")
        except DecodeError as exc:
            self.rejected += 1
            log_rejection("telemetry subscriber", self.rejected, str(exc))
            return None
        return message
