"""A message bus that carries every message across real transports, through a relay.

:class:`RelayedBus` is a :class:`~phobos.comms.message_bus.MessageBus`, so an environment can
use it in the router's place: each message goes
from its sender's client endpoint to the relay's server endpoint, through the same
store-and-forward router, and out to each receiver's client endpoint, encoded on the wire
whenever the transport is a socket. It runs in lock-step in one thread (every hop is received
before the next send), which is what a seeded episode needs to give the same trajectory over
every transport as in-process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from phobos.comms.link import LinkModel
from phobos.comms.message import Message
from phobos.comms.message_bus import FlightSink
from phobos.comms.router import Router, RouterStats
from phobos.comms.transport import Transport, TransportError

RELAY = "relay"
"""Endpoint name of the relay's server end."""
HELLO = "hello"
"""Message kind each client sends once, so the relay knows every peer before routing."""


class RelayedBus:
    """Store-and-forward router behind a relay endpoint, reached over transports.

    Args:
        endpoints: Agent ids, as for :class:`~phobos.comms.router.Router`.
        links: The contact plan.
        buffer_limit: Most messages waiting per link.
        server: The relay's server-like endpoint.
        clients: One client-like endpoint per agent id, connected to ``server``.
        timeout: Seconds any single hop may take before the bus gives up.

    """

    def __init__(
        self,
        endpoints: Sequence[str],
        links: LinkModel,
        buffer_limit: int,
        *,
        server: Transport,
        clients: Mapping[str, Transport],
        timeout: float = 5.0,
    ) -> None:
        missing = set(endpoints) - set(clients)
        if missing:
            raise ValueError(f"no client endpoint for {', '.join(sorted(missing))}")
        self.router = Router(endpoints, links, buffer_limit)
        self.server = server
        self.clients = dict(clients)
        self.timeout = timeout
        for name in endpoints:
            self._hop(self.clients[name], self.server, Message(name, RELAY, HELLO, 0.0, -1))

    @property
    def stats(self) -> RouterStats:
        """The relay's router counters."""
        return self.router.stats

    def send(self, message: Message) -> int:
        """Carry ``message`` from its sender to the relay and offer it to the router."""
        received = self._hop(self.clients[message.sender], self.server, message)
        return self.router.send(received)

    def deliver(self, until: float) -> list[tuple[str, Message]]:
        """Route the copies due by ``until`` from the relay out to their receivers."""
        delivered = []
        for receiver, message in self.router.deliver(until):
            copy = self._hop(self.server, self.clients[receiver], message, to=receiver)
            delivered.append((receiver, copy))
        return delivered

    def capturing(self, into: FlightSink | None) -> contextlib.AbstractContextManager[None]:
        """The relay's router captures the flights (see the bus contract)."""
        return self.router.capturing(into)

    def close(self) -> None:
        """Close every endpoint (sockets with linger 0); a second call does nothing."""
        for client in self.clients.values():
            client.close()
        self.server.close()

    def _hop(
        self, source: Transport, target: Transport, message: Message, to: str | None = None
    ) -> Message:
        source.send(message, to=to)
        received = target.recv(self.timeout)
        if received is None:
            raise TransportError(
                f"{target.name!r} got nothing from {source.name!r} within {self.timeout} s"
            )
        return received
