"""The world server: serves an environment to agent processes over ZeroMQ, in lock-step.

Each step the world sends every live agent its observation and waits for every action until
``action_timeout``. An agent that does not answer in time, is not connected, or answers with an
action outside its space gets its safe default (the environment's idle action, index 0: what a
masked action runs as) and is flagged: in :attr:`WorldServer.last_defaulted`, in its counters
and in telemetry. An agent that missed a deadline is marked lost: no longer waited for nor sent
observations, and its late answers are stale (counted, never reviving it). It comes back only
by a fresh hello (a restarted process announces itself with a new incarnation), gets
observations again from the step it rejoined, and is waited for again once it has answered a
few of them within the deadline (:mod:`~phobos.live.world.exchange`, probation): one slow or
flapping agent costs the others at most one deadline. Any speed change re-bases the pacing.

Sockets (one context; every receive polls with a timeout; everything closes with linger 0):

- a ROUTER (:class:`~phobos.comms.zmq_transport.ZmqServer`) for agents and the dashboard's
  controls, CURVE-secured with the allow-list of a key folder when one is given
  (:mod:`phobos.comms.security`); under CURVE an agent is the name of its key (the ZAP
  User-Id), and no connection takes over another (no ``router_handover``): a restarted agent
  is recognised by its key and its new incarnation; without CURVE (loopback tests only) names
  are routing ids, unauthenticated, and a restarted agent takes its id over;
- a PUB (:class:`~phobos.comms.telemetry.TelemetryPublisher`) for telemetry, which may drop:
  the state at most ``telemetry_hz`` times a second whatever the step rate, the episode's
  tables again every second for late subscribers, and agent events as they happen;
- the environment's message bus: the intents between agents cross the store-and-forward router
  behind a relay over ZeroMQ (``relay="zmq"``, :class:`~phobos.comms.bus.RelayedBus` on
  ``inproc://``) or the in-process router (``relay="memory"``); or, with ``relay="process"``,
  each agent process sends its own messages through the DTN relay process, and the world's
  DEALER to it (:mod:`~phobos.live.world.relay_bus`) sends the contact plan at each reset and
  asks, at the end of each step, for the copies that arrive (:mod:`phobos.live.dtn.protocol`).

The protocol is in :mod:`phobos.live.protocol`. With every agent answering, a seeded
episode gives the same trajectory as the same policies stepped in-process.

This module holds the lock-step loop and the sockets' lifetime; its parts are composed, not
inherited: :mod:`~phobos.live.world.exchange` (the ROUTER's messages and the agents' records),
:mod:`~phobos.live.world.telemetry` (what is published and how often),
:mod:`~phobos.live.world.tracked_bus` (the environment's bus) and
:mod:`~phobos.live.world.records` (settings, records and counters they share).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq

from phobos import config as config_tools
from phobos.comms.security import CurveAuthenticator, load_allow_list, load_keys
from phobos.comms.telemetry import TelemetryPublisher
from phobos.comms.transport import TransportError
from phobos.comms.zmq_transport import ZmqServer
from phobos.envs.episode import play
from phobos.envs.registry import make, make_config
from phobos.live import protocol as p
from phobos.live.dtn.protocol import FLUSH, FLUSHED, RELAY
from phobos.live.world.exchange import AgentExchange
from phobos.live.world.records import AgentRecord, Progress, WorldSettings, WorldStats
from phobos.live.world.relay_bus import ProcessRelayBus, RelayLink
from phobos.live.world.telemetry import WorldTelemetry
from phobos.live.world.tracked_bus import TrackedBus, make_bus
from phobos.live.world.views import view_for

log = logging.getLogger(__name__)


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
        self.context = zmq.Context()
        self.authenticator: CurveAuthenticator | None = None
        self.server: ZmqServer | None = None
        self.publisher: TelemetryPublisher | None = None
        self.relay_link: RelayLink | None = None
        try:
            curve = None
            if keys is not None:
                curve = load_keys(keys, p.WORLD)
                allowed = {k: v for k, v in load_allow_list(keys).items() if k != p.WORLD}
                self.authenticator = CurveAuthenticator(self.context, allowed).start()
            self.server = ZmqServer(address, p.WORLD, context=self.context, curve=curve)
            sock = self.server.socket
            if curve is None:
                sock.router_handover = 1
            if telemetry_address is not None:
                self.publisher = TelemetryPublisher(telemetry_address, context=self.context)
            if settings.relay == "process":
                bus = self._relay_process_bus(curve, keys)
            else:
                bus = functools.partial(make_bus, settings.relay, self.context)
            self.env = make(env_id, config, message_bus=bus)
            if settings.relay == "process" and not hasattr(self.env, "agent_messages"):
                raise ValueError(f"{env_id} has no message rule for agent processes")
        except BaseException:
            self.close()
            raise
        self.view = view_for(self.env)
        self.agents = list(self.env.possible_agents)
        self._names = {a: self.env.action_names(a) for a in self.agents}
        self.records = {agent: AgentRecord() for agent in self.agents}
        self.stats = WorldStats()
        self.progress = Progress(speed=settings.speed, seed=settings.seed)
        self.relay_ledger: dict[str, int] = {}
        """The DTN relay's own counters at the end of :meth:`run` (``relay="process"``)."""
        self.telemetry = WorldTelemetry(
            self.publisher,
            settings.telemetry_hz,
            self.env,
            self.view,
            self.progress,
            self.records,
            self.stats,
        )
        welcome = {"env": env_id, "config": config_tools.to_mapping(config), "agents": self.agents}
        if settings.relay == "process":
            welcome["relay"] = settings.relay_address
        self.exchange = AgentExchange(
            sock,
            curve=curve is not None,
            env=self.env,
            env_id=env_id,
            names=self._names,
            welcome=welcome,
            control_clients=control_clients,
            records=self.records,
            progress=self.progress,
            stats=self.stats,
            telemetry=self.telemetry,
            action_timeout=settings.action_timeout,
            first_action_grace=settings.first_action_grace,
        )
        self._stop = threading.Event()
        self._mark = 0.0  # when the last step was due (the pacing grid's origin)

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

    @property
    def tick(self) -> int:
        """Steps taken over all episodes."""
        return self.progress.tick

    @property
    def last_defaulted(self) -> tuple[str, ...]:
        """Agents given the safe default at the last step."""
        return self.progress.defaulted

    @property
    def paused(self) -> bool:
        """Whether stepping is paused (the dashboard's pause)."""
        return self.progress.paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self.progress.paused = value

    @property
    def speed(self) -> float:
        """Target steps per second; 0 is throttle off."""
        return self.progress.speed

    @speed.setter
    def speed(self, value: float) -> None:
        self.progress.speed = value

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
            if self.relay_link is not None:
                self._flush_relay()
            if end_agents:
                self.exchange.end_agents()
        return stats

    def _relay_process_bus(self, curve: Any, keys: Any) -> Any:
        """The bus factory of ``relay="process"``: the DTN relay carries what agents send."""
        if curve is None or self.settings.relay_address is None:
            raise ValueError("relay='process' needs CURVE keys and the relay's address")
        relay_key = load_keys(keys, RELAY).public
        link = self.relay_link = RelayLink(
            self.settings.relay_address, curve, relay_key, self.context
        )

        def factory(endpoints: Sequence[str], links: Any, buffer_limit: int) -> ProcessRelayBus:
            episode, kinds = self.progress.episode, self.env.message_kinds
            return ProcessRelayBus(link, episode, kinds, endpoints, links, buffer_limit)

        return factory

    def _flush_relay(self) -> None:
        """Let the relay hand over what it owes; keep its counters in :attr:`relay_ledger`."""
        try:
            answer = self.relay_link.request(FLUSH, 5.0, (FLUSHED,), retry=6.0)
        except TransportError as exc:
            log.warning("world: %s", exc)
            return
        if isinstance(answer.payload, dict):
            self.relay_ledger = dict(answer.payload)

    def close(self) -> None:
        """Close the environment, the sockets and the context (linger 0). Twice is allowed."""
        env = getattr(self, "env", None)
        if env is not None:
            env.close()
        for end in (self.server, self.publisher, self.relay_link):
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
        stats, env, view, progress = self.stats, self.env, self.view, self.progress
        telemetry, exchange = self.telemetry, self.exchange
        progress.episode += 1
        progress.seed = self.settings.seed + progress.episode
        observations, _ = env.reset(seed=progress.seed)
        progress.observations = observations
        progress.step = 0
        progress.team_return = 0.0
        tables = {
            "episode": progress.episode,
            "seed": progress.seed,
            "env": self.env_id,
            "agents": self.agents,
            "actions": {a: list(names) for a, names in self._names.items()},
            "horizon": int(env.config.horizon_steps),
            "step_seconds": float(env.config.step_seconds),
            "activities": view.activities(env),
            **view.episode(env),
        }
        progress.executed = {}
        telemetry.begin_episode(tables, self.agents)
        bus = env.router
        record = self.settings.record
        stop = self._stop
        ended = stopped = publish = False

        def act(observed: dict[str, Any]) -> dict[str, Any] | None:
            """The agents' actions, or None once a stop is asked (before or after pacing)."""
            nonlocal stopped
            if not stop.is_set() and (progress.paused or progress.speed > 0):
                self._pace()
            if stop.is_set():
                stopped = True
                return None
            return exchange.exchange(observed)

        def advance(actions: dict[str, Any]) -> tuple:
            """``env.step``; on the steps an update follows the bus samples messages in flight."""
            nonlocal publish
            now = time.monotonic()
            publish = telemetry.due(now)
            capture = publish or telemetry.shows_this_step(now)
            if self.relay_link is not None:
                bus.expect = progress.submitted
            with bus.capturing(telemetry.flights if capture else None):
                return env.step(actions)

        for step in play(env, act, observations, step=advance):
            progress.observations = step.next_observations
            executed = {agent: info["executed_action"] for agent, info in step.infos.items()}
            progress.executed = executed
            view.record(env, executed)
            telemetry.note_executed(progress.step, executed)
            if step.rewards:
                progress.team_return += next(iter(step.rewards.values()))
            if record:
                stats.records.append((progress.tick, dict(step.actions), progress.defaulted))
            progress.tick += 1
            progress.step += 1
            stats.steps += 1
            if publish:
                telemetry.publish_state()
            if (steps is not None and stats.steps >= steps) or time.monotonic() >= until:
                ended = True
                break
        if stopped:
            return True
        if not env.agents:
            stats.episodes += 1
            stats.returns.append(progress.team_return)
            log.info(
                "episode %d (seed %d) done: %d steps, team return %.2f",
                progress.episode,
                progress.seed,
                progress.step,
                progress.team_return,
            )
        if telemetry.enabled:
            telemetry.publish_state()
        return ended

    # ---------------------------------------------------------- waiting and pacing
    def _wait_for_agents(self) -> None:
        """Serve hellos until every agent is alive, the join timeout passes, or a stop.

        Meanwhile telemetry says who has joined and who is missing (the dashboard's "waiting
        for agents 3/5"), and nothing steps: no agent flies safe defaults because another is
        still loading its policy.
        """
        deadline = time.monotonic() + self.settings.join_timeout
        while not self._stop.is_set():
            missing = self.exchange.missing()
            remaining = deadline - time.monotonic()
            if not missing:
                return
            if self.telemetry.due(time.monotonic()):
                self.telemetry.publish_waiting(missing, remaining)
            if remaining <= 0:
                log.warning(
                    "world: starting without %s (not joined within %.1f s); they get safe "
                    "defaults until they join",
                    ", ".join(missing),
                    self.settings.join_timeout,
                )
                return
            self.exchange.poll(min(remaining, 0.1))

    def _pace(self) -> None:
        """Serve messages while paused, and until the next step is due at the set speed."""
        progress, telemetry = self.progress, self.telemetry
        while not self._stop.is_set():
            now = time.monotonic()
            if progress.paused:
                wait = 0.1
            elif progress.speed > 0:
                # Recomputed from the current speed on every pass: a speed change (or a pause)
                # re-bases the deadline at once, whatever the speed was.
                wait = self._mark + 1.0 / progress.speed - now
                if wait <= 0:
                    break
            else:
                break
            if telemetry.due(now):
                telemetry.publish_state()
            self.exchange.poll(min(wait, 0.1))
        # Steps are due on a grid of 1/speed, so the step's own time counts in its period; a
        # world that fell behind (a pause, slow agents) catches up by at most one period. The
        # mark is never in the future, so no speed, however small, can hold later ones back.
        now = time.monotonic()
        period = 1.0 / progress.speed if progress.speed > 0 else 0.0
        self._mark = min(now, max(self._mark + period, now - period))
