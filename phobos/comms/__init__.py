"""Messaging between agents: envelopes, link models, the store-and-forward router, transports."""

from phobos.comms.link import LinkModel, TabulatedLinks, Transit
from phobos.comms.message import BROADCAST, PROTOCOL_VERSION, Message
from phobos.comms.router import Router, RouterStats

__all__ = [
    "BROADCAST",
    "PROTOCOL_VERSION",
    "LinkModel",
    "Message",
    "Router",
    "RouterStats",
    "TabulatedLinks",
    "Transit",
]
