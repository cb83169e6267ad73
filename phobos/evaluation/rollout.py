"""One seeded episode -> one flat dict of metrics; the unit that the runner fans out on Ray.

Determinism: the environment and every policy are seeded from the episode's seed only
(``env.reset(seed=seed)``, and ``policy.reset(seed=seed + i)`` for the ``i``-th agent), so an
episode gives the same metrics in this process, in a Ray worker, or on another machine.

Metrics of ``orbit-scheduling-v0`` (per episode): ``team_return`` and its parts ``science``,
``occultation`` (value delivered to Earth) and ``energy_penalty``; ``occultations`` (joint
occultations completed), ``data_volume_mbit`` (bits the spacecraft downlinked to a tracking
station, read from the storage fractions the spacecraft observe around each downlink step),
``energy_violations``, ``storage_violations`` (spacecraft-steps ending with less free
memory than the spacecraft's largest observation needs, so that observation is masked),
``masked_actions``.

Metrics of ``phobos-sampling-v0``: ``team_return`` and its parts ``sample_value``,
``diversity_bonus``, ``failure_penalty``, ``energy_penalty``; ``samples``, ``sample_mass_g``,
``classes_stowed`` (diversity), ``failures``, ``decisions_without_ground``,
``samples_with_advice``, ``energy_violations``, ``masked_actions``.

Both: ``messages_sent``, ``messages_delivered``, ``messages_dropped`` (rejected for a full
buffer plus lost in flight), ``latency_mean_s`` and ``latency_max_s`` (delivery time minus
send time of delivered messages, as the receiver first sees them: quantised to steps), and
``steps``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from phobos.agents.team_spec import TeamSpec, build_team
from phobos.comms.router import Router
from phobos.envs import make

ORBIT_ENV = "orbit-scheduling-v0"
ORBIT_ENVS = (ORBIT_ENV, "orbit-scheduling-v1")
"""Every version of the orbit task: the same metrics, oracle and schedule figure."""
SAMPLING_ENV = "phobos-sampling-v0"


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything one episode needs; picklable, so it can travel to a Ray worker.

    Attributes:
        env_id: Registered environment id.
        config: The environment's configuration (a frozen dataclass); ``None`` for defaults.
        team: Which policy flies each agent.
        seed: The episode's seed; the only source of randomness.
        trace: Also record every executed action (for the report's schedule figures).

    """

    env_id: str
    config: Any
    team: TeamSpec
    seed: int
    trace: bool = False


@dataclass
class EpisodeResult:
    """What one episode produced.

    Attributes:
        team: The team's label.
        seed: The episode's seed.
        status: ``"ok"`` or ``"failed"``.
        metrics: Flat name -> number (empty when failed).
        error: The traceback of a failed episode.
        wall_s: Seconds the episode took.
        trace: Per agent, the executed action of every step (only when requested).

    """

    team: str
    seed: int
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    wall_s: float = 0.0
    trace: dict[str, list[int]] | None = None

    def row(self) -> dict[str, Any]:
        """A flat record for JSON and CSV (the trace is left out)."""
        return {
            "team": self.team,
            "seed": self.seed,
            "status": self.status,
            "wall_s": round(self.wall_s, 6),
            **self.metrics,
            "error": self.error,
        }


