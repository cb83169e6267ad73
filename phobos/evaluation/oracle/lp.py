"""The oracle's model in linear form: its LP relaxation (GLOP) and the MIP itself (SCIP).

Every CP-SAT constraint the oracle's model uses becomes linear over ``[lb, ub]`` boxes of its
variables: an enforced linear constraint ``l1 and l2 ... => lo <= e <= hi`` becomes
``e <= hi + (max e - hi) * sum(1 - l_i)`` (and the same for ``lo``), with ``max e`` taken over
the variables' domains, which is exact when every literal holds and redundant otherwise;
clauses, conjunctions and at-most/exactly-one constraints become sums of literals. Every
integer point of the model is a point of the LP, so the LP optimum bounds the model's; with
the variables kept integer the big-M forms are exact, so the MIP *is* the model, and a
branch-and-cut solver (SCIP, bundled with OR-Tools) proves a dual bound on it.

Both solvers work in floating point: a bound they report has ``MARGIN`` (relative) and
``ABSOLUTE_MARGIN`` added, far above their tolerances (1e-6 feasibility, 1e-9 optimality on
values of order 100), so that a tolerance cannot make a reported bound fall below the optimum.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

KINDS = ("linear", "bool_or", "bool_and", "at_most_one", "exactly_one")
"""The constraint kinds the oracle's model uses; any other is refused."""
MARGIN = 1e-5
"""Relative margin added to a floating-point solver's bound."""
ABSOLUTE_MARGIN = 1e-3
"""Absolute margin (value) added to a floating-point solver's bound."""


@dataclass(frozen=True)
class MipResult:
    """What SCIP found on the model.

    Attributes:
        status: ``OPTIMAL``, ``FEASIBLE``, ``INFEASIBLE``, ``NOT_SOLVED`` or ``ABNORMAL``.
        objective: The best solution's value (value units), if one was found.
        bound: The proven dual bound with the margins added, if SCIP proved one.
        values: The best solution, one integer per model variable (proto order).

    """

    status: str
    objective: float | None
    bound: float | None
    values: list[int] | None


def lp_bound(proto: Any, time_limit_s: float) -> float | None:
    """The LP relaxation's optimum of a maximising ``CpModelProto`` (``None``: not solved).

    The value is in the model's objective units (``scaling_factor`` applied).
    """
    solver, _ = linearise(proto, "GLOP", integer=False)
    solver.SetTimeLimit(int(max(time_limit_s, 0.1) * 1000))
    from ortools.linear_solver import pywraplp

    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        return None
    value = solver.Objective().Value()
    return (value + MARGIN * abs(value) + ABSOLUTE_MARGIN) * 1e6


WHOLE_SHARE = 0.75
"""Share of the time limit the whole model gets when windows follow."""
STATUS = {0: "OPTIMAL", 1: "FEASIBLE", 2: "INFEASIBLE", 3: "UNBOUNDED", 4: "ABNORMAL"}


def mip_solve(
    proto: Any,
    hint: dict[int, int] | None,
    time_limit_s: float,
    windows: list[list[int]] | None = None,
    decisions: list[int] | None = None,
    backend: str = "SCIP",
) -> MipResult:
    """Solve the model as a MIP, started from ``hint`` (variable index -> value).

    With ``windows``, the whole model gets ``WHOLE_SHARE`` of the time (its dual bound is the
    bound); the rest improves its best solution one window at a time: every ``decisions``
    variable outside the window fixed to the best solution's value, the window's free (a
    large-neighbourhood search, for the episodes whose whole root LP is too slow for SCIP to
    leave the hint in time; it changes the schedule, never the bound). The objective and
    bound are in value (the model's units times 1e-6).
    """
    start = time.perf_counter()
    solver, xs = linearise(proto, backend, integer=True)
    if hint:
        solver.SetHint([xs[i] for i in hint], [float(v) for v in hint.values()])
    whole = time_limit_s * (WHOLE_SHARE if windows else 1.0)
    solver.SetTimeLimit(int(max(whole - (time.perf_counter() - start), 0.1) * 1000))
    code = solver.Solve()
    status = STATUS.get(code, "NOT_SOLVED")
    if status not in ("OPTIMAL", "FEASIBLE"):
        return MipResult(status, None, None, None)
    objective = solver.Objective().Value()
    dual = solver.Objective().BestBound() if status == "FEASIBLE" else objective
    bound = None
    if math.isfinite(dual):  # SCIP stopped before its root LP: no dual bound
        bound = max(dual, objective)
        bound += MARGIN * abs(bound) + ABSOLUTE_MARGIN
    values = [round(x.solution_value()) for x in xs]
    if status == "FEASIBLE" and windows and decisions:
        for n, free in enumerate(windows):
            left = time_limit_s - (time.perf_counter() - start)
            if left < 0.5:
                break
            found = _window(solver, xs, values, set(free), decisions, left / (len(windows) - n))
            if found is not None and found[0] > objective + 1e-9:
                objective, values = found
    return MipResult(status, objective, bound, values)


