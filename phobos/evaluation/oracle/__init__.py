"""The offline oracle of the orbit-scheduling task: a proven upper bound and the planner team.

- :mod:`~phobos.evaluation.oracle.model`: the CP-SAT model of a seeded episode (a relaxation
  of the environment; its docstring lists every relaxation);
- :mod:`~phobos.evaluation.oracle.hints`: an environment trajectory as a model point (hint,
  pin);
- :mod:`~phobos.evaluation.oracle.lp`: the model in linear form: solved as a MIP by SCIP (the
  default solver), and its LP relaxation (GLOP), the fallback bound;
- :mod:`~phobos.evaluation.oracle.solve`: :func:`solve_episode` and :class:`OracleResult`;
- :mod:`~phobos.evaluation.oracle.planner`: the planner team, which flies the best schedule
  in the real environment, and the solution cache.
"""

from __future__ import annotations

from phobos.evaluation.oracle.solve import GREEDY, OracleResult, check_time_limit, solve_episode

__all__ = ["GREEDY", "OracleResult", "check_time_limit", "solve_episode"]
