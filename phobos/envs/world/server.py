"""The world server: serves an environment to agent processes over ZeroMQ, in lock-step.

Each step the world sends every live agent its observation and waits for every action until
``action_timeout``. An agent that does not answer in time, is not connected, or answers with an
action outside its space gets its safe default (the environment's idle action, index 0: what a
masked action runs as) and is flagged: in :attr:`WorldServer.last_defaulted`, in its counters
and in telemetry. An agent that missed a deadline is marked lost and no longer waited for until
it is heard from again; one that comes back (a restarted process announces itself with a new
incarnation) gets observations again from the step it rejoined. An action answering an older
step is stale: ignored and counted.

Sockets (one context; every receive polls with a timeout; everything closes with linger 0):

- a ROUTER (:class:`~phobos.comms.zmq_transport.ZmqServer`) for agents and the dashboard's
  controls, CURVE-secured with the allow-list of a key folder when one is given
  (:mod:`phobos.comms.security`); ``router_handover`` lets a restarted agent take over its id;
- a PUB (:class:`~phobos.comms.telemetry.TelemetryPublisher`) for telemetry, which may drop:
  the state at most ``telemetry_hz`` times a second whatever the step rate, the episode's
  tables again every second for late subscribers, and agent events as they happen;
- the environment's message bus: the intents between agents cross the store-and-forward router
  behind a relay over ZeroMQ (``relay="zmq"``, :class:`~phobos.comms.bus.RelayedBus` on
  ``inproc://``) or the in-process router (``relay="memory"``).

The protocol is in :mod:`phobos.envs.world.protocol`. With every agent answering, a seeded
episode gives the same trajectory as the same policies stepped in-process.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import zmq

from phobos import config as config_tools
from phobos.comms.bus import RelayedBus
from phobos.comms.codec import DecodeError, decode, encode
from phobos.comms.link import LinkModel
from phobos.comms.message import BROADCAST, Message
from phobos.comms.router import Router, RouterStats
from phobos.comms.security import CurveAuthenticator, load_allow_list, load_keys
from phobos.comms.telemetry import TelemetryPublisher
from phobos.comms.zmq_transport import ZmqClient, ZmqServer, milliseconds
from phobos.envs.registry import make_config, spec
from phobos.envs.world import protocol as p
from phobos.envs.world.views import view_for

log = logging.getLogger(__name__)

SAFE_ACTION = 0
"""Every agent's safe default: idle (orbit scheduling), wait / no advice (sampling)."""

WAITING, ALIVE, LOST = "waiting", "alive", "lost"
_relay_ids = itertools.count()


@dataclass(frozen=True)
class WorldSettings:
    """How the world server steps and reports."""

    action_timeout: float = 2.0
    """Seconds each step waits for every live agent's action; late ones get the safe default."""
    join_timeout: float = 30.0
    """Seconds the first episode waits for every agent to join (missing ones get defaults)."""
    seed: int = 0
    """Seed of the first episode; episode ``k`` uses ``seed + k``."""
    speed: float = 0.0
    """Target steps per second; 0 steps as fast as the agents answer (throttle off)."""
    telemetry_hz: float = 10.0
    """Most state updates published per second, whatever the step rate."""
    relay: Literal["zmq", "memory"] = "zmq"
    """Carry the intents between agents over ZeroMQ through a relay, or in memory."""
    record: bool = False
    """Keep every step's actions and defaults in :attr:`WorldStats.records` (for tests)."""

    def validate(self) -> None:
        """Raise ValueError for a setting out of range."""
        if not self.action_timeout > 0 or not self.join_timeout >= 0:
            raise ValueError("action_timeout must be positive and join_timeout not negative")
        if not self.speed >= 0 or not self.telemetry_hz > 0:
            raise ValueError("speed must be at least 0 and telemetry_hz positive")
        if self.relay not in ("zmq", "memory"):
            raise ValueError(f"relay must be 'zmq' or 'memory', got {self.relay!r}")


