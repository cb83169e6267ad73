"""The linear relaxation of a CP-SAT model, solved with GLOP: a proven fallback bound.

Every CP-SAT constraint the oracle's model uses becomes linear over ``[lb, ub]`` boxes of its
variables: an enforced linear constraint ``l1 and l2 ... => lo <= e <= hi`` becomes
``e <= hi + (max e - hi) * sum(1 - l_i)`` (and the same for ``lo``), with ``max e`` taken over
the variables' domains, which is exact when every literal holds and redundant otherwise;
clauses, conjunctions and at-most/exactly-one constraints become sums of literals. Every
integer point of the model is a point of the LP, so the LP optimum bounds the model's.
"""

from __future__ import annotations

from typing import Any

KINDS = ("linear", "bool_or", "bool_and", "at_most_one", "exactly_one")
"""The constraint kinds the oracle's model uses; any other is refused."""
MARGIN = 1e-5
"""Relative margin added to GLOP's optimum, far above its feasibility tolerances (1e-7)."""


def lp_bound(proto: Any, time_limit_s: float) -> float | None:
    """The LP relaxation's optimum of a maximising ``CpModelProto`` (``None``: not solved).

    The value is in the model's objective units (``scaling_factor`` applied).
    """
    from ortools.linear_solver import pywraplp

    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:
        return None
    box = []
    xs = []
    for i, var in enumerate(proto.variables):
        lo, hi = int(var.domain[0]), int(var.domain[len(var.domain) - 1])
        box.append((lo, hi))
        xs.append(solver.NumVar(lo, hi, f"v{i}"))

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
    solver.SetTimeLimit(int(max(time_limit_s, 0.1) * 1000))
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        return None
    value = solver.Objective().Value()
    return (value + MARGIN * max(1.0, abs(value))) * 1e6
