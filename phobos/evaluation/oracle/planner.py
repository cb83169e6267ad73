"""The planner team: the oracle's best schedule, flown open loop in the real environment.

The planner solves the episode offline with full knowledge of its plan tables
(:func:`~phobos.evaluation.oracle.solve.solve_episode`, started from the greedy team's
schedule), then flies that schedule in the real ``ParallelEnv``, message delays, masks and all:
its return is an achievable return, not a model value. Where the model's relaxations planned an
action the mask forbids at flight time, the agent idles instead and the override is counted
(``planner_overrides``). The greedy team's own flown schedule is flown beside it and the better
of the two is the planner's episode (``planner_flew_greedy`` says when that was greedy's), so
the planner is never below the greedy team. It is a reference, not a deployable team: no agent
could know the plan tables in advance.

Solutions are cached as JSON per (config, seed, time limit, workers, solver, model version),
so that a report reruns without solving again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from phobos.agents.policy import Policy
from phobos.evaluation.oracle.model import MODEL_VERSION, ORBIT
from phobos.evaluation.oracle.solve import GREEDY, OracleResult, greedy_schedule, solve_episode

PLANNER = "planner"
"""The planner team's name in ``--policy``."""


class ScheduledPolicy(Policy):
    """Plays a fixed action sequence, one per call; a masked action becomes idle (counted).

    Args:
        actions: The action of every step.

    """

    def __init__(self, actions: list[int]) -> None:
        self.actions = list(actions)
        self.step = 0
        self.overrides = 0

    def reset(self, seed: int | None = None) -> None:
        """Back to the first step."""
        self.step = 0
        self.overrides = 0

    def act(self, observation: Any) -> int:
        """The planned action of this step, or idle (0) where the mask forbids it."""
        action = self.actions[min(self.step, len(self.actions) - 1)]
        self.step += 1
        if not observation["action_mask"][action]:
            self.overrides += 1
            return 0
        return action


def cache_key(config: Any, seed: int, time_limit_s: float, workers: int, backend: str) -> str:
    """The cache file stem of one solve."""
    text = f"{MODEL_VERSION}|{config!r}|{seed}|{time_limit_s!r}|{workers}|{backend}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def solve_cached(
    config: Any,
    seed: int,
    time_limit_s: float,
    workers: int = 1,
    cache_dir: str | Path | None = None,
    backend: str = "scip",
) -> OracleResult:
    """:func:`solve_episode` with the greedy hint, read from / written to ``cache_dir``."""
    path = None
    if cache_dir is not None:
        key = cache_key(config, seed, time_limit_s, workers, backend)
        path = Path(cache_dir) / f"seed{seed}-{key}.json"
        if path.exists():
            return OracleResult.from_dict(json.loads(path.read_text()))
    result = solve_episode(config, seed, time_limit_s, workers, hint=GREEDY, backend=backend)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(result.as_dict(schedule=True)))
        partial.replace(path)  # atomic: a concurrent reader sees all of it or nothing
    return result


def fly_schedule(
    config: Any, seed: int, schedule: dict[str, list[int]], env_id: str = ORBIT
) -> Any:
    """Fly ``schedule`` open loop in the real environment.

    The EpisodeResult's metrics add ``planner_overrides``: planned actions the mask forbade
    at flight time, flown as idle.
    """
    from phobos.agents.team_spec import TeamSpec
    from phobos.evaluation.rollout import EpisodeSpec, run_episode

    team: dict[str, ScheduledPolicy] = {}

    def factory(spec: Any, env: Any, seed: int) -> dict[str, ScheduledPolicy]:
        team.update({agent: ScheduledPolicy(schedule[agent]) for agent in env.possible_agents})
        return team

    result = run_episode(EpisodeSpec(env_id, config, TeamSpec(PLANNER), seed), factory)
    if result.status == "ok":
        result.metrics["planner_overrides"] = float(sum(p.overrides for p in team.values()))
    return result


def planner_episode(spec: Any, solution: OracleResult | None) -> Any:
    """The planner's episode of ``spec``: the better of the solved and the greedy schedule.

    Args:
        spec: The episode (team ``planner``).
        solution: The seed's solve (``None`` or without a schedule: greedy's alone is flown).

    """
    from phobos.evaluation.rollout import EpisodeResult

    start = time.perf_counter()
    try:
        schedule = greedy_schedule(spec.config, spec.seed)
        greedy = fly_schedule(spec.config, spec.seed, schedule, spec.env_id)
    except Exception as error:  # noqa: BLE001 - one failed episode, not a failed run
        return EpisodeResult(PLANNER, spec.seed, "failed", error=f"{type(error).__name__}: {error}")
    best, planned = greedy, None
    if solution is not None and solution.schedule is not None:
        planned = fly_schedule(spec.config, spec.seed, solution.schedule, spec.env_id)
        if planned.status == "ok" and (
            planned.metrics["team_return"] >= greedy.metrics["team_return"]
        ):
            best = planned
    if best.status == "ok":
        best.metrics["planner_flew_greedy"] = float(best is greedy)
        if planned is not None and planned.status == "ok":
            best.metrics["planner_model_schedule_return"] = planned.metrics["team_return"]
    best.team = PLANNER
    best.wall_s = time.perf_counter() - start
    return best
