"""Messaging between agents: envelopes, link models, the store-and-forward router, transports.

Every message bus an environment can be given (the router, the relayed bus, the world's
tracked bus) meets one contract, :class:`~phobos.comms.message_bus.MessageBus`.

The ZeroMQ pieces live in their own modules, imported where needed, so that code that only
runs in-process never loads pyzmq: :mod:`phobos.comms.zmq_transport` (ROUTER/DEALER),
:mod:`phobos.comms.telemetry` (PUB/SUB) and :mod:`phobos.comms.security` (CURVE).

Reliable, durable delivery between processes: :mod:`phobos.comms.reliable` (acknowledgements,
retransmission, duplicate window), :mod:`phobos.comms.endpoint` (an agent's end),
:mod:`phobos.comms.relay` (the journaled relay; not imported here, so that
``python -m phobos.comms.relay`` runs it once),
:mod:`phobos.comms.journal` (SQLite) and :mod:`phobos.comms.liveness` (heartbeats).
"""

from phobos.comms.codec import MAX_FRAME_SIZE, DecodeError, EncodeError, decode, encode
from phobos.comms.endpoint import ReliableEndpoint
from phobos.comms.journal import Journal
from phobos.comms.link import LinkModel, TabulatedLinks
from phobos.comms.message import BROADCAST, PROTOCOL_VERSION, Message
from phobos.comms.message_bus import Flight, MessageBus, MessageBusFactory
from phobos.comms.reliable import (
    DedupWindow,
    ReliableConfig,
    ReliableStats,
    RetransmitQueue,
    RetryPolicy,
)
from phobos.comms.router import Router, RouterStats
from phobos.comms.transport import InProcessHub, InProcessTransport, Transport, TransportError

__all__ = [
    "BROADCAST",
    "MAX_FRAME_SIZE",
    "PROTOCOL_VERSION",
    "DecodeError",
    "DedupWindow",
    "EncodeError",
    "Flight",
    "InProcessHub",
    "InProcessTransport",
    "Journal",
    "LinkModel",
    "Message",
    "MessageBus",
    "MessageBusFactory",
    "ReliableConfig",
    "ReliableEndpoint",
    "ReliableStats",
    "RetransmitQueue",
    "RetryPolicy",
    "Router",
    "RouterStats",
    "TabulatedLinks",
    "Transport",
    "TransportError",
    "decode",
    "encode",
]
