"""A saved episode played as the live world plays one: the same telemetry, no agent processes.

``phobos demo --replay FILE`` re-simulates the episode of an ``evaluate --save-episodes``
file (:mod:`phobos.envs.recording`) from its env, config and seed with its actions, checking
every step's rewards against the file, and publishes what the world server publishes
(:class:`~phobos.live.world.telemetry.WorldTelemetry` over the environment's tracked
in-memory bus), so the dashboard shows it as it shows a live run. The agents' records say
``alive``: every action comes from the file.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import zmq

from phobos.comms.telemetry import TelemetryPublisher
from phobos.envs import make, recording
from phobos.live.world.records import ALIVE, AgentRecord, Progress, WorldStats
from phobos.live.world.telemetry import WorldTelemetry
from phobos.live.world.tracked_bus import make_bus
from phobos.live.world.views import view_for


class ReplayWorld:
    """Plays ``saved`` at ``speed`` steps per second and publishes the world's telemetry.

    Args:
        saved: The episode (read by :func:`phobos.envs.recording.read`).
        telemetry_address: Where the telemetry PUB binds.
        speed: Steps per second (0: as fast as it goes).
        telemetry_hz: Most state updates per second.

    """

    def __init__(
        self,
        saved: recording.SavedEpisode,
        telemetry_address: str = "tcp://127.0.0.1:*",
        speed: float = 4.0,
        telemetry_hz: float = 10.0,
    ) -> None:
        if not speed >= 0 or not telemetry_hz > 0:
            raise ValueError("speed must be at least 0 and telemetry_hz positive")
        self.saved = saved
        self.context = zmq.Context()
        self.publisher: TelemetryPublisher | None = None
        self.env: Any = None
        try:
            self.publisher = TelemetryPublisher(telemetry_address, context=self.context)
            bus = functools.partial(make_bus, "memory", self.context)
            self.env = make(saved.env_id, saved.config, message_bus=bus)
        except BaseException:
            self.close()
            raise
        self.agents = list(self.env.possible_agents)
        self.records = {agent: AgentRecord(status=ALIVE) for agent in self.agents}
        self.stats = WorldStats()
        self.progress = Progress(speed=speed, seed=saved.seed)
        self.view = view_for(self.env)
        self.telemetry = WorldTelemetry(
            self.publisher,
            telemetry_hz,
            self.env,
            self.view,
            self.progress,
            self.records,
            self.stats,
        )
        self._stop = threading.Event()

    @property
    def telemetry_address(self) -> str:
        """The telemetry PUB's address, with the port resolved."""
        return self.publisher.address

    def stop(self) -> None:
        """Make :meth:`run` return after the current step (thread- and signal-safe)."""
        self._stop.set()

    def run(self, steps: int | None = None, hold: bool = False) -> WorldStats:
        """Play the episode (at most ``steps`` steps).

        With ``hold``, keep publishing its last state until :meth:`stop`.

        Raises:
            ValueError: Where the file and the re-simulated episode part (step and field).

        """
        env, progress, telemetry, view = self.env, self.progress, self.telemetry, self.view
        names = {agent: list(env.action_names(agent)) for agent in self.agents}
        progress.episode, progress.seed = 0, self.saved.seed

        def begin(observations: dict[str, Any]) -> None:
            progress.observations = observations
            tables = {
                "episode": progress.episode,
                "seed": progress.seed,
                "env": self.saved.env_id,
                "agents": self.agents,
                "actions": names,
                "horizon": int(env.config.horizon_steps),
                "step_seconds": float(env.config.step_seconds),
                "activities": view.activities(env),  # the timeline's legend, as live
                "replay": {"file": self.saved.source, "team": self.saved.team},
                **view.episode(env),
            }
            telemetry.begin_episode(tables, self.agents)

        capture = False

        def advance(actions: dict[str, Any]) -> tuple:
            nonlocal capture
            capture = telemetry.due(time.monotonic())
            with env.router.capturing(telemetry.flights if capture else None):
                return env.step(actions)

        began = time.monotonic()
        due = began
        for step in recording.replay(self.saved, env, on_reset=begin, step=advance):
            executed = {agent: info["executed_action"] for agent, info in step.infos.items()}
            progress.observations, progress.executed = step.next_observations, executed
            view.record(env, executed)
            telemetry.note_executed(progress.step, executed)
            progress.team_return += float(next(iter(step.rewards.values()), 0.0))
            for agent in step.actions:
                self.records[agent].actions += 1
            progress.tick += 1
            progress.step += 1
            self.stats.steps += 1
            if capture:
                telemetry.publish_state()
            if self._stop.is_set() or (steps is not None and self.stats.steps >= steps):
                break
            if progress.speed > 0:  # pacing: wait for the next step's time (or a stop)
                due += 1.0 / progress.speed
                self._stop.wait(max(due - time.monotonic(), 0.0))
        else:
            self.stats.episodes = 1
            self.stats.returns.append(progress.team_return)
        self.stats.elapsed_s = time.monotonic() - began
        telemetry.publish_state()
        while hold and not self._stop.is_set():
            self._stop.wait(1.0)  # subscribers that join late get the final state each second
            telemetry.publish_state()
        return self.stats

    def close(self) -> None:
        """Close the environment, the publisher and the context (linger 0). Twice is allowed."""
        if self.env is not None:
            self.env.close()
            self.env = None
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None
        if not self.context.closed:
            self.context.destroy(linger=0)
