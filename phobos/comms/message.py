"""Typed, versioned message envelopes exchanged between agents.

A :class:`Message` is an immutable value. Its ``payload`` holds plain data (numbers, strings,
lists, dicts and numpy arrays); the wire encoding lives in its own module so that the
protocol, the transports and the application stay separate (zguide's MDP split).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
"""Version of the envelope layout; decoders reject any other value."""

BROADCAST = "*"
"""Receiver id meaning every other endpoint the router knows."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message between agents.

    Attributes:
        sender: Agent id of the sender.
        receiver: Agent id of the receiver, or :data:`BROADCAST`.
        kind: What the payload is (for example ``"intent"``).
        send_time: Simulated send time in seconds since the episode started.
        seq: Sender's sequence number, counting from 0 each episode.
        payload: Plain data; numpy arrays are allowed.
        version: Envelope version, :data:`PROTOCOL_VERSION` when created here.

    """

    sender: str
    receiver: str
    kind: str
    send_time: float
    seq: int
    payload: Any = None
    version: int = PROTOCOL_VERSION

    @property
    def message_id(self) -> str:
        """Identifier unique within an episode: receivers drop duplicates by it."""
        return f"{self.sender}/{self.seq}"
