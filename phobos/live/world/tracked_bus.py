"""The environment's message bus as the world server builds it, with a sample for telemetry.

The environment asks for its bus through a factory (``message_bus=``); :func:`make_bus` is
the world's, choosing between the in-process router and the relay over ZeroMQ, and wrapping
either in a :class:`TrackedBus` so that the dashboard can draw messages in flight without the
environment knowing of telemetry.

It also keeps the ledger the dashboard shows, each term counted on its own where the copy's
fate is decided, never as a remainder: ``sent`` (copies offered, by the router),
``delivered`` (copies handed to the environment, counted here as they are),
``held`` (copies in the router's queues now: scheduled or in flight, or stuck without a
contact), ``dropped_buffer`` and ``dropped_loss`` (tail drops and channel losses, by the
router). A copy that vanished anywhere (a hop that dropped it, a bug) leaves
``unaccounted = sent - delivered - held - dropped_buffer - dropped_loss`` above zero.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from typing import Literal

import zmq

from phobos.comms.bus import RelayedBus
from phobos.comms.link import LinkModel
from phobos.comms.message import BROADCAST, Message
from phobos.comms.router import Router, RouterStats
from phobos.comms.zmq_transport import ZmqClient, ZmqServer

# One inproc address per relay: a context may hold several worlds' buses at once.
_relay_ids = itertools.count()


class TrackedBus:
    """The environment's message bus, plus a sample of messages in flight for the dashboard.

    Delegates ``send``, ``deliver``, ``stats`` and ``close`` to ``inner``. While
    :attr:`capture` is set, each copy sent is noted with its arrival time (so the dashboard
    shows messages in flight with their light time); the world sets it only on the steps
    before a telemetry update, off the hot path.
    """

    def __init__(self, inner: Router | RelayedBus, links: LinkModel) -> None:
        self.inner = inner
        self.links = links
        self.capture = False
        self.flights: deque[tuple[str, str, float, float]] = deque(maxlen=64)
        self.router: Router = getattr(inner, "router", inner)
        self.handed = 0  # copies deliver() returned to the environment
        names = self.router.endpoints
        self._others = {e: [o for o in names if o != e] for e in names}

    @property
    def stats(self) -> RouterStats:
        """The router's counters."""
        return self.inner.stats

    def send(self, message: Message) -> int:
        """Offer ``message`` to the bus."""
        if self.capture:
            sender, now = message.sender, message.send_time
            receivers = (
                self._others[sender] if message.receiver == BROADCAST else [message.receiver]
            )
            for receiver in receivers:
                route = self.links.transit(sender, receiver, now)
                if route is not None and not route[2] and route[1] > route[0]:
                    self.flights.append((sender, receiver, float(route[0]), float(route[1])))
        return self.inner.send(message)

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
        """Close the inner bus's sockets, if it has any."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


def make_bus(
    relay: Literal["zmq", "memory"],
    context: zmq.Context,
    endpoints: Sequence[str],
    links: LinkModel,
    buffer_limit: int,
) -> TrackedBus:
    """A tracked bus over the in-process router (``memory``) or a relay on ``inproc://``."""
    if relay == "memory":
        return TrackedBus(Router(endpoints, links, buffer_limit), links)
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
    return TrackedBus(bus, links)
