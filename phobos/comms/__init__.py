"""Messaging between agents: envelopes, link models, the store-and-forward router, transports.

The ZeroMQ pieces live in their own modules, imported where needed, so that code that only
runs in-process never loads pyzmq: :mod:`phobos.comms.zmq_transport` (ROUTER/DEALER),
:mod:`phobos.comms.telemetry` (PUB/SUB) and :mod:`phobos.comms.security` (CURVE).
"""

from phobos.comms.codec import MAX_FRAME_SIZE, DecodeError, EncodeError, decode, encode
from phobos.comms.link import LinkModel, TabulatedLinks, Transit
from phobos.comms.message import BROADCAST, PROTOCOL_VERSION, Message
from phobos.comms.router import Router, RouterStats
from phobos.comms.transport import InProcessHub, InProcessTransport, Transport, TransportError

__all__ = [
    "BROADCAST",
    "MAX_FRAME_SIZE",
    "PROTOCOL_VERSION",
    "DecodeError",
    "EncodeError",
    "InProcessHub",
    "InProcessTransport",
    "LinkModel",
    "Message",
    "Router",
    "RouterStats",
    "TabulatedLinks",
    "Transit",
    "Transport",
    "TransportError",
    "decode",
    "encode",
]
