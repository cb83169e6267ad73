"""What the world server publishes for the dashboard, and how often.

Telemetry rides a PUB socket, which may drop, so everything here is a snapshot rather than a
stream of changes: the state at most ``telemetry_hz`` times a second whatever the step rate,
the episode's tables again every second for subscribers that joined late, and agent events
as they happen. :class:`WorldTelemetry` owns that cadence and the per-episode activity
timeline; the loop only asks whether an update is due. Without a publisher every method is
a no-op apart from the bookkeeping, so the loop needs no branches for it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from phobos.comms.codec import EncodeError
from phobos.comms.limits import LogLimiter, clip
from phobos.comms.message import BROADCAST, Message
from phobos.comms.message_bus import Flight
from phobos.comms.telemetry import TelemetryPublisher
from phobos.live import protocol as p
from phobos.live.world.records import ALIVE, AgentRecord, Progress, WorldStats
from phobos.live.world.views import TelemetryView

log = logging.getLogger(__name__)

OWN, DEFAULTED, LOST = 0, 1, 2
"""Marks of a timeline span: the agent's own action, a safe default while connected, a safe
default while lost (or not yet joined)."""


class WorldTelemetry:
    """Publishes a world's state, episode tables and agent events.

    Args:
        publisher: The PUB socket; None publishes nothing.
        telemetry_hz: Most state updates per second.
        env: The environment served (its bus is read at each update).
        view: What the dashboard is told about ``env``.
        progress: Where the run stands (shared with the loop).
        records: Per-agent records (shared with the exchange).
        stats: The run's counters.

    """

    def __init__(
        self,
        publisher: TelemetryPublisher | None,
        telemetry_hz: float,
        env: Any,
        view: TelemetryView,
        progress: Progress,
        records: dict[str, AgentRecord],
        stats: WorldStats,
    ) -> None:
        self.publisher = publisher
        self.env = env
        self.view = view
        self.progress = progress
        self.records = records
        self.stats = stats
        self._period = 1.0 / telemetry_hz
        self.tables: dict[str, Any] = {}
        self.timeline: dict[str, list[list[int]]] = {}
        self._last_action: dict[str, tuple[int, int]] = {}
        self._next_publish = 0.0
        self._next_tables = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self._rate = 0.0
        self.unsent = 0
        self._limited = LogLimiter(log)
        self.flights: deque[Flight] = deque(maxlen=64)
        """This episode's sample of messages in flight, which the bus captures into."""

    @property
    def enabled(self) -> bool:
        """Whether there is a publisher."""
        return self.publisher is not None

    def due(self, now: float) -> bool:
        """Whether a state update is due at monotonic time ``now``."""
        return self.publisher is not None and now >= self._next_publish

    def shows_this_step(self, now: float) -> bool:
        """Whether a state update comes before the next step (then note this step's messages).

        The messages sent in a step are noted (drawn in flight) only then. At a set speed
        the world publishes while it waits for the next step, so that update is due within
        one step period; flat out (speed 0) only :meth:`due` tells.
        """
        if self.publisher is None:
            return False
        speed = self.progress.speed
        return now + (1.0 / speed if speed > 0 else 0.0) >= self._next_publish

    def soon(self) -> None:
        """Make the next state update due now (a control changed what the dashboard shows)."""
        self._next_publish = 0.0

    def begin_episode(self, tables: dict[str, Any], agents: list[str]) -> None:
        """Start a new timeline and publish the new episode's ``tables``."""
        self.tables = tables
        self.timeline = {agent: [] for agent in agents}
        self._last_action = {}
        self.flights.clear()
        self.publish_tables()

    def note_executed(self, step: int, executed: dict[str, int]) -> None:
        """Extend the timeline with the actions carried out at ``step`` (runs every step).

        The timeline is, per agent, a list of spans ``[first step, action, mark]``, each
        lasting until the next one starts: ``action`` is the index of the action carried out
        (the dashboard names it and colours it by activity), ``mark`` is :data:`OWN` (the
        agent's own choice), :data:`DEFAULTED` (it was connected but gave no usable action in
        time: the safe default) or :data:`LOST` (lost or never joined: the safe default).
        """
        timeline, last = self.timeline, self._last_action
        defaulted = self.progress.defaulted
        for agent, action in executed.items():
            mark = OWN
            if defaulted and agent in defaulted:
                mark = DEFAULTED if self.records[agent].status == ALIVE else LOST
            key = (action, mark)
            if last.get(agent) != key:
                last[agent] = key
                timeline[agent].append([step, action, mark])

    def publish_tables(self) -> None:
        """Publish the episode's tables."""
        if self.publisher is None:
            return
        self._next_tables = time.monotonic() + 1.0
        self._publish(
            Message(
                p.WORLD, BROADCAST, p.TELEMETRY_EPISODE, 0.0, self.progress.episode, self.tables
            )
        )

    def publish_state(self) -> None:
        """Publish the state (and the tables, when a second has passed since they were)."""
        now = time.monotonic()
        self._next_publish = now + self._period
        if now >= self._next_tables:
            self.publish_tables()
        mark_time, mark_steps = self._rate_mark
        if now - mark_time >= 0.5:
            self._rate = (self.stats.steps - mark_steps) / (now - mark_time)
            self._rate_mark = (now, self.stats.steps)
        env, progress = self.env, self.progress
        sim_time = progress.step * float(env.config.step_seconds)
        # Messages in flight now, each [sender, receiver, departure s, arrival s] in the
        # episode's simulated time (arrival - departure is the light time; a Flight of the
        # bus contract): the dashboard draws them between the two ends. The bus notes them
        # as they are sent, on the steps an update follows (shows_this_step).
        flights = [list(f) for f in self.flights if f.depart_time <= sim_time < f.arrival_time]
        state = {
            "tick": progress.tick,
            "episode": progress.episode,
            "seed": progress.seed,
            "step": progress.step,
            "sim_time_s": sim_time,
            "paused": progress.paused,
            "speed": progress.speed,
            "rate": round(self._rate, 1),
            "team_return": round(progress.team_return, 3),
            "activities": progress.executed,
            "defaulted": list(progress.defaulted),
            "timeline": self.timeline,
            "agents": {agent: record.as_dict() for agent, record in self.records.items()},
            "messages": env.router.ledger(),
            "flights": flights,
            "refused": self.stats.refused,
            **self.view.state(env, progress.observations),
        }
        self._publish(
            Message(p.WORLD, BROADCAST, p.TELEMETRY_STATE, sim_time, progress.tick, state)
        )

    def publish_waiting(self, missing: list[str], left_s: float) -> None:
        """Publish the state before the first step: who has joined, who is still missing.

        The dashboard shows "waiting for agents 3/5" (and who is missing) from it instead of
        empty panels, while the world waits (up to ``join_timeout``, ``left_s`` of it left)
        without stepping.
        """
        if self.publisher is None:
            return
        self._next_publish = time.monotonic() + self._period
        agents = list(self.records)
        state = {
            "tick": self.progress.tick,
            "episode": self.progress.episode,
            "seed": self.progress.seed,
            "step": 0,
            "sim_time_s": 0.0,
            "paused": self.progress.paused,
            "speed": self.progress.speed,
            "rate": 0.0,
            "team_return": 0.0,
            "agents": {agent: record.as_dict() for agent, record in self.records.items()},
            "waiting": {
                "joined": len(agents) - len(missing),
                "expected": len(agents),
                "missing": list(missing),
                "left_s": round(max(left_s, 0.0), 1),
            },
            "refused": self.stats.refused,
        }
        self._publish(Message(p.WORLD, BROADCAST, p.TELEMETRY_STATE, 0.0, 0, state))

    def event(self, agent: str, event: str, detail: str) -> None:
        """Publish an agent event (joined, lost, restarted, ...) at the current tick."""
        if self.publisher is not None:
            payload = {
                "agent": clip(agent, 64),
                "event": event,
                "detail": clip(detail),
                "tick": self.progress.tick,
            }
            self._publish(Message(p.WORLD, BROADCAST, p.TELEMETRY_EVENT, 0.0, 0, payload))

    def _publish(self, message: Message) -> None:
        """Publish; what cannot be encoded is counted in :attr:`unsent` and logged (limited)."""
        try:
            self.publisher.publish(message)
        except EncodeError as exc:
            self.unsent += 1
            self._limited.warning("world: telemetry %s not sent: %s", message.kind, str(exc))
