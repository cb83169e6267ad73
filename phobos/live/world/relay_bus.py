"""The environment's message bus when every agent process sends its own messages.

With ``relay="process"`` the world does not carry messages: each agent process submits what
it builds to the DTN relay process (:mod:`phobos.live.dtn`), and the environment's bus here
only asks the relay, once per step, what arrives. :class:`ProcessRelayBus` has the router's
contract (:class:`~phobos.comms.message_bus.MessageBus`: ``send``, ``deliver``, ``stats``,
``capturing``, ``close``) plus the dashboard's ``ledger``:

- at construction (the environment's ``reset``) it sends the relay the episode's contact
  plan, the tables of the environment's own :class:`~phobos.comms.link.TabulatedLinks`;
- ``send`` is the environment building the same message in-process: not sent (its agent
  sends it), only counted in :attr:`ProcessRelayBus.built`;
- ``deliver(until)`` is the step's end: it sends ``tick`` with the counts the agents gave
  with their actions (:attr:`ProcessRelayBus.expect`, set by the world before each step) and
  returns the relay's copies, which the environment takes as delivered. A copy handed twice
  (a relay that replayed wrongly) is counted in ``duplicated`` and not handed again;
- inside ``capturing(into)`` the tick asks the relay for the step's copies in flight (the
  relay's own record, from its router's contact plan) and appends them to ``into``.

:class:`RelayLink` is the world's DEALER to the relay (tcp+CURVE): a request waits ``retry``
seconds for its answer, then the socket is rebuilt and the request sent again (Lazy
Pirate), up to ``patience`` seconds in all, so a relay killed and restarted by its supervisor
costs the world a pause, not the episode; past that it raises
:class:`~phobos.comms.transport.TransportError`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import zmq

from phobos.comms.codec import DecodeError, decode, encode
from phobos.comms.link import TabulatedLinks
from phobos.comms.message import Message
from phobos.comms.message_bus import Flight, FlightSink
from phobos.comms.router import RouterStats
from phobos.comms.security import KeyPair
from phobos.comms.transport import TransportError
from phobos.comms.zmq_transport import make_socket, milliseconds
from phobos.live.dtn import protocol as r

log = logging.getLogger(__name__)
WORLD = "world"


class RelayLink:
    """The world's request-reply connection to the DTN relay; see the module docstring."""

    def __init__(
        self,
        address: str,
        keys: KeyPair,
        relay_key: bytes,
        context: zmq.Context,
        retry: float = 0.5,
        patience: float = 60.0,
    ) -> None:
        self.address, self.keys, self.relay_key, self.context = address, keys, relay_key, context
        self.retry, self.patience = retry, patience
        self.retries = 0
        self.sock: zmq.Socket | None = None
        self._connect()

    def _connect(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
        sock = self.sock = make_socket(
            self.context, zmq.DEALER, r.MAX_FRAME_BYTES, 0.0, self.keys, self.relay_key
        )
        sock.connect(self.address)

    def request(
        self,
        kind: str,
        payload: Any,
        answers: Sequence[str],
        seq: int = 0,
        retry: float | None = None,
    ) -> Message:
        """Send one request; return the first answer of a kind in ``answers``.

        ``retry`` (default :attr:`retry`): seconds to wait for the answer before sending again.
        """
        retry = self.retry if retry is None else retry
        frame = encode(Message(WORLD, r.RELAY, kind, 0.0, seq, payload), r.MAX_FRAME_BYTES)
        deadline = time.monotonic() + self.patience
        while True:
            try:
                self.sock.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                pass  # not connected yet: the poll below times out and we try again
            until = min(time.monotonic() + retry, deadline)
            while (left := until - time.monotonic()) > 0 and self.sock.poll(milliseconds(left)):
                try:
                    answer = decode(self.sock.recv(), r.MAX_FRAME_BYTES)
                except DecodeError:
                    continue
                if answer.sender == r.RELAY and answer.kind in answers:
                    return answer
            if time.monotonic() >= deadline:
                raise TransportError(
                    f"the DTN relay at {self.address} did not answer {kind} in {self.patience} s"
                )
            self.retries += 1
            if self.retries == 1 or self.retries % 20 == 0:
                log.warning("world: no answer from the relay to %s; retrying", kind)
            self._connect()

    def take(self, kind: str, match: Any, timeout: float) -> Message | None:
        """An answer of ``kind`` for which ``match(answer)`` holds, sent unasked; or None."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and self.sock.poll(milliseconds(left)):
            try:
                answer = decode(self.sock.recv(), r.MAX_FRAME_BYTES)
            except DecodeError:
                continue
            if answer.sender == r.RELAY and answer.kind == kind and match(answer):
                return answer
        return None

    def close(self) -> None:
        """Close the socket (linger 0)."""
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None


class ProcessRelayBus:
    """One episode's bus through the DTN relay process; see the module docstring.

    Args:
        link: The world's connection to the relay.
        episode: The episode's number (the relay keys its state by it).
        kinds: The message kinds of the task.
        endpoints: The agents.
        links: The environment's contact plan for the episode.
        buffer_limit: Most messages waiting per link.

    """

    def __init__(
        self,
        link: RelayLink,
        episode: int,
        kinds: Sequence[str],
        endpoints: Sequence[str],
        links: TabulatedLinks,
        buffer_limit: int,
    ) -> None:
        self.link, self.episode = link, episode
        self.links = links
        open_, delay, lost, rate = links.tables
        self.plan = {
            "endpoints": list(endpoints),
            "step_seconds": links.step_seconds,
            "buffer": int(buffer_limit),
            "kinds": list(kinds),
            "open": open_,
            "delay": delay,
            "lost": lost,
            "rate": rate,
        }
        self.send_plan()
        self.expect: dict[str, int] = {}
        """Per agent, the messages it said it has submitted this episode (set each step)."""
        self._into: FlightSink | None = None
        self.stats = RouterStats()
        self.held = 0
        self.built = 0
        self.handed = 0
        self.duplicated = 0
        self.ahead = 0  # steps the relay answered unasked
        self.mismatched = 0  # of those, answers counted otherwise than the actions said
        self.log: list[tuple[str, Message]] = []
        """Every copy handed to the environment, as ``(receiver, message)``."""
        self._seen: set[tuple[str, str, int]] = set()
        self._tick = 0

    def send_plan(self) -> None:
        """Give the relay this episode's contact plan."""
        self.link.request(r.PLAN, self.plan, (r.OK,), seq=self.episode)

    @contextlib.contextmanager
    def capturing(self, into: FlightSink | None) -> Iterator[None]:
        """Within it, each step's copies in flight (the relay's record) go to ``into``."""
        self._into = into
        try:
            yield
        finally:
            self._into = None

    def send(self, message: Message) -> int:
        """The environment's own copy of a message its agent sends: counted, not sent."""
        self.built += 1
        return 0

    def deliver(self, until: float) -> list[tuple[str, Message]]:
        """End the step at the relay; the copies it delivers by ``until``."""
        tick, into, expect = self._tick, self._into, dict(self.expect)
        answer = None
        if len(expect) == len(self.plan["endpoints"]):
            # Every agent answered: the relay routes the step unasked once their submits are
            # in (the module notes); take that answer if it comes, else ask.
            answer = self.link.take(r.ROUTED, self._is_step(tick), self.link.retry)
            if answer is not None:
                self.ahead += 1
                if answer.payload[5] != until:
                    raise ValueError(
                        f"the relay ends step {tick} at {answer.payload[5]} s, the environment "
                        f"at {until} s: this task's copies are not due at its steps' ends"
                    )
                if answer.payload[6] != expect:
                    self.mismatched += 1
        payload = [self.episode, tick, float(until), expect, into is not None]
        while answer is None:
            answer = self.link.request(r.TICK, payload, (r.ROUTED, r.REPLAN))
            if answer.kind == r.REPLAN:
                self.send_plan()
                answer = None
            elif not self._is_step(tick)(answer):
                answer = None
        copies, stats, flights = answer.payload[2:5]
        self._tick += 1
        sent, delivered, rejected, lost, self.held = stats
        self.stats = RouterStats(sent=sent, rejected=rejected, delivered=delivered, lost=lost)
        if into is not None:
            into.extend(Flight(s, r_, float(d), float(a)) for s, r_, d, a in flights)
        out = []
        seen = self._seen
        for fields in copies:
            receiver, message = r.copy_from(fields)
            key = (receiver, message.sender, message.seq)
            if key in seen:
                self.duplicated += 1
                continue
            seen.add(key)
            out.append((receiver, message))
        self.handed += len(out)
        self.log.extend(out)
        return out

    def _is_step(self, tick: int) -> Any:
        number = self.episode
        return lambda m: (
            isinstance(m.payload, list)
            and len(m.payload) == 7
            and m.payload[0] == number
            and m.payload[1] == tick
        )

    def ledger(self) -> dict[str, int]:
        """The dashboard's counters, from the relay's own record (as TrackedBus's)."""
        stats = self.stats
        ledger = {
            "sent": stats.sent,
            "delivered": self.handed,
            "held": self.held,
            "dropped_buffer": stats.rejected,
            "dropped_loss": stats.lost,
        }
        ledger["dropped"] = stats.rejected + stats.lost
        ledger["unaccounted"] = ledger["sent"] - sum(
            ledger[k] for k in ("delivered", "held", "dropped_buffer", "dropped_loss")
        )
        ledger["duplicated"] = self.duplicated  # copies the relay handed the world twice
        return ledger

    def close(self) -> None:
        """Nothing to close: the link outlives the episode."""
