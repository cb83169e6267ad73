"""One episode at the DTN relay: its contact plan, its router and what it holds per tick.

The plan is the world's (the tables of the environment's own
:class:`~phobos.comms.link.TabulatedLinks`); the router is the in-process
:class:`~phobos.comms.router.Router`, fed in lock-step: :meth:`Episode.route` offers one
tick's messages in a canonical order (sender in the plan's order, then sequence number) and
collects the copies due by the tick's end. Being deterministic in what it is fed, the router
is rebuilt after a relay restart by routing the journaled ticks again.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from phobos.comms.codec import EncodeError, encode
from phobos.comms.limits import quote
from phobos.comms.link import TabulatedLinks
from phobos.comms.message import BROADCAST, Message
from phobos.comms.router import Router
from phobos.live.dtn import protocol as r

TOTALS = ("sent", "routed", "dropped_buffer", "dropped_loss", "held_router")
"""Names of :meth:`Episode.stats`' values in the relay's ledger, in order."""


class Episode:
    """The relay's state for the current episode (rebuilt from the journal after a restart)."""

    def __init__(self, plan: Message) -> None:
        body = plan.payload
        self.number = plan.seq
        self.plan = plan
        self.endpoints = tuple(body["endpoints"])
        self.index = {name: i for i, name in enumerate(self.endpoints)}
        self.kinds = frozenset(body["kinds"])
        self.step_seconds = float(body["step_seconds"])
        rate = body.get("rate")
        links = TabulatedLinks(
            self.endpoints,
            self.step_seconds,
            np.asarray(body["open"], dtype=bool),
            np.asarray(body["delay"], dtype=np.float64),
            np.asarray(body["lost"], dtype=bool),
            None if rate is None else np.asarray(rate, dtype=np.float64),
        )
        self.router = Router(self.endpoints, links, int(body["buffer"]))
        self.accepted: dict[tuple[str, int], Message] = {}
        # Per sender: sequence numbers settled (accepted or refused), and how many from 0 are.
        self.settled: dict[str, set[int]] = {name: set() for name in self.endpoints}
        self.upto = dict.fromkeys(self.endpoints, 0)
        self.pending: dict[int, list[Message]] = defaultdict(list)
        self.done = -1  # last tick routed
        self.routed: list[Message] = []  # the messages of the last tick routed
        self.answer_meta: list[Any] = [0.0, {}]  # the last tick's end and the counts it used
        self.ready: dict[int, set[str]] = defaultdict(set)  # agents whose submit of a tick came
        self.answer: list[list[Any]] = []  # the copies of the last tick routed

    def accept(self, tick: int, message: Message) -> None:
        """Take ``message`` (for ``tick``) into this episode."""
        self.accepted[message.sender, message.seq] = message
        self.settle(message.sender, message.seq)
        self.pending[tick].append(message)

    def settle(self, sender: str, seq: int) -> None:
        """Note that ``sender``'s message ``seq`` was accepted or refused."""
        settled = self.settled[sender]
        settled.add(seq)
        upto = self.upto[sender]
        while upto in settled:
            upto += 1
        self.upto[sender] = upto

    def route(self, tick: int, until: float) -> list[tuple[str, Message]]:
        """Offer the tick's messages to the router in canonical order; the copies due."""
        index = self.index
        batch = sorted(self.pending.pop(tick, ()), key=lambda m: (index[m.sender], m.seq))
        for message in batch:
            self.router.send(message)
        self.done = tick
        self.routed = batch
        return self.router.deliver(until)

    def flights(self) -> list[list[Any]]:
        """``[sender, receiver, depart, arrive]`` of the last tick's copies that will fly."""
        out = []
        transit = self.router.links.transit
        for message in self.routed:
            sender = message.sender
            receivers = (
                [e for e in self.endpoints if e != sender]
                if message.receiver == BROADCAST
                else [message.receiver]
            )
            for receiver in receivers:
                route = transit(sender, receiver, message.send_time)
                if route is not None and not route[2] and route[1] > route[0]:
                    out.append([sender, receiver, float(route[0]), float(route[1])])
        return out

    def stats(self) -> list[int]:
        """The router's ``[sent, delivered, rejected, lost, held]`` (:data:`_TOTALS`)."""
        router, stats = self.router, self.router.stats
        held = router.in_flight() + router.stuck()
        return [stats.sent, stats.delivered, stats.rejected, stats.lost, held]

    def admit(self, user: str, item: Any) -> tuple[str | None, int, Any, bytes]:
        """Why ``user``'s submitted ``item`` is refused (or None), its tick, message, frame.

        ``item`` comes off the wire: every field is checked before it is used, and the
        message's encoded size is bounded (:data:`~phobos.live.dtn.protocol.MAX_MESSAGE_BYTES`).
        """
        episode = self
        if not (isinstance(item, list) and len(item) == 5):
            return "a message is [receiver, kind, send_time, seq, payload]", 0, None, b""
        receiver, kind, send_time, seq, body = item
        if not (isinstance(receiver, str) and isinstance(kind, str)):
            return "receiver and kind must be strings", 0, None, b""
        if type(seq) is not int or not 0 <= seq < 2**62:
            return f"bad sequence number {quote(seq)}", 0, None, b""
        if type(send_time) is not float or not math.isfinite(send_time) or send_time < 0:
            return f"bad send time {quote(send_time)}", 0, None, b""
        if receiver != BROADCAST and (receiver not in episode.index or receiver == user):
            return f"unknown receiver {quote(receiver)}", 0, None, b""
        if kind not in episode.kinds:
            return f"unknown message kind {quote(kind)}", 0, None, b""
        message = Message(user, receiver, kind, send_time, seq, body)
        try:
            frame = encode(message, r.MAX_FRAME_BYTES)
        except EncodeError as exc:
            return f"cannot encode the message: {exc}", 0, None, b""
        if len(frame) > r.MAX_MESSAGE_BYTES:
            return f"message over {r.MAX_MESSAGE_BYTES} bytes", 0, None, b""
        tick = math.floor(send_time / episode.step_seconds)
        if tick <= episode.done and (user, seq) not in episode.accepted:
            return f"late: step {tick} is routed already", tick, None, b""
        return None, tick, message, frame
