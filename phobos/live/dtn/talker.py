"""An agent process's side of the DTN relay: it submits the messages it builds, and receives.

:class:`AgentTalk` is used by :class:`~phobos.live.runtime.AgentRuntime` when the world's
welcome names a relay. Each step the runtime calls :meth:`AgentTalk.submit` with its action
and observation: the task's own rule (``env.agent_messages``) builds the messages, they are
written to the agent's :class:`~phobos.live.dtn.ledger.Ledger` and sent to the relay in one
``submit``; the count of messages authored this episode goes to the world with the action,
so the world can tell the relay what to wait for. Acknowledged or refused messages are
settled in the ledger; messages still unsettled after ``retry`` seconds are sent again
(after a ``hello``, which makes a restarted relay resend what it owes). Every copy the
relay delivers is recorded once (duplicates are discarded and counted) and acknowledged.

The world's side channel (``sensing``, sent with the observation when the task has one) goes
to the rule with the observation. When it names copies the agent must hold before it speaks
(``sensing["received"]``: ``[sender, seq]`` of the copies the environment delivered to it, in
order; the sampling task's science team ranks from a belief built from them), the talker hands
the rule those copies, kept as the relay delivered them (in its ledger, so a restarted
process has them too); one not here yet is waited for,
saying hello to the relay every ``retry`` seconds (a restarted relay resends what it owes), up
to ``await_timeout`` seconds. A rule that cannot build its messages (a malformed side channel,
a copy still missing) sends none that step: counted in :attr:`AgentTalk.rule_errors`, logged.

Sockets never block: one DEALER (tcp+CURVE, linger 0) read without waiting, in the same
poll as the world's socket (:meth:`AgentTalk.wait`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import zmq

from phobos.comms.codec import DecodeError, EncodeError, decode, encode
from phobos.comms.limits import LogLimiter
from phobos.comms.message import Message
from phobos.comms.security import KeyPair
from phobos.comms.zmq_transport import make_socket, milliseconds
from phobos.live.dtn import protocol as r
from phobos.live.dtn.ledger import Ledger

log = logging.getLogger(__name__)
MAX_NAMED = 100_000
"""Most copies a side channel may name."""


class AgentTalk:
    """One agent's connection to the relay; see the module docstring.

    Args:
        agent_id: The agent.
        address: The relay's address.
        keys: The agent's CURVE key pair.
        relay_key: The relay's public key.
        context: The ZeroMQ context.
        env: The agent's own copy of the environment (its ``agent_messages`` rule).
        ledger: The ledger file; None keeps it in memory.
        retry: Seconds before unsettled messages are sent again.
        await_timeout: Most seconds to wait for a copy the side channel names.

    """

    def __init__(
        self,
        agent_id: str,
        address: str,
        keys: KeyPair,
        relay_key: bytes,
        context: zmq.Context,
        env: Any,
        ledger: str | Path | None = None,
        retry: float = 0.25,
        await_timeout: float = 1.5,
    ) -> None:
        self.agent_id = agent_id
        self.address = address
        self.keys, self.relay_key, self.context = keys, relay_key, context
        self.env = env
        self.rule = env.agent_messages
        self.ledger = Ledger(ledger)
        self.retry = retry
        self.refused: list[str] = []
        self.await_timeout = await_timeout
        self.rule_errors = 0
        """Steps whose messages the rule could not build (none were sent)."""
        self.limited = LogLimiter(log)
        self._episode = None
        self._got: list[list[Any]] = []  # copies recorded, not yet acknowledged to the relay
        self._resends = 0
        self.reconnect_after = 20
        self.sock: zmq.Socket | None = None
        self._connect()
        self._last_sent = 0.0
        self._resend(time.monotonic())

    def _connect(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
        sock = self.sock = make_socket(
            self.context, zmq.DEALER, r.MAX_FRAME_BYTES, 0.0, self.keys, self.relay_key
        )
        sock.connect(self.address)
        self._send(r.HELLO, {"incarnation": 0})

    # ------------------------------------------------------------------- the step
    def submit(
        self,
        episode: int,
        step: int,
        action: int,
        observation: dict[str, Any],
        sensing: Any = None,
    ) -> int:
        """Build, record and submit this step's messages; the count authored this episode."""
        ledger = self.ledger
        if episode != self._episode:  # copies of earlier episodes are no longer named
            self._episode = episode
            ledger.forget_before(episode)
        seq = ledger.next_seq[episode]
        try:
            copies = self._named(episode, sensing)
            messages = self.rule(self.agent_id, action, observation, step, seq, sensing, copies)
        except ValueError as exc:
            self.rule_errors += 1
            self.limited.warning("%s: no messages at step %d: %s", self.agent_id, step, exc)
            messages = []
        if messages:
            ledger.author(episode, messages)
        ledger.flush()  # authored and received before sent or acknowledged: one write a step
        # One submit every step, empty or not: the relay routes a step once it has every
        # agent's; the copies recorded since are acknowledged with it.
        got, self._got = self._got, []
        self._send(r.SUBMIT, [episode, [r.wire(m) for m in messages], got, step])
        if messages:
            self._last_sent = time.monotonic()
        return ledger.settled(episode)

    def _named(self, episode: int, sensing: Any) -> list[Message]:
        """The copies ``sensing["received"]`` names, in its order (waited for, bounded).

        Raises:
            ValueError: if the names are malformed, or a copy did not come in time.

        """
        if not isinstance(sensing, dict) or "received" not in sensing:
            return []
        names = sensing["received"]
        if not (isinstance(names, list) and len(names) <= MAX_NAMED):
            raise ValueError(f"the side channel's 'received' must be a list of <= {MAX_NAMED}")
        keys = []
        for name in names:
            if not (isinstance(name, list) and len(name) == 2 and type(name[1]) is int):
                raise ValueError("each copy the side channel names is [sender, seq]")
            keys.append((episode, str(name[0]), name[1]))
        copies = self.ledger.copies
        deadline = time.monotonic() + self.await_timeout
        hello = 0.0
        self.drain()
        while missing := [k for k in keys if k not in copies]:
            now = time.monotonic()
            if now >= deadline:
                raise ValueError(f"{len(missing)} copies named were not delivered, {missing[0]}")
            if now - hello >= self.retry:  # a restarted relay resends what it owes on hello
                self._send(r.HELLO, {"incarnation": 0})
                hello = now
            self.sock.poll(milliseconds(min(deadline - now, self.retry)))
            self.drain()
        return [copies[k] for k in keys]

    def wait(self, world: zmq.Socket, timeout: float) -> bool:
        """Until ``world`` is readable (True) or ``timeout`` passes (False), serve the relay.

        The relay's frames are read when the world's come (and every ``retry`` seconds of
        its silence), not as they come: one wake-up a step, on two busy cores, not three.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                return False
            if world.poll(milliseconds(min(left, self.retry))):
                self.drain()
                return True
            # The world is silent (paused, between runs, or waiting for the relay): settle.
            if self._got:
                self.ledger.flush()
                got, self._got = self._got, []
                self._send(r.GOT, got)
            if time.monotonic() - self._last_sent > self.retry:
                self._resend(time.monotonic())

    def drain(self, most: int = 100) -> None:
        """Handle what the relay sent, without waiting."""
        got = self._got
        for _ in range(most):
            try:
                frame = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                message = decode(frame, r.MAX_FRAME_BYTES)
            except DecodeError:
                continue
            if message.sender != r.RELAY:
                continue
            try:
                self._handle(message, got)
            except (ValueError, TypeError):
                continue  # a broken frame from the relay: ignored, the retry covers it

    def _handle(self, message: Message, got: list[list[Any]]) -> None:
        kind, payload, ledger = message.kind, message.payload, self.ledger
        if kind == r.ACK:
            episode, seqs = payload
            ledger.ack(episode, [s for s in seqs if type(s) is int])
        elif kind == r.REFUSED:
            episode, seq, reason = payload
            self.refused.append(str(reason))
            if (episode, seq) in ledger.authored:
                ledger.refuse(episode, seq, str(reason))
        elif kind == r.DELIVER:
            episode, copies, acks = payload
            for fields in copies:
                receiver, copy = r.copy_from(fields)
                if receiver == self.agent_id:
                    ledger.receive(episode, copy)
                    got.append([episode, copy.sender, copy.seq])
            for number, seqs in acks:
                ledger.ack(number, [s for s in seqs if type(s) is int])

    def _resend(self, now: float) -> bool:
        """Send every unsettled message again (after a hello); True if there were any.

        On the same socket: ZeroMQ reconnects to a restarted relay by itself (and redoes the
        CURVE handshake), and a fresh socket every ``retry`` could keep a loaded machine from
        ever finishing one. Every ``reconnect_after`` resends the socket is rebuilt anyway.
        """
        unsettled = self.ledger.unsettled()
        if not unsettled:
            return False
        self._resends += 1
        if self._resends % self.reconnect_after == 0:
            self._connect()
        else:
            self._send(r.HELLO, {"incarnation": 0})
        for episode, items in unsettled.items():
            for begin in range(0, len(items), r.MAX_PER_SUBMIT):
                chunk = items[begin : begin + r.MAX_PER_SUBMIT]
                self._send(r.SUBMIT, [episode, [fields for _, fields in chunk]])
        self._last_sent = now
        return True

    def _send(self, kind: str, payload: Any) -> None:
        message = Message(self.agent_id, r.RELAY, kind, 0.0, 0, payload)
        try:
            self.sock.send(encode(message, r.MAX_FRAME_BYTES), zmq.NOBLOCK)
        except (zmq.Again, EncodeError):
            pass  # settled by the retry

    def close(self) -> None:
        """Drain what waits, acknowledge it, close the ledger and the socket."""
        self.drain()
        self.ledger.flush()
        if self._got:
            self._send(r.GOT, self._got)
        self.ledger.close()
        if self.sock is not None:
            self.sock.close(linger=0)
