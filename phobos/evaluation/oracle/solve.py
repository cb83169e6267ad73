"""Solve one episode's model: a proven bound (or an honest "none"), and the best schedule.

Where a bound comes from, and when it counts as proven:

- CP-SAT status ``OPTIMAL``: the optimum (source ``optimal``);
- ``FEASIBLE``: CP-SAT's best objective bound, its proven dual bound (source ``cp-sat``);
- ``UNKNOWN`` (or anything else): CP-SAT proved nothing, and the bound it reports is not used;
  the linear relaxation of the same model, solved by GLOP, is the fallback (source ``lp``).

Without any of them the result says so: ``proven`` is false and ``upper_bound`` is ``None``.
Every proven bound has the model's worst objective rounding added (see
:mod:`~phobos.evaluation.oracle.model`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from phobos.envs.orbit_scheduling.config import OrbitSchedulingConfig
from phobos.evaluation.oracle.hints import apply_hint, apply_pin, trajectory_point
from phobos.evaluation.oracle.lp import lp_bound
from phobos.evaluation.oracle.model import ORBIT, VALUE_UNIT, build_model

LP_SECONDS = 10.0
"""The LP fallback's least time limit (GLOP solves a day's model in a few seconds)."""
GREEDY = "greedy"
"""``hint=GREEDY``: start the search from the greedy team's flown schedule."""


@dataclass(frozen=True)
class OracleResult:
    """The oracle's answer for one seeded episode.

    Attributes:
        seed: The episode's seed.
        status: CP-SAT's status name.
        proven: A bound was proven (``upper_bound`` is then a number, else ``None``).
        upper_bound: Proven upper bound of any policy's team return on this episode.
        bound_source: ``optimal``, ``cp-sat`` or ``lp`` (``""`` without a bound).
        cp_bound: CP-SAT's proven bound, if it proved one.
        lp_bound: The LP relaxation's bound, if it was solved.
        objective: Model value of the best schedule found (``None``: none found).
        optimal: CP-SAT proved the schedule optimal for the model.
        wall_s: Seconds of model building and solving.
        time_limit_s: CP-SAT's wall-clock limit.
        workers: CP-SAT search workers.
        deterministic_s: CP-SAT's deterministic time used (machine-independent effort).
        schedule: Per agent, the action of every step of the best schedule found.

    """

    seed: int
    status: str
    proven: bool
    upper_bound: float | None
    bound_source: str
    cp_bound: float | None
    lp_bound: float | None
    objective: float | None
    optimal: bool
    wall_s: float
    time_limit_s: float
    workers: int
    deterministic_s: float
    schedule: dict[str, list[int]] | None = field(default=None, repr=False)

    @property
    def bound_gap(self) -> float | None:
        """The bound's distance to the best schedule found, as a share of the bound."""
        if self.upper_bound is None or self.objective is None or self.upper_bound <= 1e-9:
            return None
        return (self.upper_bound - self.objective) / self.upper_bound

    def as_dict(self, schedule: bool = False) -> dict[str, Any]:
        """Plain values for JSON (the schedule only when asked)."""
        out = {k: v for k, v in self.__dict__.items() if k != "schedule"}
        out["bound_gap"] = self.bound_gap
        if schedule:
            out["schedule"] = self.schedule
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OracleResult:
        """The inverse of :meth:`as_dict` (with its schedule)."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**fields)


def check_time_limit(seconds: float) -> float:
    """``seconds`` as a CP-SAT limit; raises ValueError unless it is positive and finite."""
    import math

    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"the oracle's time limit must be a positive number, got {seconds!r}")
    return float(seconds)


def greedy_schedule(config: OrbitSchedulingConfig | None, seed: int) -> dict[str, list[int]]:
    """The greedy team's executed actions on the episode (its flown trace)."""
    from phobos.agents.team_spec import TeamSpec
    from phobos.evaluation.rollout import EpisodeSpec, run_episode

    result = run_episode(EpisodeSpec(ORBIT, config, TeamSpec("greedy"), seed, trace=True))
    if result.status != "ok" or result.trace is None:
        raise RuntimeError(f"the greedy team failed on seed {seed}: {result.error}")
    return result.trace


def solve_episode(
    config: OrbitSchedulingConfig | None,
    seed: int,
    time_limit_s: float = 10.0,
    workers: int = 1,
    hint: dict[str, list[int]] | str | None = GREEDY,
    pin: dict[str, list[int]] | None = None,
    pin_all: bool = False,
    lp_fallback: bool = True,
) -> OracleResult:
    """Bound and best schedule of the episode ``reset(seed=seed)`` draws under ``config``.

    Args:
        config: The task's configuration (``None``: defaults).
        seed: The episode's seed.
        time_limit_s: CP-SAT's wall-clock limit (positive).
        workers: CP-SAT search workers (1 is deterministic for a given limit's effort).
        hint: A schedule (executed actions per agent) to start from, completed into a full
            solution by :func:`~phobos.evaluation.oracle.hints.trajectory_point`; ``GREEDY``
            (the default) for the greedy team's; ``None`` for no hint.
        pin: Fix the model's decisions to this schedule (the dominance cut is then left
            out): the model must accept it with an objective at least its flown return.
        pin_all: With ``pin``, fix every variable to the schedule's trajectory point, so
            that CP-SAT checks that point itself.
        lp_fallback: Also solve the model's LP relaxation (GLOP): the bound when CP-SAT
            proves none, and the tighter one often even when it does.

    """
    from ortools.sat.python import cp_model

    time_limit_s = check_time_limit(time_limit_s)
    start = time.perf_counter()
    em = build_model(config, seed, dominance=pin is None)
    if pin is not None:
        apply_pin(em, trajectory_point(em, pin), decisions_only=not pin_all)
    elif hint is not None:
        schedule = greedy_schedule(em.config, seed) if isinstance(hint, str) else hint
        apply_hint(em, trajectory_point(em, schedule))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = max(int(workers), 1)
    solver.parameters.random_seed = 0
    status = solver.Solve(em.model)
    name = solver.StatusName(status)
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    objective = solver.ObjectiveValue() * VALUE_UNIT if found else None
    cp_bound = None
    if status == cp_model.OPTIMAL:
        cp_bound = objective + em.rounding
    elif status == cp_model.FEASIBLE:
        cp_bound = max(solver.BestObjectiveBound() * VALUE_UNIT, objective) + em.rounding
    lp = None
    if lp_fallback and pin is None:
        # Cheap (seconds), and often tighter than CP-SAT's own bound: always solved.
        value = lp_bound(em.model.Proto(), max(time_limit_s, LP_SECONDS))
        lp = None if value is None else value * VALUE_UNIT + em.rounding
    proven = [(b, s) for b, s in ((cp_bound, "cp-sat"), (lp, "lp")) if b is not None]
    bound, source = min(proven) if proven else (None, "")
    if status == cp_model.OPTIMAL and source == "cp-sat":
        source = "optimal"
    return OracleResult(
        seed=seed,
        status=name,
        proven=bound is not None,
        upper_bound=bound,
        bound_source=source,
        cp_bound=cp_bound,
        lp_bound=lp,
        objective=objective,
        optimal=status == cp_model.OPTIMAL,
        wall_s=time.perf_counter() - start,
        time_limit_s=time_limit_s,
        workers=max(int(workers), 1),
        deterministic_s=float(solver.ResponseProto().deterministic_time),
        schedule=em.schedule(solver.BooleanValue) if found else None,
    )
