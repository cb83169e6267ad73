"""The world server's side of the agents' ROUTER: who is connected, and what they answer.

:class:`AgentExchange` sends each step's observations, collects the actions until the
deadline and answers every other message on the ROUTER (hello, ping, the dashboard's
controls). It keeps the per-agent records (joined, lost, restarted, defaulted) because each
of those follows from a message or a missed deadline here; whether an agent is alive, and
what a hello means (joined, rejoined, restarted), is decided by the same
:class:`~phobos.comms.liveness.Liveness` books the relay keeps, told of each loss. It is
apart from the loop in :mod:`phobos.live.world.server` so that the loop reads as "reset,
exchange, step, publish"; both share a :class:`~phobos.live.world.records.Progress`.

Everything here faces untrusted peers. Under CURVE a message counts only when its sender is
the name of its connection's key (the ZAP User-Id), and an agent's connection is the one of
its latest hello with that key: no client can take another's over by the routing id it
chose. Every reply, log line and event quotes what a peer sent through
:func:`~phobos.comms.limits.quote` (bounded, whatever the input); a reply that cannot be
encoded, or a handler that trips on a frame, is a counted rejection, never an exit; the
warnings about rejected frames are rate-limited.

Pacing the slow: an agent that misses a deadline is lost; the world stops waiting for it and
stops sending it observations, and its late answers are counted stale (they never revive it).
It comes back only by a fresh hello (the world answers its pings with ``rejoin``), and after
any hello but its first it is on probation: sent every observation, its answers used when
they come in time, but not waited for until it has answered
:data:`~phobos.live.world.records.PROBATION` observations within the deadline. So one slow,
flapping or reconnecting agent costs the others at most one deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

import zmq

from phobos.comms.codec import DecodeError, EncodeError, decode, encode
from phobos.comms.limits import LogLimiter, clip, quote
from phobos.comms.liveness import Change, Liveness
from phobos.comms.message import Message
from phobos.comms.zmq_transport import milliseconds, waiting_frames
from phobos.live import protocol as p
from phobos.live.world.records import (
    ALIVE,
    LOST,
    PROBATION,
    SAFE_ACTION,
    AgentRecord,
    Progress,
    WorldStats,
)
from phobos.live.world.telemetry import WorldTelemetry

# The records keep the logger name they had before the exchange left server.py.
log = logging.getLogger("phobos.live.world.server")


class AgentExchange:
    """Serves the ROUTER for a world; see the module docstring.

    Args:
        sock: The ROUTER socket.
        curve: Whether the socket is CURVE-secured (then a sender must be who it says).
        env: The environment served (its live agents and action spaces).
        env_id: Its registered id (for messages).
        names: Action names per agent.
        welcome: What a ``welcome`` carries besides the tick.
        control_clients: Endpoint names that may send ``control`` messages.
        records: Per-agent records, updated here.
        progress: Where the run stands (shared with the loop).
        stats: The run's counters (refused, rejected).
        telemetry: Where agent events go.
        action_timeout: Seconds a step waits for every live agent's action.
        first_action_grace: Seconds added to that wait while an agent waited for has not
            answered since it joined or restarted (its policy may still be loading).

    """

    def __init__(
        self,
        sock: zmq.Socket,
        *,
        curve: bool,
        env: Any,
        env_id: str,
        names: dict[str, Any],
        welcome: dict[str, Any],
        control_clients: Collection[str],
        records: dict[str, AgentRecord],
        progress: Progress,
        stats: WorldStats,
        telemetry: WorldTelemetry,
        action_timeout: float,
        first_action_grace: float = 0.0,
    ) -> None:
        self.sock = sock
        self.curve = curve
        self.env = env
        self.env_id = env_id
        # Agents that send their own messages get their side channel with each observation.
        self._sensing = "relay" in welcome and hasattr(env, "agent_sensing")
        self.agents = list(records)
        self.action_n = {a: int(env.action_space(a).n) for a in self.agents}
        self.names = names
        self.welcome = welcome
        self.control_clients = frozenset(control_clients)
        self.records = records
        self.progress = progress
        self.stats = stats
        self.telemetry = telemetry
        self.action_timeout = action_timeout
        self.first_action_grace = first_action_grace
        self.limited = LogLimiter(log)
        # Loss is a missed deadline here (lose()), not silence; the world logs its own lines.
        self.liveness = Liveness(p.WORLD, log_changes=False)

    # ------------------------------------------------------------------ the step
    def exchange(self, observations: dict[str, Any]) -> dict[str, int]:
        """Send each live agent its observation; collect actions until all or the deadline."""
        sock, records, progress = self.sock, self.records, self.progress
        awaiting, optional = progress.awaiting, progress.optional
        awaiting.clear()
        optional.clear()
        progress.actions = {}
        progress.submitted = {}
        actions = progress.actions
        progress.in_exchange = True
        alive = self.liveness.alive
        for agent in self.env.agents:
            if not alive(agent):
                continue
            record = records[agent]
            if self._send_observation(agent, record, observations[agent]):
                (optional if record.probation else awaiting).add(agent)
        # Read what waits even when no one is waited for (every agent lost or on probation):
        # else a world stepping flat out would never hear a hello or a probation answer.
        self.poll(0.0)
        timeout = self.action_timeout
        if any(records[agent].fresh for agent in awaiting):
            timeout += self.first_action_grace  # a first answer: the policy may be loading
        deadline = time.monotonic() + timeout
        while awaiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sock.poll(milliseconds(remaining)):
                break
            self.drain()
        progress.in_exchange = False
        for agent in awaiting:
            self.lose(agent, f"no action within {timeout} s")
        awaiting.clear()
        optional.clear()
        defaulted = ()
        if len(actions) < len(self.env.agents):
            defaulted = tuple(a for a in self.env.agents if a not in actions)
            for agent in defaulted:
                actions[agent] = SAFE_ACTION
                records[agent].defaults += 1
        progress.defaulted = defaulted
        return actions

    def _send_observation(self, agent: str, record: AgentRecord, observation: Any) -> bool:
        """Send this tick's observation to ``agent``; False (and lost) if it cannot go."""
        progress = self.progress
        sensing = self.env.agent_sensing(agent) if self._sensing else None
        payload = p.observation_payload(
            progress.episode, progress.seed, progress.step, observation, sensing
        )
        if not self.send(record.ident, agent, p.OBS, payload, seq=progress.tick):
            self.lose(agent, "cannot send it its observation")
            return False
        record.obs_sent += 1
        record.note_sent(progress.tick, time.monotonic())
        return True

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a message, then handle all that wait."""
        if self.sock.poll(milliseconds(timeout)):
            self.drain()

    def missing(self) -> list[str]:
        """Agents not alive now."""
        return [a for a in self.agents if not self.liveness.alive(a)]

    def end_agents(self) -> None:
        """Tell every live agent to exit."""
        for agent, record in self.records.items():
            if self.liveness.alive(agent):
                self.send(record.ident, agent, p.END, None)

    # --------------------------------------------------------------- messages
    def drain(self, most: int = 1000) -> None:
        """Handle the messages waiting on the ROUTER (at most ``most``), without blocking.

        Bounded, so that a peer that never stops sending cannot keep the loop here: the
        callers poll again (the exchange until its deadline).
        """
        for ident, part in waiting_frames(self.sock, most):
            if part is None:
                self.reject(ident, "sent a multipart message, expected one frame")
                continue
            try:
                message = decode(part.bytes)
            except DecodeError as exc:
                self.reject(ident, str(exc))
                continue
            sender = message.sender
            if self.curve:
                user = part.get("User-Id")
                if user != sender:
                    self.reject(ident, f"authenticated as {user!r}, sent as {quote(sender)}")
                    continue
            elif sender.encode() != ident:
                self.reject(ident, f"sent a message as {quote(sender)}")
                continue
            try:
                self._dispatch(message, ident)
            except Exception as exc:  # noqa: BLE001 - no frame may stop the world
                self.reject(ident, f"{message.kind!r} could not be handled: {type(exc).__name__}")

    def _dispatch(self, message: Message, ident: bytes) -> None:
        kind = message.kind
        if kind == p.ACT:
            self._on_act(message, ident)
        elif kind == p.HELLO:
            self._on_hello(message, ident)
        elif kind == p.PING:
            self._on_ping(message, ident)
        elif kind == p.CONTROL:
            self._on_control(message, ident)
        else:
            self.reject(ident, f"unexpected message kind {quote(kind)}")

    def _on_act(self, message: Message, ident: bytes) -> None:
        agent = message.sender
        record = self.records.get(agent)
        if record is None:
            self.refuse(agent, ident)
            return
        progress = self.progress
        sent = record.sent.pop(message.seq, None) if ident == record.ident else None
        if not self.liveness.alive(agent) or sent is None:
            # Lost (only a hello brings it back), an old connection, or no such observation.
            record.stale += 1
            if record.status == LOST and ident == record.ident:
                self.send(ident, agent, p.REJOIN, "you were lost: say hello again")
            return
        allowed = self.action_timeout + (self.first_action_grace if record.fresh else 0.0)
        record.fresh = False
        late = time.monotonic() - sent > allowed
        if late:
            record.late += 1
        if record.probation:
            record.probation = PROBATION if late else record.probation - 1
        current = progress.in_exchange and message.seq == progress.tick
        if not current or not (agent in progress.awaiting or agent in progress.optional):
            record.stale += 1
            return
        progress.awaiting.discard(agent)
        progress.optional.discard(agent)
        action = message.payload
        if type(action) is list and len(action) == 2 and type(action[1]) is int:
            # An agent that sends its own messages: [action, messages submitted this episode].
            action, progress.submitted[agent] = action[0], max(action[1], 0)
        n = self.action_n[agent]
        if type(action) is not int or not 0 <= action < n:
            record.errors += 1
            reason = (
                f"action {quote(action)} of {agent} at tick {message.seq} is outside "
                f"Discrete({n}); the safe default {SAFE_ACTION} "
                f"({self.names[agent][SAFE_ACTION]}) was used"
            )
            self.limited.warning("world: %s", reason)
            self.send(record.ident, agent, p.ERROR, reason)
            return
        record.actions += 1
        progress.actions[agent] = action

    def _on_hello(self, message: Message, ident: bytes) -> None:
        agent = message.sender
        progress = self.progress
        if agent in self.control_clients:
            self.send(ident, agent, p.WELCOME, {**self.welcome, "tick": progress.tick})
            return
        record = self.records.get(agent)
        if record is None:
            self.refuse(agent, ident)
            return
        payload = message.payload if isinstance(message.payload, dict) else {}
        incarnation, policy = payload.get("incarnation"), payload.get("policy", "")
        if type(incarnation) is not int or not isinstance(policy, str):
            self.refuse(agent, ident, "a hello needs an int incarnation and a str policy")
            return
        if len(policy) > p.MAX_POLICY_CHARS:
            self.refuse(agent, ident, f"policy label longer than {p.MAX_POLICY_CHARS} chars")
            return
        change = self.liveness.heard(agent, time.monotonic(), incarnation)
        event = change.value if change is not None else ""
        if change is Change.RESTARTED:
            record.restarts += 1
        if change in (Change.JOINED, Change.RESTARTED):
            record.fresh = True  # its first answer has the grace: its policy may be loading
        if record.incarnation is not None and (event or ident != record.ident):
            # Back after a loss, a restart or a reconnect: not waited for until it has shown
            # it answers in time (a flapping agent must not cost everyone a deadline a step).
            record.probation = PROBATION
        previous, record.ident = record.ident, ident
        record.incarnation = incarnation
        record.status = ALIVE
        if ident != previous:
            # What went to the old connection is not answered on this one: counted, so that
            # every observation sent is accounted for even when the hello beats the loss.
            record.abandoned += len(record.sent)
            record.sent.clear()
        record.joins += 1
        self.send(ident, agent, p.WELCOME, {**self.welcome, "tick": progress.tick})
        if event:
            log.info(
                "world: agent %s %s (incarnation %d, policy %s)", agent, event, incarnation, policy
            )
            self.telemetry.event(agent, event, f"policy {policy}")
        if progress.in_exchange and agent in self.env.agents:
            has_it = agent in progress.awaiting or agent in progress.optional
            if ident == previous and has_it:
                return  # this connection has this step's observation already
            # Joined mid-step: it may answer this step's observation, but is not waited for.
            progress.awaiting.discard(agent)
            progress.optional.discard(agent)
            if self._send_observation(agent, record, progress.observations[agent]):
                progress.optional.add(agent)

    def _on_ping(self, message: Message, ident: bytes) -> None:
        agent = message.sender
        record = self.records.get(agent)
        if record is None and agent not in self.control_clients:
            self.refuse(agent, ident)
            return
        if record is not None and not self.liveness.alive(agent):
            if record.incarnation is None:
                self.refuse(agent, ident, "say hello first")
            else:  # lost: only a fresh hello brings it back
                self.send(ident, agent, p.REJOIN, "you were lost: say hello again")
            return
        self.send(ident, agent, p.PONG, None)

    def _on_control(self, message: Message, ident: bytes) -> None:
        sender = message.sender
        if sender not in self.control_clients:
            self.reject(ident, "sent a control message but is not a control client")
            return
        run = self.progress
        payload = message.payload if isinstance(message.payload, dict) else {}
        command = payload.get("command")
        error = None
        if command == "pause":
            run.paused = True
        elif command == "resume":
            run.paused = False
        elif command == "speed":
            value = payload.get("value")
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and 0 <= value <= p.MAX_SPEED
            ):
                run.speed = float(value)
            else:
                error = f"speed must be a number of steps per second in [0, {p.MAX_SPEED}], "
                error += f"got {quote(value)}"
        elif command != "status":
            error = f"unknown command {quote(command)}; use pause, resume, speed or status"
        if command in ("pause", "resume", "speed") and error is None:
            log.info("world: %s %s (paused %s, speed %s)", sender, command, run.paused, run.speed)
            self.telemetry.soon()
        reply = {"paused": run.paused, "speed": run.speed, "tick": run.tick, "error": error}
        self.send(ident, sender, p.CONTROL, reply, seq=message.seq)

    # -------------------------------------------------------- records and replies
    def refuse(self, agent: str, ident: bytes, reason: str | None = None) -> None:
        """Count and answer a message from an unknown (or not yet greeted) agent."""
        self.stats.refused += 1
        agent = clip(agent, 64)
        reason = reason or (
            f"unknown agent id {agent!r}; agents of {self.env_id} are {', '.join(self.agents)}"
        )
        self.limited.warning(
            "world: refused %r: %s (%d refused so far)", agent, reason, self.stats.refused
        )
        self.send(ident, agent, p.REFUSED, reason)
        self.telemetry.event(agent, "refused", reason)

    def reject(self, ident: bytes, reason: str) -> None:
        """Count and log a frame that was not valid (no answer: it may not be a peer)."""
        self.stats.rejected += 1
        self.limited.warning(
            "world: rejected a frame from %s: %s (%d rejected so far)",
            quote(ident, 16),
            reason,
            self.stats.rejected,
        )

    def lose(self, agent: str, reason: str) -> None:
        """Mark a live agent lost: not waited for, nor sent observations, until a new hello."""
        record = self.records[agent]
        if self.liveness.lose(agent):
            record.status = LOST
            record.lost += 1
            log.warning("world: agent %s lost at tick %d: %s", agent, self.progress.tick, reason)
            self.telemetry.event(agent, "lost", reason)

    def send(self, ident: bytes, to: str, kind: str, payload: Any, seq: int = 0) -> bool:
        """Send one frame to ``ident``; a failure (encoding included) is counted, not raised."""
        try:
            frame = encode(Message(p.WORLD, to, kind, 0.0, seq, payload))
        except EncodeError as exc:
            self.reject(ident, f"the {kind} reply to it cannot be encoded: {exc}")
            return False
        try:
            self.sock.send(ident, zmq.SNDMORE)
            self.sock.send(frame)
        except zmq.ZMQError as exc:
            self.limited.warning("world: cannot send %s to %s: %s", kind, to, exc.strerror)
            return False
        return True
