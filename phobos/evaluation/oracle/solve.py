"""Solve one episode's model: a proven bound (or an honest "none"), and the best schedule.

The model (:mod:`~phobos.evaluation.oracle.model`) is solved by SCIP on its exact linear
form (default) or by CP-SAT, both started from a complete hint: the greedy team's flown
trajectory. Where a bound comes from, and when it counts as proven:

- status ``OPTIMAL``: the optimum (source ``scip optimal`` / ``cp-sat optimal``);
- ``FEASIBLE``: the solver's proven dual bound (SCIP's best bound, CP-SAT's best objective
  bound), which holds even though the search stopped (source ``scip`` / ``cp-sat``);
- anything else (CP-SAT ``UNKNOWN``, ``MODEL_INVALID``, ``INFEASIBLE``; SCIP ``NOT_SOLVED``,
  ``ABNORMAL``): the solver proved nothing, and no number it printed is used;
- beside it, the LP relaxation of the same model (GLOP, source ``lp``), the fallback.

The smallest proven bound is reported. Without any the result says so: ``proven`` is false
and ``upper_bound`` is ``None``. Every proven bound has the model's worst objective rounding
added, and floating-point solvers' bounds a margin (:mod:`~phobos.evaluation.oracle.lp`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from phobos.envs.orbit_scheduling.config import OrbitSchedulingConfig
from phobos.evaluation.oracle.hints import apply_hint, apply_pin, trajectory_point
from phobos.evaluation.oracle.lp import lp_bound, mip_solve
from phobos.evaluation.oracle.model import ORBIT, VALUE_UNIT, build_model

LP_SECONDS = 10.0
"""The LP fallback's least time limit (GLOP solves a day's model in a few seconds)."""
WINDOW_STEPS = 96
"""SCIP's improvement windows, with ``windows=True`` (eight hours of the default day)."""
BACKENDS = ("scip", "cp-sat")
"""Solvers of the model: SCIP on its exact linear form (the default: on a day's episode it
finds far better schedules and bounds than CP-SAT in the same time) or CP-SAT."""
GREEDY = "greedy"
"""``hint=GREEDY``: start the search from the greedy team's flown schedule."""