class _LatencyRouter(Router):
    """The environment's router, recording the delay of every copy it delivers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.latencies: list[float] = []

    def deliver(self, until: float) -> list[tuple[str, Any]]:
        delivered = super().deliver(until)
        self.latencies.extend(until - message.send_time for _, message in delivered)
        return delivered


def run_episode(
    spec: EpisodeSpec, team_factory: Callable[[TeamSpec, Any, int], dict[str, Any]] = build_team
) -> EpisodeResult:
    """Fly one episode; any exception is captured into a ``failed`` result with its traceback.

    The episode never raises, so one crashed episode cannot take a whole run down.
    ``team_factory(team_spec, env, seed)`` builds the policies (tests swap in their own).
    """
    start = time.perf_counter()
    try:
        metrics, trace = _fly(spec, team_factory)
    except Exception:  # noqa: BLE001 - the run reports failures instead of stopping
        return EpisodeResult(
            spec.team.label,
            spec.seed,
            "failed",
            error=traceback.format_exc(),
            wall_s=time.perf_counter() - start,
        )
    return EpisodeResult(
        spec.team.label, spec.seed, "ok", metrics, wall_s=time.perf_counter() - start, trace=trace
    )


def _fly(
    spec: EpisodeSpec, team_factory: Callable[[TeamSpec, Any, int], dict[str, Any]]
) -> tuple[dict[str, float], dict[str, list[int]] | None]:
    registered = make(spec.env_id, spec.config) if spec.config is not None else make(spec.env_id)
    # The same class and config again, with a router that also records delivery delays.
    env = type(registered)(registered.config, message_bus=_LatencyRouter)
    team = team_factory(spec.team, env, spec.seed)
    observations, _ = env.reset(seed=spec.seed)
    for i, agent in enumerate(env.possible_agents):
        team[agent].reset(seed=spec.seed + i)
    orbit = spec.env_id in ORBIT_ENVS
    trace: dict[str, list[int]] = {agent: [] for agent in env.possible_agents}
    totals = {"team_return": 0.0, "energy_penalty": 0.0, "downlinked_bits": 0.0, "full": 0}
    infos: dict[str, dict[str, Any]] = {}
    while env.agents:
        actions = {agent: team[agent](observations[agent]) for agent in env.agents}
        before = observations
        observations, rewards, _, _, infos = env.step(actions)
        first = next(iter(infos.values()))
        totals["team_return"] += float(next(iter(rewards.values())))
        totals["energy_penalty"] += float(first.get("energy_penalty", 0.0))
        for agent, info in infos.items():
            trace[agent].append(int(info["executed_action"]))
        if orbit:
            _orbit_step(env, before, observations, infos, totals)
    summary = next(iter(infos.values()))["episode"]
    router: _LatencyRouter = env.router
    latencies = router.latencies
    metrics: dict[str, float] = {"team_return": totals["team_return"]}
    if orbit:
        keys = ("science", "occultation")
        metrics.update({k: float(summary[k]) for k in keys})
        metrics["energy_penalty"] = totals["energy_penalty"]
        metrics["occultations"] = float(summary["occultations"])
        metrics["data_volume_mbit"] = totals["downlinked_bits"] / 1e6
        metrics["energy_violations"] = float(summary["energy_violations"])
        metrics["storage_violations"] = float(totals["full"])
    else:
        keys = ("sample_value", "diversity_bonus", "failure_penalty")
        metrics.update({k: float(summary[k]) for k in keys})
        metrics["energy_penalty"] = totals["energy_penalty"]
        for key in (
            "samples",
            "sample_mass_g",
            "classes_stowed",
            "failures",
            "decisions_without_ground",
            "samples_with_advice",
            "energy_violations",
        ):
            metrics[key] = float(summary[key])
    metrics["masked_actions"] = float(summary["masked_actions"])
    metrics["messages_sent"] = float(summary["messages_sent"])
    metrics["messages_delivered"] = float(summary["messages_delivered"])
    metrics["messages_dropped"] = float(summary["messages_rejected"] + summary["messages_lost"])
    metrics["latency_mean_s"] = float(np.mean(latencies)) if latencies else 0.0
    metrics["latency_max_s"] = float(np.max(latencies)) if latencies else 0.0
    metrics["steps"] = float(len(next(iter(trace.values()))))
    env.close()
    return metrics, (trace if spec.trace else None)


def _orbit_step(
    env: Any,
    before: dict[str, dict[str, np.ndarray]],
    after: dict[str, dict[str, np.ndarray]],
    infos: dict[str, dict[str, Any]],
    totals: dict[str, Any],
) -> None:
    from phobos.envs.orbit_scheduling.config import DOWNLINK, SPACECRAFT
    from phobos.envs.orbit_scheduling.layout import STORAGE

    column = env.layout.own_field(STORAGE)
    for craft in SPACECRAFT:
        config = getattr(env.config, craft)
        capacity = config.storage_mbit * 1e6
        # A downlink step adds no data of its own (data_mbit[downlink] is 0 in every shipped
        # config), so the fall in stored bits is what was sent.
        if infos[craft]["executed_action"] == DOWNLINK:
            fall = float(
                before[craft]["observations"][column] - after[craft]["observations"][column]
            )
            totals["downlinked_bits"] += max(fall, 0.0) * capacity
        room = (1.0 - float(after[craft]["observations"][column])) * capacity
        if room < max(config.data_mbit) * 1e6 * (1.0 - 1e-9):
            totals["full"] += 1
