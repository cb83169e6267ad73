"""The one contract every message bus meets: what an environment sends its messages through.

An environment never knows which bus carries its messages. It asks a
:data:`MessageBusFactory` for one per episode, with its endpoints, the episode's contact plan
and the per-link buffer limit, and from then on only calls the :class:`MessageBus` methods.
Three implementations meet the contract, and one set of tests runs over all of them
(``tests/comms/test_message_bus.py``):

- :class:`~phobos.comms.router.Router`, the in-process store-and-forward router (the default,
  and what training runs);
- :class:`~phobos.comms.bus.RelayedBus`, the same router behind a relay endpoint, every message
  carried over real transports (in-process hub with the codec, or ZeroMQ);
- ``phobos.live.world.tracked_bus.TrackedBus``, the world server's wrapper of either, which also
  keeps the dashboard's ledger.

Lock-step contract:
    A bus is driven from one thread, in the environment's order: within a step, every
    :meth:`~MessageBus.send` of that step, then one :meth:`~MessageBus.deliver` up to the
    step's end. ``send`` returns only once the bus has accepted or refused the message, and
    ``deliver`` returns every copy due by ``until``, in arrival order (ties in the order sent),
    so a seeded episode delivers the same copies at the same steps over every bus. Nothing is
    delivered between calls; no bus spawns a thread or keeps a message past ``deliver``.

Capture:
    The dashboard draws a sample of messages in flight. Asking for it is the caller's business
    and recording it the bus's: :meth:`~MessageBus.capturing` records, for the messages sent
    inside its block, one :class:`Flight` per copy that will arrive, into a sequence the caller
    owns. Outside such a block a bus records nothing (the hot path pays nothing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, MutableSequence, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from phobos.comms.link import LinkModel
from phobos.comms.message import Message

if TYPE_CHECKING:
    from phobos.comms.router import RouterStats


class Flight(NamedTuple):
    """One copy on its way, as the dashboard draws it."""

    sender: str
    """Endpoint that sent it."""
    receiver: str
    """Endpoint it is for."""
    depart_time: float
    """Simulated seconds when it leaves (its link's next contact, at or after sending)."""
    arrival_time: float
    """Simulated seconds when it arrives (one light time later, more on a busy link)."""


FlightSink = MutableSequence[Flight]
"""Where a bus appends the :class:`Flight` values it captures (a bounded ``deque`` is usual)."""


@runtime_checkable
class MessageBus(Protocol):
    """A store-and-forward message bus between named endpoints (module notes: the contract).

    Every member is required; none has a default.
    """

    @property
    def stats(self) -> RouterStats:
        """Counters since the bus was built: ``sent``, ``rejected``, ``delivered``, ``lost``.

        Each copy offered (a broadcast counts once per receiver) is counted in ``sent`` and,
        once its fate is decided, in exactly one of the other three, or it is still held.
        """
        ...

    def send(self, message: Message) -> int:
        """Accept ``message`` (to one receiver or :data:`~phobos.comms.message.BROADCAST`).

        Returns:
            How many copies were accepted: the receivers, less those whose link buffer was
            full (tail drop; counted in ``stats.rejected``).

        Raises:
            ValueError: if the sender or the receiver is not an endpoint of this bus.

        """
        ...

    def deliver(self, until: float) -> list[tuple[str, Message]]:
        """Pop every copy that has arrived by ``until`` (simulated seconds).

        Returns:
            ``(receiver, message)`` pairs in arrival order, each copy once; copies the channel
            lost are counted in ``stats.lost`` instead.

        """
        ...

    def capturing(self, into: FlightSink | None) -> contextlib.AbstractContextManager[None]:
        """A context in which each copy accepted that will arrive is appended to ``into``.

        Copies refused (full buffer), lost by the channel, or with no contact left in the plan
        are not flights and are not appended.

        Args:
            into: Where to append one :class:`Flight` per such copy, in the order sent; None
                records nothing, so a caller can pass it on steps it does not sample without
                a second code path.

        """
        ...

    def close(self) -> None:
        """Release what the bus holds (sockets with linger 0); a second call does nothing."""
        ...


MessageBusFactory = Callable[[Sequence[str], LinkModel, int], MessageBus]
"""Builds an episode's bus from ``(endpoints, links, buffer_limit)``; ``Router`` is one."""
