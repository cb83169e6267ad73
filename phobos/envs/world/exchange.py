"""The world server's side of the agents' ROUTER: who is connected, and what they answer.

:class:`AgentExchange` sends each step's observations, collects the actions until the
deadline and answers every other message on the ROUTER (hello, ping, the dashboard's
controls). It keeps the per-agent records (joined, lost, restarted, defaulted) because each
of those follows from a message or a missed deadline here. It is apart from the loop in
:mod:`phobos.envs.world.server` so that the loop reads as "reset, exchange, step, publish";
both share a :class:`~phobos.envs.world.records.Progress`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

import zmq

from phobos.comms.codec import DecodeError, decode, encode
from phobos.comms.message import Message
from phobos.comms.zmq_transport import milliseconds
from phobos.envs.world import protocol as p
from phobos.envs.world.records import (
    ALIVE,
    LOST,
    SAFE_ACTION,
    AgentRecord,
    Progress,
    WorldStats,
)
from phobos.envs.world.telemetry import WorldTelemetry

# The records keep the logger name they had before the exchange left server.py.
log = logging.getLogger("phobos.envs.world.server")


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
    ) -> None:
        self.sock = sock
        self.curve = curve
        self.env = env
        self.env_id = env_id
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

    # ------------------------------------------------------------------ the step
    def exchange(self, observations: dict[str, Any]) -> dict[str, int]:
        """Send each live agent its observation; collect actions until all or the deadline."""
        sock, records, progress = self.sock, self.records, self.progress
        awaiting = progress.awaiting
        awaiting.clear()
        actions = progress.actions = {}
        tick, episode, seed, step = progress.tick, progress.episode, progress.seed, progress.step
        progress.in_exchange = True
        for agent in self.env.agents:
            record = records[agent]
            if record.status is not ALIVE:
                continue
            frame = encode(
                Message(
                    p.WORLD,
                    agent,
                    p.OBS,
                    0.0,
                    tick,
                    p.observation_payload(episode, seed, step, observations[agent]),
                )
            )
            try:
                sock.send(record.ident, zmq.SNDMORE)
                sock.send(frame)
            except zmq.ZMQError as exc:
                self.lose(agent, f"cannot send to it ({exc.strerror})")
                continue
            record.obs_sent += 1
            awaiting.add(agent)
        deadline = time.monotonic() + self.action_timeout
        while awaiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sock.poll(milliseconds(remaining)):
                break
            self.drain()
        progress.in_exchange = False
        for agent in awaiting:
            self.lose(agent, f"no action within {self.action_timeout} s")
        awaiting.clear()
        defaulted = ()
        if len(actions) < len(self.env.agents):
            defaulted = tuple(a for a in self.env.agents if a not in actions)
            for agent in defaulted:
                actions[agent] = SAFE_ACTION
                records[agent].defaults += 1
        progress.defaulted = defaulted
        return actions

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a message, then handle all that wait."""
        if self.sock.poll(milliseconds(timeout)):
            self.drain()

    def missing(self) -> list[str]:
        """Agents not alive now."""
        return [a for a in self.agents if self.records[a].status is not ALIVE]

    def end_agents(self) -> None:
        """Tell every live agent to exit."""
        for agent, record in self.records.items():
            if record.status is ALIVE:
                self.send(record.ident, agent, p.END, None)

    # --------------------------------------------------------------- messages
    def drain(self) -> None:
        """Handle every message waiting on the ROUTER, without blocking."""
        sock = self.sock
        while True:
            try:
                ident = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            part = sock.recv(copy=False)
            if part.more:
                while sock.rcvmore:
                    sock.recv()
                self.reject(ident, "sent a multipart message, expected one frame")
                continue
            try:
                message = decode(part.bytes)
            except DecodeError as exc:
                self.reject(ident, str(exc))
                continue
            sender = message.sender
            if sender.encode() != ident:
                self.reject(ident, f"sent a message as {sender!r}")
                continue
            if self.curve and part.get("User-Id") != sender:
                self.reject(ident, f"authenticated as {part.get('User-Id')!r}, not {sender!r}")
                continue
            kind = message.kind
            if kind == p.ACT:
                self._on_act(message)
            elif kind == p.HELLO:
                self._on_hello(message, ident)
            elif kind == p.PING:
                self._on_ping(message, ident)
            elif kind == p.CONTROL:
                self._on_control(message, ident)
            else:
                self.reject(ident, f"unexpected message kind {kind!r}")

    def _on_act(self, message: Message) -> None:
        agent = message.sender
        record = self.records.get(agent)
        if record is None:
            self.refuse(agent, message.sender.encode())
            return
        if record.status is not ALIVE:
            self.revive(agent, "answered again")
        progress = self.progress
        if message.seq != progress.tick or agent not in progress.awaiting:
            record.stale += 1
            return
        action = message.payload
        progress.awaiting.discard(agent)
        n = self.action_n[agent]
        if type(action) is not int or not 0 <= action < n:
            record.errors += 1
            reason = (
                f"action {action!r} of {agent} at tick {message.seq} is outside Discrete({n}); "
                f"the safe default {SAFE_ACTION} ({self.names[agent][SAFE_ACTION]}) was used"
            )
            log.warning("world: %s", reason)
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
        incarnation = payload.get("incarnation")
        if record.incarnation is None:
            event = "joined"
        elif incarnation != record.incarnation:
            event = "restarted"
            record.restarts += 1
        elif record.status is not ALIVE:
            event = "rejoined"
        else:
            event = ""
        record.incarnation = incarnation
        record.ident = ident
        record.status = ALIVE
        record.joins += 1
        self.send(ident, agent, p.WELCOME, {**self.welcome, "tick": progress.tick})
        if event:
            log.info(
                "world: agent %s %s (incarnation %s, policy %s)",
                agent,
                event,
                incarnation,
                payload.get("policy"),
            )
            self.telemetry.event(agent, event, f"policy {payload.get('policy')}")
        if progress.in_exchange and agent in self.env.agents and agent not in progress.awaiting:
            # Rejoined mid-step: it answers this step's observation too.
            self.send(
                ident,
                agent,
                p.OBS,
                p.observation_payload(
                    progress.episode, progress.seed, progress.step, progress.observations[agent]
                ),
                seq=progress.tick,
            )
            record.obs_sent += 1
            progress.awaiting.add(agent)

    def _on_ping(self, message: Message, ident: bytes) -> None:
        agent = message.sender
        record = self.records.get(agent)
        if record is None and agent not in self.control_clients:
            self.refuse(agent, ident)
            return
        if record is not None and record.status is not ALIVE:
            if record.incarnation is None:
                self.refuse(agent, ident, "say hello first")
                return
            self.revive(agent, "pinged")
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
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                run.speed = float(value)
            else:
                error = f"speed must be a number of steps per second >= 0, got {value!r}"
        elif command != "status":
            error = f"unknown command {command!r}; use pause, resume, speed or status"
        if command in ("pause", "resume", "speed") and error is None:
            log.info("world: %s %s (paused %s, speed %s)", sender, command, run.paused, run.speed)
            self.telemetry.soon()
        reply = {"paused": run.paused, "speed": run.speed, "tick": run.tick, "error": error}
        self.send(ident, sender, p.CONTROL, reply, seq=message.seq)

    # -------------------------------------------------------- records and replies
    def refuse(self, agent: str, ident: bytes, reason: str | None = None) -> None:
        """Count and answer a message from an unknown (or not yet greeted) agent."""
        self.stats.refused += 1
        reason = reason or (
            f"unknown agent id {agent!r}; agents of {self.env_id} are {', '.join(self.agents)}"
        )
        log.warning("world: refused %r: %s (%d refused so far)", agent, reason, self.stats.refused)
        self.send(ident, agent, p.REFUSED, reason)
        self.telemetry.event(agent, "refused", reason)

    def reject(self, ident: bytes, reason: str) -> None:
        """Count and log a frame that was not valid (no answer: it may not be a peer)."""
        self.stats.rejected += 1
        log.warning(
            "world: rejected a frame from %r: %s (%d rejected so far)",
            ident,
            reason,
            self.stats.rejected,
        )

    def lose(self, agent: str, reason: str) -> None:
        """Mark a live agent lost: no longer waited for until it is heard from."""
        record = self.records[agent]
        if record.status is ALIVE:
            record.status = LOST
            record.lost += 1
            log.warning("world: agent %s lost at tick %d: %s", agent, self.progress.tick, reason)
            self.telemetry.event(agent, "lost", reason)

    def revive(self, agent: str, how: str) -> None:
        """Mark an agent alive again (it answered or pinged)."""
        self.records[agent].status = ALIVE
        log.info("world: agent %s back (%s) at tick %d", agent, how, self.progress.tick)
        self.telemetry.event(agent, "rejoined", how)

    def send(self, ident: bytes, to: str, kind: str, payload: Any, seq: int = 0) -> None:
        """Send one frame to ``ident``; a failure is logged, not raised."""
        frame = encode(Message(p.WORLD, to, kind, 0.0, seq, payload))
        try:
            self.sock.send(ident, zmq.SNDMORE)
            self.sock.send(frame)
        except zmq.ZMQError as exc:
            log.warning("world: cannot send %s to %s: %s", kind, to, exc.strerror)