@dataclass
class AgentRecord:
    """What the world knows of one agent's process.

    Attributes:
        status: ``waiting`` (never joined), ``alive`` or ``lost``.
        incarnation: The incarnation of its latest hello (one per process run).
        joins: Hellos accepted. restarts: hellos with a new incarnation after the first.
        lost: Times it was marked lost. obs_sent: observations sent. actions: actions used.
        defaults: Steps it got the safe default. errors: actions outside its space.
        stale: Actions for an older step.

    """

    status: str = WAITING
    incarnation: int | None = None
    ident: bytes = b""
    joins: int = 0
    restarts: int = 0
    lost: int = 0
    obs_sent: int = 0
    actions: int = 0
    defaults: int = 0
    errors: int = 0
    stale: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for telemetry."""
        return {
            "status": self.status,
            "restarts": self.restarts,
            "joins": self.joins,
            "lost": self.lost,
            "obs_sent": self.obs_sent,
            "actions": self.actions,
            "defaults": self.defaults,
            "errors": self.errors,
            "stale": self.stale,
        }


@dataclass
class WorldStats:
    """Counters of a :meth:`WorldServer.run`.

    Attributes:
        steps: Steps taken. episodes: Episodes finished. returns: Team return per episode.
        refused: Hellos refused (unknown id). rejected: Frames that were not valid.
        elapsed_s: Wall seconds from the first step to the last.
        records: ``(tick, actions, defaulted agents)`` per step when ``record`` is set.

    """

    steps: int = 0
    episodes: int = 0
    returns: list[float] = field(default_factory=list)
    refused: int = 0
    rejected: int = 0
    elapsed_s: float = 0.0
    records: list[tuple[int, dict[str, int], tuple[str, ...]]] = field(default_factory=list)


class TrackedBus:
    """The environment's message bus, plus a sample of messages in flight for the dashboard.

    Delegates ``send``, ``deliver``, ``stats`` and ``close`` to ``inner``. While
    :attr:`capture` is set, each copy sent is noted with its arrival time (so the dashboard
    shows messages in flight with their light time); the world sets it only on the steps
    before a telemetry update, off the hot path.
    """

    def __init__(self, inner: Router | RelayedBus, links: LinkModel) -> None:
        self.inner = inner
        self.links = links
        self.capture = False
        self.flights: deque[tuple[str, str, float, float]] = deque(maxlen=64)
        self.router: Router = getattr(inner, "router", inner)
        names = self.router.endpoints
        self._others = {e: [o for o in names if o != e] for e in names}

    @property
    def stats(self) -> RouterStats:
        """The router's counters."""
        return self.inner.stats

    def send(self, message: Message) -> int:
        """Offer ``message`` to the bus."""
        if self.capture:
            sender, now = message.sender, message.send_time
            receivers = (
                self._others[sender] if message.receiver == BROADCAST else [message.receiver]
            )
            for receiver in receivers:
                route = self.links.transit(sender, receiver, now)
                if route is not None and not route[2] and route[1] > route[0]:
                    self.flights.append((sender, receiver, float(route[0]), float(route[1])))
        return self.inner.send(message)

    def deliver(self, until: float) -> list[tuple[str, Message]]:
        """Copies due by ``until``."""
        return self.inner.deliver(until)

    def close(self) -> None:
        """Close the inner bus's sockets, if it has any."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class WorldServer:
    """Hosts an environment for remote agents; see the module docstring.

    Args:
        env_id: Registered environment id.
        config: Its configuration; default the registered default.
        address: Where the ROUTER binds (``tcp://127.0.0.1:*`` picks a free port).
        keys: Folder of CURVE keys: ``world.key_secret`` and the allow-list of every
            ``<name>.key`` in it; None runs without CURVE (tests over loopback only).
        telemetry_address: Where the telemetry PUB binds; None publishes nothing.
        settings: Stepping and reporting settings.
        control_clients: Endpoint names that may send ``control`` messages.

    """

    def __init__(
        self,
        env_id: str,
        config: Any = None,
        *,
        address: str = "tcp://127.0.0.1:*",
        keys: str | Path | None = None,
        telemetry_address: str | None = "tcp://127.0.0.1:*",
        settings: WorldSettings | None = None,
        control_clients: Sequence[str] = (p.DASHBOARD,),
    ) -> None:
        self.settings = settings = settings or WorldSettings()
        settings.validate()
        self.env_id = env_id
        config = config if config is not None else make_config(env_id)
        module, _, attribute = spec(env_id).entry_point.partition(":")
        env_class = getattr(importlib.import_module(module), attribute)
        self.context = zmq.Context()
        self.authenticator: CurveAuthenticator | None = None
        self.server: ZmqServer | None = None
        self.publisher: TelemetryPublisher | None = None
        try:
            curve = None
            if keys is not None:
                curve = load_keys(keys, p.WORLD)
                allowed = {k: v for k, v in load_allow_list(keys).items() if k != p.WORLD}
                self.authenticator = CurveAuthenticator(self.context, allowed).start()
            self.server = ZmqServer(address, p.WORLD, context=self.context, curve=curve)
            self._sock = self.server.socket
            self._sock.router_handover = 1
            self._curve = curve is not None
            if telemetry_address is not None:
                self.publisher = TelemetryPublisher(telemetry_address, context=self.context)
            self.env = env_class(config, message_bus=self._make_bus)
        except BaseException:
            self.close()
            raise
        self.view = view_for(self.env)
        self.agents = list(self.env.possible_agents)
        self._action_n = {a: int(self.env.action_space(a).n) for a in self.agents}
        self._names = {a: self.env.action_names(a) for a in self.agents}
        self._control_clients = frozenset(control_clients)
        self.records = {agent: AgentRecord() for agent in self.agents}
        self.stats = WorldStats()
        self.paused = False
        self.speed = settings.speed
        self.tick = 0
        self.last_defaulted: tuple[str, ...] = ()
        self._welcome = {
            "env": env_id,
            "config": config_tools.to_mapping(config),
            "agents": self.agents,
        }
        self._stop = threading.Event()
        self._awaiting: set[str] = set()
        self._actions: dict[str, int] = {}
        self._observations: dict[str, Any] = {}
        self._episode = -1
        self._seed = settings.seed
        self._step = 0
        self._in_exchange = False
        self._episode_tables: dict[str, Any] = {}
        self._timeline: dict[str, list[list[int]]] = {}
        self._last_action: dict[str, int] = {}
        self._return = 0.0
        self._next_publish = 0.0
        self._next_tables = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self._rate = 0.0
        self._executed: dict[str, int] = {}

    # ----------------------------------------------------------------------- public
    @property
    def address(self) -> str:
        """The ROUTER's address, with the port resolved."""
        return self.server.address

    @property
    def telemetry_address(self) -> str | None:
        """The telemetry PUB's address, or None."""
        return self.publisher.address if self.publisher is not None else None

    @property
    def bus(self) -> TrackedBus:
        """The current episode's message bus."""
        return self.env.router

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current step (thread-safe)."""
        self._stop.set()

    def run(
        self,
        episodes: int | None = None,
        steps: int | None = None,
        seconds: float | None = None,
        *,
        end_agents: bool = True,
    ) -> WorldStats:
        """Wait for the agents, then run episodes until a bound or :meth:`stop`.

        Args:
            episodes: Episodes to run; None for no bound.
            steps: Total steps to run; None for no bound.
            seconds: Wall seconds of stepping (after the agents joined); None for no bound.
            end_agents: Tell the agents to exit (``end``) when done.

        """
        stats = self.stats
        self._wait_for_agents()
        started = time.monotonic()
        until = started + seconds if seconds is not None else math.inf
        try:
            while not self._stop.is_set() and (episodes is None or stats.episodes < episodes):
                if self._run_episode(steps, until):
                    break
        finally:
            stats.elapsed_s = time.monotonic() - started
            if end_agents:
                self._end_agents()
        return stats

    def close(self) -> None:
        """Close the environment, the sockets and the context (linger 0). Twice is allowed."""
        env = getattr(self, "env", None)
        if env is not None:
            env.close()
        for end in (self.server, self.publisher):
            if end is not None:
                end.close()
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None
        if not self.context.closed:
            self.context.destroy(linger=0)

    # ------------------------------------------------------------------- the episode
    def _run_episode(self, steps: int | None, until: float) -> bool:
        """One episode; True when a bound (steps, seconds, stop) ended the run."""
        stats, env, view = self.stats, self.env, self.view
        self._episode += 1
        self._seed = self.settings.seed + self._episode
        observations, _ = env.reset(seed=self._seed)
        self._observations = observations
        self._step = 0
        self._return = 0.0
        self._episode_tables = {
            "episode": self._episode,
            "seed": self._seed,
            "env": self.env_id,
            "agents": self.agents,
            "actions": {a: list(names) for a, names in self._names.items()},
            "horizon": int(env.config.horizon_steps),
            "step_seconds": float(env.config.step_seconds),
            **view.episode(env),
        }
        self._timeline = {agent: [] for agent in self.agents}
        self._last_action = {}
        self._executed = {}
        self._publish_tables()
        bus = env.router
        record = self.settings.record
        publisher = self.publisher
        stop = self._stop
        ended = False
        while env.agents:
            if stop.is_set():
                return True
            if self.paused or self.speed > 0:
                self._pace()
                if stop.is_set():
                    return True
            actions = self._exchange(observations)
            capture = publisher is not None and time.monotonic() >= self._next_publish
            bus.capture = capture
            observations, rewards, _, _, infos = env.step(actions)
            self._observations = observations
            executed = {agent: info["executed_action"] for agent, info in infos.items()}
            self._executed = executed
            view.record(env, executed)
            timeline, last = self._timeline, self._last_action
            for agent, action in executed.items():
                if last.get(agent) != action:
                    last[agent] = action
                    timeline[agent].append([self._step, action])
            if rewards:
                self._return += next(iter(rewards.values()))
            if record:
                stats.records.append((self.tick, dict(actions), self.last_defaulted))
            self.tick += 1
            self._step += 1
            stats.steps += 1
            if capture:
                bus.capture = False
                self._publish_state()
            if (steps is not None and stats.steps >= steps) or time.monotonic() >= until:
                ended = True
                break
        if not env.agents:
            stats.episodes += 1
            stats.returns.append(self._return)
            log.info(
                "episode %d (seed %d) done: %d steps, team return %.2f",
                self._episode,
                self._seed,
                self._step,
                self._return,
            )
        if publisher is not None:
            self._publish_state()
        return ended

    def _exchange(self, observations: dict[str, Any]) -> dict[str, int]:
        """Send each live agent its observation; collect actions until all or the deadline."""
        sock, records = self._sock, self.records
        awaiting = self._awaiting
        awaiting.clear()
        actions = self._actions = {}
        tick, episode, seed, step = self.tick, self._episode, self._seed, self._step
        self._in_exchange = True
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
                self._lose(agent, f"cannot send to it ({exc.strerror})")
                continue
            record.obs_sent += 1
            awaiting.add(agent)
        deadline = time.monotonic() + self.settings.action_timeout
        while awaiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sock.poll(milliseconds(remaining)):
                break
            self._drain()
        self._in_exchange = False
        for agent in awaiting:
            self._lose(agent, f"no action within {self.settings.action_timeout} s")
        awaiting.clear()
        defaulted = ()
        if len(actions) < len(self.env.agents):
            defaulted = tuple(a for a in self.env.agents if a not in actions)
            for agent in defaulted:
                actions[agent] = SAFE_ACTION
                records[agent].defaults += 1
        self.last_defaulted = defaulted
        return actions

    # --------------------------------------------------------------------- messages
    def _drain(self) -> None:
        """Handle every message waiting on the ROUTER, without blocking."""
        sock = self._sock
        while True:
            try:
                ident = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            part = sock.recv(copy=False)
            if part.more:
                while sock.rcvmore:
                    sock.recv()
                self._reject(ident, "sent a multipart message, expected one frame")
                continue
            try:
                message = decode(part.bytes)
            except DecodeError as exc:
                self._reject(ident, str(exc))
                continue
            sender = message.sender
            if sender.encode() != ident:
                self._reject(ident, f"sent a message as {sender!r}")
                continue
            if self._curve and part.get("User-Id") != sender:
                self._reject(ident, f"authenticated as {part.get('User-Id')!r}, not {sender!r}")
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
                self._reject(ident, f"unexpected message kind {kind!r}")

    def _on_act(self, message: Message) -> None:
        agent = message.sender
        record = self.records.get(agent)
        if record is None:
            self._refuse(agent, message.sender.encode())
            return
        if record.status is not ALIVE:
            self._revive(agent, "answered again")
        if message.seq != self.tick or agent not in self._awaiting:
            record.stale += 1
            return
        action = message.payload
        self._awaiting.discard(agent)
        n = self._action_n[agent]
        if type(action) is not int or not 0 <= action < n:
            record.errors += 1
            reason = (
                f"action {action!r} of {agent} at tick {message.seq} is outside Discrete({n}); "
                f"the safe default {SAFE_ACTION} ({self._names[agent][SAFE_ACTION]}) was used"
            )
            log.warning("world: %s", reason)
            self._send(record.ident, agent, p.ERROR, reason)
            return
        record.actions += 1
        self._actions[agent] = action

    def _on_hello(self, message: Message, ident: bytes) -> None:
        agent = message.sender
        if agent in self._control_clients:
            self._send(ident, agent, p.WELCOME, {**self._welcome, "tick": self.tick})
            return
        record = self.records.get(agent)
        if record is None:
            self._refuse(agent, ident)
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
        self._send(ident, agent, p.WELCOME, {**self._welcome, "tick": self.tick})
        if event:
            log.info(
                "world: agent %s %s (incarnation %s, policy %s)",
                agent,
                event,
                incarnation,
                payload.get("policy"),
            )
            self._event(agent, event, f"policy {payload.get('policy')}")
        if self._in_exchange and agent in self.env.agents and agent not in self._awaiting:
            # Rejoined mid-step: it answers this step's observation too.
            self._send(
                ident,
                agent,
                p.OBS,
                p.observation_payload(
                    self._episode, self._seed, self._step, self._observations[agent]
                ),
                seq=self.tick,
            )
            record.obs_sent += 1
            self._awaiting.add(agent)

    def _on_ping(self, message: Message, ident: bytes) -> None:
        agent = message.sender
        record = self.records.get(agent)
        if record is None and agent not in self._control_clients:
            self._refuse(agent, ident)
            return
        if record is not None and record.status is not ALIVE:
            if record.incarnation is None:
                self._refuse(agent, ident, "say hello first")
                return
            self._revive(agent, "pinged")
        self._send(ident, agent, p.PONG, None)

    def _on_control(self, message: Message, ident: bytes) -> None:
        sender = message.sender
        if sender not in self._control_clients:
            self._reject(ident, "sent a control message but is not a control client")
            return
        payload = message.payload if isinstance(message.payload, dict) else {}
        command = payload.get("command")
        error = None
        if command == "pause":
            self.paused = True
        elif command == "resume":
            self.paused = False
        elif command == "speed":
            value = payload.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                self.speed = float(value)
            else:
                error = f"speed must be a number of steps per second >= 0, got {value!r}"
        elif command != "status":
            error = f"unknown command {command!r}; use pause, resume, speed or status"
        if command in ("pause", "resume", "speed") and error is None:
            log.info("world: %s %s (paused %s, speed %s)", sender, command, self.paused, self.speed)
            self._next_publish = 0.0
        reply = {"paused": self.paused, "speed": self.speed, "tick": self.tick, "error": error}
        self._send(ident, sender, p.CONTROL, reply, seq=message.seq)

    def _refuse(self, agent: str, ident: bytes, reason: str | None = None) -> None:
        self.stats.refused += 1
        reason = reason or (
            f"unknown agent id {agent!r}; agents of {self.env_id} are {', '.join(self.agents)}"
        )
        log.warning("world: refused %r: %s (%d refused so far)", agent, reason, self.stats.refused)
        self._send(ident, agent, p.REFUSED, reason)
        self._event(agent, "refused", reason)

    def _reject(self, ident: bytes, reason: str) -> None:
        self.stats.rejected += 1
        log.warning(
            "world: rejected a frame from %r: %s (%d rejected so far)",
            ident,
            reason,
            self.stats.rejected,
        )

    def _lose(self, agent: str, reason: str) -> None:
        record = self.records[agent]
        if record.status is ALIVE:
            record.status = LOST
            record.lost += 1
            log.warning("world: agent %s lost at tick %d: %s", agent, self.tick, reason)
            self._event(agent, "lost", reason)

    def _revive(self, agent: str, how: str) -> None:
        self.records[agent].status = ALIVE
        log.info("world: agent %s back (%s) at tick %d", agent, how, self.tick)
        self._event(agent, "rejoined", how)

    def _send(self, ident: bytes, to: str, kind: str, payload: Any, seq: int = 0) -> None:
        frame = encode(Message(p.WORLD, to, kind, 0.0, seq, payload))
        try:
            self._sock.send(ident, zmq.SNDMORE)
            self._sock.send(frame)
        except zmq.ZMQError as exc:
            log.warning("world: cannot send %s to %s: %s", kind, to, exc.strerror)

    # ---------------------------------------------------------- waiting and pacing
    def _wait_for_agents(self) -> None:
        """Serve hellos until every agent is alive, the join timeout passes, or a stop."""
        deadline = time.monotonic() + self.settings.join_timeout
        while not self._stop.is_set():
            missing = [a for a in self.agents if self.records[a].status is not ALIVE]
            remaining = deadline - time.monotonic()
            if not missing:
                return
            if remaining <= 0:
                log.warning(
                    "world: starting without %s (not joined within %.1f s); they get safe "
                    "defaults until they join",
                    ", ".join(missing),
                    self.settings.join_timeout,
                )
                return
            if self._sock.poll(milliseconds(min(remaining, 0.1))):
                self._drain()

    def _pace(self) -> None:
        """Serve messages while paused, and until the next step is due at the set speed."""
        sock = self._sock
        while not self._stop.is_set():
            now = time.monotonic()
            if self.paused:
                wait = 0.1
            elif self.speed > 0:
                wait = self._due - now
                if wait <= 0:
                    break
            else:
                break
            if self.publisher is not None and now >= self._next_publish:
                self._publish_state()
            if sock.poll(milliseconds(min(wait, 0.1))):
                self._drain()
        # Steps are due on a grid of 1/speed, so the step's own time counts in its period; a
        # world that fell behind (a pause, slow agents) catches up by at most one period.
        period = 1.0 / self.speed if self.speed > 0 else 0.0
        self._due = max(self._due, time.monotonic() - period) + period

    _due = 0.0

    def _end_agents(self) -> None:
        for agent, record in self.records.items():
            if record.status is ALIVE:
                self._send(record.ident, agent, p.END, None)

    # -------------------------------------------------------------------- telemetry
    def _publish_tables(self) -> None:
        if self.publisher is None:
            return
        self._next_tables = time.monotonic() + 1.0
        self.publisher.publish(
            Message(
                p.WORLD, BROADCAST, p.TELEMETRY_EPISODE, 0.0, self._episode, self._episode_tables
            )
        )

    def _publish_state(self) -> None:
        now = time.monotonic()
        self._next_publish = now + 1.0 / self.settings.telemetry_hz
        if now >= self._next_tables:
            self._publish_tables()
        mark_time, mark_steps = self._rate_mark
        if now - mark_time >= 0.5:
            self._rate = (self.stats.steps - mark_steps) / (now - mark_time)
            self._rate_mark = (now, self.stats.steps)
        env = self.env
        sim_time = self._step * float(env.config.step_seconds)
        bus = env.router
        stats = bus.stats
        accepted = stats.sent - stats.rejected
        flights = [list(f) for f in bus.flights if f[2] <= sim_time < f[3]]
        state = {
            "tick": self.tick,
            "episode": self._episode,
            "seed": self._seed,
            "step": self._step,
            "sim_time_s": sim_time,
            "paused": self.paused,
            "speed": self.speed,
            "rate": round(self._rate, 1),
            "team_return": round(self._return, 3),
            "activities": self._executed,
            "defaulted": list(self.last_defaulted),
            "timeline": self._timeline,
            "agents": {agent: record.as_dict() for agent, record in self.records.items()},
            "messages": {
                "sent": stats.sent,
                "delivered": stats.delivered,
                "held": accepted - stats.delivered - stats.lost,
                "dropped": stats.rejected + stats.lost,
            },
            "flights": flights,
            "refused": self.stats.refused,
            **self.view.state(env, self._observations),
        }
        self.publisher.publish(
            Message(p.WORLD, BROADCAST, p.TELEMETRY_STATE, sim_time, self.tick, state)
        )

    def _event(self, agent: str, event: str, detail: str) -> None:
        if self.publisher is not None:
            payload = {"agent": agent, "event": event, "detail": detail, "tick": self.tick}
            self.publisher.publish(Message(p.WORLD, BROADCAST, p.TELEMETRY_EVENT, 0.0, 0, payload))

    # ------------------------------------------------------------------------- bus
    def _make_bus(
        self, endpoints: Sequence[str], links: LinkModel, buffer_limit: int
    ) -> TrackedBus:
        if self.settings.relay == "memory":
            return TrackedBus(Router(endpoints, links, buffer_limit), links)
        address = f"inproc://phobos-relay-{next(_relay_ids)}"
        server = ZmqServer(address, "relay", context=self.context)
        clients = {}
        try:
            for name in endpoints:
                clients[name] = ZmqClient(address, name, context=self.context)
            bus = RelayedBus(endpoints, links, buffer_limit, server=server, clients=clients)
        except BaseException:
            for client in clients.values():
                client.close()
            server.close()
            raise
        return TrackedBus(bus, links)
