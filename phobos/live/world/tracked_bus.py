"""The environment's message bus as the world server builds it, with the dashboard's ledger.

The environment asks for its bus through a factory (``message_bus=``); :func:`make_bus` is
the world's, choosing between the in-process router and the relay over ZeroMQ, and wrapping
either in a :class:`TrackedBus`. Both ends meet one contract,
:class:`~phobos.comms.message_bus.MessageBus`: the world samples messages in flight for the
dashboard by asking the bus (``with bus.capturing(flights): env.step(...)``), and the
environment never knows of telemetry.

It also keeps the ledger the dashboard shows, each term counted on its own where the copy's
fate is decided, never as a remainder: ``sent`` (copies offered, by the router),
``delivered`` (copies handed to the environment, counted here as they are),
``held`` (copies in the router's queues now: scheduled or in flight, or stuck without a
contact), ``dropped_buffer`` and ``dropped_loss`` (tail drops and channel losses, by the
router). A copy that vanished anywhere (a hop that dropped it, a bug) leaves
``unaccounted = sent - delivered - held - dropped_buffer - dropped_loss`` above zero.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from typing import Literal

import zmq

from phobos.comms.bus import RelayedBus
from phobos.comms.link import LinkModel
from phobos.comms.message import Message
from phobos.comms.message_bus import FlightSink
from phobos.comms.router import Router, RouterStats
from phobos.comms.zmq_transport import ZmqClient, ZmqServer

# One inproc address per relay: a context may hold several worlds' buses at once.
_relay_ids = itertools.count()


class TrackedBus:
    """The environment's message bus, plus the ledger of every copy's fate for the dashboard.

    Delegates ``send``, ``deliver``, ``stats``, ``capturing`` and ``close`` to ``inner`` (the
    router or the relayed bus), counting the copies it hands to the environment.
    """

    def __init__(self, inner: Router | RelayedBus) -> None:
        self.inner = inner
        self.router: Router = inner if isinstance(inner, Router) else inner.router
        self.handed = 0  # copies deliver() returned to the environment

    @property
    def stats(self) -> RouterStats:
        """The router's counters."""
        return self.inner.stats

    def send(self, message: Message) -> int:
        """Offer ``message`` to the bus."""
        return self.inner.send(message)

    def capturing(self, into: FlightSink | None) -> contextlib.AbstractContextManager[None]:
        """The inner bus captures the flights (see the bus contract)."""
        return self.inner.capturing(into)

    def deliver(self, until: float) -> list[tuple[str, Message]]:
        """Copies due by ``until``."""
        delivered = self.inner.deliver(until)
        self.handed += len(delivered)
        return delivered

    def ledger(self) -> dict[str, int]:
        """The fate of every copy sent, each term counted independently (module notes)."""
        router, stats = self.router, self.inner.stats
        ledger = {
            "sent": stats.sent,
            "delivered": self.handed,
            "held": router.in_flight() + router.stuck(),
            "dropped_buffer": stats.rejected,
            "dropped_loss": stats.lost,
        }
        ledger["dropped"] = stats.rejected + stats.lost
        ledger["unaccounted"] = ledger["sent"] - sum(
            ledger[k] for k in ("delivered", "held", "dropped_buffer", "dropped_loss")
        )
        return ledger

    def close(self) -> None:
        """Close the inner bus (its sockets, if it has any)."""
        self.inner.close()


def make_bus(
    relay: Literal["zmq", "memory"],
    context: zmq.Context,
    endpoints: Sequence[str],
    links: LinkModel,
    buffer_limit: int,
) -> TrackedBus:
    """A tracked bus over the in-process router (``memory``) or a relay on ``inproc://``."""
    if relay == "memory":
        return TrackedBus(Router(endpoints, links, buffer_limit))
    address = f"inproc://phobos-relay-{next(_relay_ids)}"
    server = ZmqServer(address, "relay", context=context)
    clients = {}
    try:
        for name in endpoints:
            clients[name] = ZmqClient(address, name, context=context)
        bus = RelayedBus(endpoints, links, buffer_limit, server=server, clients=clients)
    except BaseException:
        for client in clients.values():
            client.close()
        server.close()
        raise
    return TrackedBus(bus)