@dataclass(frozen=True)
class OracleResult:
    """The oracle's answer for one seeded episode.

    Attributes:
        seed: The episode's seed.
        status: The solver's status name (``OPTIMAL``, ``FEASIBLE``, ``UNKNOWN``, ...).
        proven: A bound was proven (``upper_bound`` is then a number, else ``None``).
        upper_bound: Proven upper bound of any policy's team return on this episode.
        bound_source: ``scip``, ``cp-sat`` (``... optimal`` when solved to optimality) or
            ``lp`` (``""`` without a bound).
        solver: The MIP backend: ``scip`` (branch and cut on the linear form) or ``cp-sat``.
        solver_bound: That solver's proven bound, if it proved one.
        lp_bound: The LP relaxation's bound, if it was solved.
        objective: Model value of the best schedule found (``None``: none found).
        optimal: CP-SAT proved the schedule optimal for the model.
        wall_s: Seconds of model building and solving.
        time_limit_s: The solver's wall-clock limit.
        workers: Search workers (SCIP: 1).
        deterministic_s: CP-SAT's deterministic time used (machine-independent effort; 0
            for SCIP).
        schedule: Per agent, the action of every step of the best schedule found.

    """

    seed: int
    status: str
    proven: bool
    upper_bound: float | None
    bound_source: str
    solver: str
    solver_bound: float | None
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
    backend: str = "scip",
    windows: bool = False,
) -> OracleResult:
    """Bound and best schedule of the episode ``reset(seed=seed)`` draws under ``config``.

    Args:
        config: The task's configuration (``None``: defaults).
        seed: The episode's seed.
        time_limit_s: The solver's wall-clock limit (positive).
        workers: CP-SAT search workers (SCIP uses one thread).
        hint: A schedule (executed actions per agent) to start from, completed into a full
            solution by :func:`~phobos.evaluation.oracle.hints.trajectory_point`; ``GREEDY``
            (the default) for the greedy team's; ``None`` for no hint.
        pin: Fix the model's decisions to this schedule (the dominance cut is then left
            out): the model must accept it with an objective at least its flown return.
        pin_all: With ``pin``, fix every variable to the schedule's trajectory point, so
            that CP-SAT checks that point itself.
        lp_fallback: Also solve the model's LP relaxation (GLOP): the bound when the solver
            proves none, and sometimes the tighter one even when it does.
        backend: ``scip`` or ``cp-sat`` (:data:`BACKENDS`).
        windows: SCIP only: give a quarter of the time to improving the schedule window by
            window (:func:`~phobos.evaluation.oracle.lp.mip_solve`). Off by default: on the
            20 default-day episodes of seeds 5000-5019 on a loaded 2-core machine, the
            whole model's lost quarter cost more schedules than the windows won.

    """
    time_limit_s = check_time_limit(time_limit_s)
    if backend not in BACKENDS:
        raise ValueError(f"unknown oracle solver {backend!r}; choose from {', '.join(BACKENDS)}")
    start = time.perf_counter()
    em = build_model(config, seed, dominance=pin is None)
    point = None
    if pin is not None:
        apply_pin(em, trajectory_point(em, pin), decisions_only=not pin_all)
    elif hint is not None:
        schedule = greedy_schedule(em.config, seed) if isinstance(hint, str) else hint
        point = trajectory_point(em, schedule)
        apply_hint(em, point)
    if backend == "scip":
        index = {id(var): var.Index() for var in point} if point else {}
        found = mip_solve(
            em.model.Proto(),
            {index[id(var)]: value for var, value in point.items()} if point else None,
            time_limit_s,
            *(_windows(em) if windows and pin is None else ([], [])),
        )
        name, objective, effort = found.status, found.objective, 0.0
        solver_bound = None if found.bound is None else found.bound + em.rounding
        values = found.values

        def chosen(var: Any) -> bool:
            return values[var.Index()] > 0.5

    else:
        name, objective, solver_bound, chosen, effort = _cp_sat(em, time_limit_s, workers)
    lp = None
    if lp_fallback and pin is None:
        # Cheap (seconds), and sometimes tighter than the solver's own bound: always solved.
        value = lp_bound(em.model.Proto(), max(time_limit_s, LP_SECONDS))
        lp = None if value is None else value * VALUE_UNIT + em.rounding
    proven = [(b, s) for b, s in ((solver_bound, backend), (lp, "lp")) if b is not None]
    bound, source = min(proven) if proven else (None, "")
    if name == "OPTIMAL" and source == backend:
        source = f"{backend} optimal"
    return OracleResult(
        seed=seed,
        status=name,
        proven=bound is not None,
        upper_bound=bound,
        bound_source=source,
        solver=backend,
        solver_bound=solver_bound,
        lp_bound=lp,
        objective=objective,
        optimal=name == "OPTIMAL",
        wall_s=time.perf_counter() - start,
        time_limit_s=time_limit_s,
        workers=1 if backend == "scip" else max(int(workers), 1),
        deterministic_s=effort,
        schedule=None if objective is None else em.schedule(chosen),
    )


def _windows(em: Any) -> tuple[list[list[int]], list[int]]:
    """Overlapping windows of ``WINDOW_STEPS`` steps (stride half that) and every decision.

    A window is the list of the decision variables (activities, tracking) it leaves free.
    """
    steps = len(em.x)
    if steps <= WINDOW_STEPS:
        return [], []

    def at(t: int) -> list[int]:
        craft = [var.Index() for c in (0, 1) for var in em.x[t][c]]
        return craft + [var.Index() for station in em.track[t] for var in station]

    stride = WINDOW_STEPS // 2
    starts = range(0, steps - stride, stride)
    windows = [[i for t in range(a, min(a + WINDOW_STEPS, steps)) for i in at(t)] for a in starts]
    return windows, [i for t in range(steps) for i in at(t)]


def _cp_sat(em: Any, time_limit_s: float, workers: int) -> tuple[Any, ...]:
    """CP-SAT on the model: status name, objective, proven bound, value test, effort."""
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = max(int(workers), 1)
    solver.parameters.random_seed = 0
    status = solver.Solve(em.model)
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    objective = solver.ObjectiveValue() * VALUE_UNIT if found else None
    bound = None  # UNKNOWN (or worse): CP-SAT proved nothing, whatever bound it prints
    if status == cp_model.OPTIMAL:
        bound = objective + em.rounding
    elif status == cp_model.FEASIBLE:
        bound = max(solver.BestObjectiveBound() * VALUE_UNIT, objective) + em.rounding
    effort = float(solver.ResponseProto().deterministic_time)
    return solver.StatusName(status), objective, bound, solver.BooleanValue, effort
