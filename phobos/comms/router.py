"""Store-and-forward router: holds messages until their link exists, then delivers them late.

One router serves every transport: the environments call it in-process, and the world server
runs the same object behind ZeroMQ, so a seeded episode delivers the same messages either way.

Semantics, per directed link (sender, receiver):
- A message waits in the sender's buffer for that link until the link model's next contact,
  then travels for one light time. Departures are first-in first-out.
- At most ``buffer_limit`` messages wait per link. A message that finds the buffer full is
  rejected and counted (tail drop): nothing already accepted is ever evicted.
- A link with a finite data rate (:meth:`LinkModel.rate_bps`) carries one message at a
  time: the next leaves when the previous one's last bit has, so a burst after a long
  closure drains at the link's rate. The size is the message's encoded size.
- A message the channel loses is counted as lost when it would have arrived.

The router is the reference :class:`~phobos.comms.message_bus.MessageBus`: the contract,
capture included, is written in :mod:`phobos.comms.message_bus`.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from phobos.comms.codec import encode
from phobos.comms.link import LinkModel
from phobos.comms.message import BROADCAST, Message
from phobos.comms.message_bus import Flight, FlightSink


@dataclass
class RouterStats:
    """Counters since the router was created (per episode in the environments).

    Attributes:
        sent: Copies offered to links (a broadcast counts once per receiver).
        rejected: Copies refused because the link's buffer was full.
        delivered: Copies handed to their receiver.
        lost: Copies the channel lost in flight.

    """

    sent: int = 0
    rejected: int = 0
    delivered: int = 0
    lost: int = 0


class Router:
    """Delay-tolerant store-and-forward router between named endpoints.

    Args:
        endpoints: Every endpoint id that may send or receive.
        links: The contact plan.
        buffer_limit: Most messages that may wait for one link at once.

    """

    def __init__(self, endpoints: Sequence[str], links: LinkModel, buffer_limit: int) -> None:
        if buffer_limit < 1:
            raise ValueError(f"buffer_limit must be at least 1, got {buffer_limit}")
        self.endpoints = tuple(endpoints)
        self.links = links
        self.buffer_limit = buffer_limit
        self.stats = RouterStats()
        self._others = {e: tuple(o for o in self.endpoints if o != e) for e in self.endpoints}
        self._waiting: dict[tuple[str, str], deque[float]] = {
            (a, b): deque() for a in self.endpoints for b in self.endpoints if a != b
        }
        self._in_flight: list[tuple[float, int, list[str], Message, bool]] = []
        self._order = itertools.count()
        # Unlimited links (the environments' intents) skip the per-copy rate lookup.
        self._rated = links.rate_limited
        self._busy_until: dict[tuple[str, str], float] = {}
        self._flights: FlightSink | None = None  # set only inside capturing()

    def send(self, message: Message) -> int:
        """Accept ``message`` (to one receiver or a broadcast); return how many copies were taken.

        Raises:
            ValueError: if the sender or receiver is not an endpoint of this router.

        """
        others = self._others.get(message.sender)
        if others is None:
            raise ValueError(
                f"unknown sender {message.sender!r}; endpoints: {', '.join(self.endpoints)}"
            )
        if message.receiver == BROADCAST:
            receivers = others
        elif message.receiver in others:
            receivers = (message.receiver,)
        else:
            raise ValueError(
                f"unknown receiver {message.receiver!r} for sender {message.sender!r}; "
                f"endpoints: {', '.join(self.endpoints)}"
            )
        now = message.send_time
        sender = message.sender
        limit = self.buffer_limit
        transit = self.links.transit
        rate_bps = self.links.rate_bps
        rated = self._rated
        in_flight = self._in_flight
        flights = self._flights
        rejected = 0
        # Copies that arrive together (a broadcast to stations seeing Mars at once) share one
        # heap entry: half the heap work on the environments' hot path, same delivery order.
        groups: dict[tuple[float, bool], list[str]] = {}
        for receiver in receivers:
            waiting = self._waiting[sender, receiver]
            while waiting and waiting[0] <= now:
                waiting.popleft()
            if len(waiting) >= limit:
                rejected += 1
                continue
            route = transit(sender, receiver, now)
            if route is None:
                # No contact in the plan: it waits (and fills the buffer) for good.
                waiting.append(math.inf)
                continue
            depart_time, arrival_time, lost = route
            rate = rate_bps(sender, receiver, depart_time) if rated else math.inf
            if rate != math.inf:
                depart_time, arrival_time = self._serialise(
                    sender, receiver, message, depart_time, arrival_time, rate
                )
                if depart_time == math.inf:
                    waiting.append(math.inf)
                    continue
            waiting.append(depart_time)
            if flights is not None and not lost and arrival_time > depart_time:
                flights.append(Flight(sender, receiver, float(depart_time), float(arrival_time)))
            group = groups.get((arrival_time, lost))
            if group is None:
                groups[arrival_time, lost] = [receiver]
            else:
                group.append(receiver)
        order = self._order
        for (arrival_time, lost), group in groups.items():
            heapq.heappush(in_flight, (arrival_time, next(order), group, message, lost))
        stats = self.stats
        stats.sent += len(receivers)
        stats.rejected += rejected
        return len(receivers) - rejected

    @contextlib.contextmanager
    def capturing(self, into: FlightSink | None) -> Iterator[None]:
        """Within the block, append a :class:`Flight` to ``into`` for each copy that will arrive."""
        previous, self._flights = self._flights, into
        try:
            yield
        finally:
            self._flights = previous

    def close(self) -> None:
        """Nothing to release: the router holds no sockets (the bus contract asks for it)."""

    def _serialise(
        self,
        sender: str,
        receiver: str,
        message: Message,
        depart_time: float,
        arrival_time: float,
        rate: float,
    ) -> tuple[float, float]:
        """Departure and arrival once the link has finished sending what went before."""
        busy_until = self._busy_until.get((sender, receiver), -math.inf)
        if busy_until > depart_time:
            later = self.links.transit(sender, receiver, busy_until)
            if later is None:
                return math.inf, math.inf
            delay = later[1] - later[0]
            depart_time = max(later[0], busy_until)
            arrival_time = depart_time + delay
            rate = self.links.rate_bps(sender, receiver, depart_time)
        duration = 8.0 * len(encode(message)) / rate
        self._busy_until[sender, receiver] = depart_time + duration
        return depart_time, arrival_time + duration

    def deliver(self, until: float) -> list[tuple[str, Message]]:
        """Pop every copy that has arrived by ``until``, as ``(receiver, message)`` pairs."""
        delivered = []
        in_flight = self._in_flight
        stats = self.stats
        while in_flight and in_flight[0][0] <= until:
            _, _, receivers, message, lost = heapq.heappop(in_flight)
            if lost:
                stats.lost += len(receivers)
            else:
                stats.delivered += len(receivers)
                delivered.extend([(receiver, message) for receiver in receivers])
        return delivered

    def held(self, now: float) -> int:
        """Copies accepted but not yet departed at ``now`` (waiting for a contact)."""
        return sum(sum(1 for t in q if t > now) for q in self._waiting.values())

    def in_flight(self) -> int:
        """Copies that have departed or are scheduled, not yet delivered or lost."""
        return sum(len(receivers) for _, _, receivers, _, _ in self._in_flight)

    def stuck(self) -> int:
        """Copies accepted for a link with no contact left in the plan (held for good)."""
        return sum(sum(1 for t in q if t == math.inf) for q in self._waiting.values())