def _window(
    solver: Any, xs: list[Any], values: list[int], free: set[int], decisions: list[int], s: float
) -> tuple[float, list[int]] | None:
    """Re-solve with the decisions outside ``free`` fixed to ``values``; the bounds restored."""
    from ortools.linear_solver import pywraplp

    fixed = [(i, xs[i].lb(), xs[i].ub()) for i in decisions if i not in free]
    for i, _, _ in fixed:
        xs[i].SetBounds(values[i], values[i])
    solver.SetHint(xs, [float(v) for v in values])
    solver.SetTimeLimit(int(max(s, 0.1) * 1000))
    code = solver.Solve()
    found = None
    if code in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        found = solver.Objective().Value(), [round(x.solution_value()) for x in xs]
    for i, lo, hi in fixed:
        xs[i].SetBounds(lo, hi)
    return found


def linearise(proto: Any, backend: str, integer: bool) -> tuple[Any, list[Any]]:
    """A ``pywraplp`` solver holding the model (objective scaled by 1e-6), and its variables."""
    from ortools.linear_solver import pywraplp

    solver = pywraplp.Solver.CreateSolver(backend)
    if solver is None:
        raise ValueError(f"OR-Tools has no {backend} solver here")
    box = []
    xs = []
    for i, var in enumerate(proto.variables):
        lo, hi = int(var.domain[0]), int(var.domain[len(var.domain) - 1])
        box.append((lo, hi))
        xs.append(solver.IntVar(lo, hi, f"v{i}") if integer else solver.NumVar(lo, hi, f"v{i}"))

    def literal(ref: int) -> Any:
        return xs[ref] if ref >= 0 else 1 - xs[-ref - 1]

    def term(ref: int, coeff: int) -> tuple[Any, float, float]:
        # A negative reference in a linear expression is the variable's opposite.
        var, sign = (xs[ref], 1) if ref >= 0 else (xs[-ref - 1], -1)
        lo, hi = box[ref if ref >= 0 else -ref - 1]
        c = coeff * sign
        return c * var, min(c * lo, c * hi), max(c * lo, c * hi)

    for ct in proto.constraints:
        kind = next((k for k in KINDS if getattr(ct, f"has_{k}")()), "another kind")
        slack = sum(1 - literal(ref) for ref in ct.enforcement_literal)
        if kind == "linear":
            parts = [term(r, c) for r, c in zip(ct.linear.vars, ct.linear.coeffs, strict=True)]
            expr = sum(p[0] for p in parts)
            low, high = sum(p[1] for p in parts), sum(p[2] for p in parts)
            domain = ct.linear.domain
            lo, hi = int(domain[0]), int(domain[len(domain) - 1])
            if hi < high:
                solver.Add(expr <= hi + (high - hi) * slack)
            if lo > low:
                solver.Add(expr >= lo - (lo - low) * slack)
        elif kind == "bool_or":
            solver.Add(sum(literal(r) for r in ct.bool_or.literals) + slack >= 1)
        elif kind == "bool_and":
            for r in ct.bool_and.literals:
                solver.Add(literal(r) + slack >= 1)
        elif kind == "at_most_one":
            solver.Add(sum(literal(r) for r in ct.at_most_one.literals) <= 1 + slack)
        elif kind == "exactly_one":
            total = sum(literal(r) for r in ct.exactly_one.literals)
            solver.Add(total <= 1 + slack)
            solver.Add(total + slack >= 1)
        else:
            raise ValueError(f"lp_bound: constraint kind {kind!r} is not linearised")
    objective = proto.objective
    scale = objective.scaling_factor or 1.0
    if scale >= 0:
        raise ValueError("lp_bound expects a maximising model")
    inner = sum(term(r, c)[0] for r, c in zip(objective.vars, objective.coeffs, strict=True))
    solver.Maximize(scale * 1e-6 * (inner + objective.offset))
    return solver, xs
