"""One seeded episode -> one flat dict of metrics; the unit that the runner fans out on Ray.

Determinism: the environment and every policy are seeded from the episode's seed only
(``env.reset(seed=seed)``, and ``policy.reset(seed=seed + i)`` for the ``i``-th agent), so an
episode gives the same metrics in this process, in a Ray worker, or on another machine.

Metrics (per episode): ``team_return`` first, then the task's own (its task spec's
``metrics``, an :class:`~phobos.envs.task.EpisodeMetrics`; documented in the task folder's
``metrics.py``), then what every task shares: ``masked_actions``, ``messages_sent``,
``messages_delivered``, ``messages_dropped`` (rejected for a full buffer plus lost in
flight), ``latency_mean_s`` and ``latency_max_s`` (delivery time minus send time of
delivered messages, as the receiver first sees them: quantised to steps), and ``steps``.
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
from phobos.envs import constructor_arguments, make, recording, task_spec
from phobos.envs.episode import play


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything one episode needs; picklable, so it can travel to a Ray worker.

    Attributes:
        env_id: Registered environment id.
        config: The environment's configuration (a frozen dataclass); ``None`` for defaults.
        team: Which policy flies each agent.
        seed: The episode's seed; the only source of randomness.
        trace: Also record every executed action (for the report's schedule figures).
        record: Also keep every step's actions, rewards and delivered messages
            (:mod:`phobos.envs.recording`, for ``--save-episodes``).

    """

    env_id: str
    config: Any
    team: TeamSpec
    seed: int
    trace: bool = False
    record: bool = False


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
        episode: The episode's records, header first (only when requested).

    """

    team: str
    seed: int
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    wall_s: float = 0.0
    trace: dict[str, list[int]] | None = None
    episode: list[dict[str, Any]] | None = None

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
        self.delivered: list[dict[str, Any]] = []
        """Copies delivered since the recorder last took them (``record`` only)."""
        self.recording = False

    def deliver(self, until: float) -> list[tuple[str, Any]]:
        delivered = super().deliver(until)
        self.latencies.extend(until - message.send_time for _, message in delivered)
        if self.recording:
            self.delivered.extend(
                {
                    "from": message.sender,
                    "to": receiver,
                    "kind": message.kind,
                    "sent_s": float(message.send_time),
                    "delivered_s": float(until),
                }
                for receiver, message in delivered
            )
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
        metrics, trace, episode = _fly(spec, team_factory)
    except Exception:  # noqa: BLE001 - the run reports failures instead of stopping
        return EpisodeResult(
            spec.team.label,
            spec.seed,
            "failed",
            error=traceback.format_exc(),
            wall_s=time.perf_counter() - start,
        )
    return EpisodeResult(
        spec.team.label,
        spec.seed,
        "ok",
        metrics,
        wall_s=time.perf_counter() - start,
        trace=trace,
        episode=episode,
    )


def _fly(
    spec: EpisodeSpec, team_factory: Callable[[TeamSpec, Any, int], dict[str, Any]]
) -> tuple[dict[str, float], dict[str, list[int]] | None, list[dict[str, Any]] | None]:
    # The env's router also records delivery delays (for an env that takes a message bus).
    takes_bus = "message_bus" in constructor_arguments(spec.env_id)
    bus = {"message_bus": _LatencyRouter} if takes_bus else {}
    env = make(spec.env_id, spec.config, **bus)
    team = team_factory(spec.team, env, spec.seed)
    observations, _ = env.reset(seed=spec.seed)
    for i, agent in enumerate(env.possible_agents):
        team[agent].reset(seed=spec.seed + i)
    task_metrics = task_spec(spec.env_id).load("metrics")(env)
    trace: dict[str, list[int]] = {agent: [] for agent in env.possible_agents}
    team_return = 0.0
    infos: dict[str, dict[str, Any]] = {}
    episode = None
    if spec.record:
        config = spec.config if spec.config is not None else env.config
        agents = list(env.possible_agents)
        episode = [recording.header(spec.env_id, config, spec.seed, spec.team.label, agents)]
        if bus:
            env.router.recording = True
    for step in play(env, team, observations):
        infos = step.infos
        if episode is not None:
            delivered = env.router.delivered if bus else []
            episode.append(recording.step_record(len(episode) - 1, step, list(delivered)))
            delivered.clear()
        team_return += float(next(iter(step.rewards.values())))
        for agent, info in infos.items():
            trace[agent].append(int(info["executed_action"]))
        task_metrics.step(step.observations, step.next_observations, infos)
    summary = next(iter(infos.values()))["episode"]
    latencies = getattr(env.router, "latencies", []) if bus else []
    metrics: dict[str, float] = {"team_return": team_return}
    metrics.update(task_metrics.result(summary))
    metrics["masked_actions"] = float(summary.get("masked_actions", 0))
    metrics["messages_sent"] = float(summary.get("messages_sent", 0))
    metrics["messages_delivered"] = float(summary.get("messages_delivered", 0))
    metrics["messages_dropped"] = float(
        summary.get("messages_rejected", 0) + summary.get("messages_lost", 0)
    )
    metrics["latency_mean_s"] = float(np.mean(latencies)) if latencies else 0.0
    metrics["latency_max_s"] = float(np.max(latencies)) if latencies else 0.0
    metrics["steps"] = float(len(next(iter(trace.values()))))
    env.close()
    if episode is not None:
        episode[0] |= {"steps": len(episode) - 1, "team_return": team_return}
    return metrics, (trace if spec.trace else None), episode
