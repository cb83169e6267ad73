"""An offline upper bound for ``orbit-scheduling-v0``: CP-SAT over a whole seeded episode.

The oracle sees the episode's plan tables in advance (every eclipse, contact, occultation
and downlink rate), needs no messages, and chooses every spacecraft's activity and every
station's tracking target for every step at once, maximising the team return. It is solved
with OR-Tools CP-SAT under a time limit; the reported ``upper_bound`` is the solver's proven
bound (``BestObjectiveBound``), which equals the optimum when the status is OPTIMAL.

## Why it is an upper bound
Every trajectory a policy can produce in the environment maps to a feasible point of the model
with at least the same objective, so the model's optimum (and any proven bound on it) is at
least the return of any policy. The model is exact where that is easy and *relaxed* where
exactness is costly; each relaxation only enlarges the feasible set or the objective:

1. **Communication.** Intent messages are not modelled: they never change what the
   environment lets an agent do, only what it knows.
2. **Value mixing in memory.** The environment downlinks a *proportional* share of the stored
   value (data of every kind leaves in the same ratio). The model tracks stored bits and stored
   value separately and lets a downlink move value up to ``rho * (bits sent + 2)``, where
   ``rho`` is the highest value per bit any data can have on that spacecraft (the initial data,
   and each activity at its largest boost of the episode). In the environment the stored value
   never exceeds ``rho * (bits + 1)``, so a proportional share never exceeds that limit. If an
   activity yields value without data, the limit is dropped (moved value <= stored value only).
3. **Downlinking an empty memory** (masked in the environment) is allowed.
4. **Battery clamping and violations.** The model's battery is an upper bound of the real one:
   ``B' <= B + net`` and ``B' <= capacity``, or, when the model declares a violation (paying the
   penalty), ``B' = 0``. A real flat battery is that case; the model may declare one anywhere.
5. **Integer rounding.** CP-SAT works in integers: kilobits, milli-watt-hours and 1e-6 value
   units.
   Every rounding is absorbed by a slack of +-2 units per balance per step, by rounding
   capacities and rates up, and by adding the objective's worst rounding (half a unit per
   term) to the bound.

Exact: the activity masks' geometry (the same :func:`static_masks` tables the environment
uses), the energy test of the mask (``B + net >= 0``) for every activity but idle and charge,
the memory-room test, joint occultations (both spacecraft at once, value and data only then),
the magnetosphere boost, one tracking target per station and only while it sees Mars and the
spacecraft, the downlink rate of the best tracking station, and delivery: value counts only
if it reaches Earth (one light time after the step) within the horizon.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from phobos.envs import make
from phobos.envs.orbit_scheduling.batch import MAGNETOMETER, PLASMA, initial_state
from phobos.envs.orbit_scheduling.config import (
    CHARGE,
    DOWNLINK,
    IDLE,
    OCCULTATION,
    OrbitSchedulingConfig,
)
from phobos.envs.orbit_scheduling.observation import CraftTables, static_masks

ORBIT = "orbit-scheduling-v0"
VALUE_UNIT = 1e-6
"""Value per model unit: a kilobit of the least valuable data is worth over 100 units, so
rounding each class's value per kilobit up costs under 1%."""
BIT_UNIT = 1000.0
"""Bits per model unit of data (kilobits: small domains keep CP-SAT fast)."""
ENERGY_UNIT_WH = 1e-3
"""Watt-hours per model unit of battery energy."""
SLACK = 2
"""Rounding slack, in model units, allowed in each balance equation per step."""


@dataclass(frozen=True)
class OracleResult:
    """The oracle's answer for one seeded episode.

    Attributes:
        seed: The episode's seed.
        upper_bound: Proven upper bound of any policy's team return on this episode.
        objective: Team return of the best schedule found (itself a relaxed value).
        optimal: CP-SAT proved the schedule optimal for the model.
        status: CP-SAT's status name.
        wall_s: Solver seconds.

    """

    seed: int
    upper_bound: float
    objective: float
    optimal: bool
    status: str
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return dict(self.__dict__)


def solve_episode(
    config: OrbitSchedulingConfig | None,
    seed: int,
    time_limit_s: float = 10.0,
    workers: int = 2,
    schedule: dict[str, list[int]] | None = None,
) -> OracleResult:
    """The upper bound of the episode ``reset(seed=seed)`` draws under ``config``.

    Args:
        config: The task's configuration (``None``: defaults).
        seed: The episode's seed.
        time_limit_s: CP-SAT's time limit; past it the proven bound is reported.
        workers: CP-SAT search workers (few: the machines here have 2 cores).
        schedule: Pin the model to these executed actions per agent (an episode's trace):
            the model must then accept it with an objective at least its return. This is
            how the tests check that no relaxation above cuts off a real trajectory.

    """
    from ortools.sat.python import cp_model

    env = make("orbit-scheduling-v0", config) if config is not None else make("orbit-scheduling-v0")
    env.reset(seed=seed)
    config, plan = env.config, env.plan
    env.close()
    tables = CraftTables.from_config(config)
    steps, dt = config.horizon_steps, config.step_seconds
    masks = static_masks(plan, tables, np.arange(steps))
    condition, net_wh = masks.condition[0], masks.net_wh[0]  # [T, 2, 7]
    station_ok = masks.stations[0]  # [T, S, 3]
    stations = station_ok.shape[1]
    battery0, storage0, value0 = initial_state(plan, tables)
    light = plan.light_time_s[0].tolist()
    downlink_bits = plan.downlink_bits[0]  # [T, S, 2]
    boost = plan.occultation_boost[0]
    magneto = plan.magnetosphere[0]
    n_actions = tables.value.shape[1]

    m = cp_model.CpModel()
    x = [
        [[m.NewBoolVar(f"x{t}_{c}_{a}") for a in range(n_actions)] for c in (0, 1)]
        for t in range(steps)
    ]
    track = [
        [[m.NewBoolVar(f"k{t}_{s}_{o}") for o in range(3)] for s in range(stations)]
        for t in range(steps)
    ]
    joint = [m.NewBoolVar(f"j{t}") for t in range(steps)]

    def value_factor(t: int, c: int, a: int) -> float:
        factor = 1.0
        if a == OCCULTATION:
            factor = float(boost[t])
        if c == 1 and a in (PLASMA, MAGNETOMETER) and magneto[t]:
            factor *= config.magnetosphere_boost
        return factor

    max_factor = max(1.0, float(boost.max()), config.magnetosphere_boost)

    def units_per_bit(density: float) -> int:
        # Rounded up, so a class's delivered value is never under its true value.
        return int(math.ceil(density * BIT_UNIT / VALUE_UNIT - 1e-9))

    objective_terms = []
    penalty_units = math.floor(config.energy_violation_penalty / VALUE_UNIT)
    for c in (0, 1):
        # Data classes of equal value per bit (relaxation 2): key = model units per bit.
        inflows: dict[int, list[list[Any]]] = {}
        free_value: list[list[Any]] = [[] for _ in range(steps)]  # value carried by no bits
        for t in range(steps):
            for a in range(n_actions):
                factor = value_factor(t, c, a)
                bits = round(tables.data_bits[c, a] / BIT_UNIT)
                value = tables.value[c, a] * factor
                if factor <= 0 or (bits <= 0 and value <= 0):
                    continue  # an occultation without its partner stores nothing
                chosen = joint[t] if a == OCCULTATION else x[t][c][a]
                if bits <= 0:
                    free_value[t].append(int(math.ceil(value / VALUE_UNIT)) * chosen)
                    continue
                key = units_per_bit(value / tables.data_bits[c, a])
                inflows.setdefault(key, [[] for _ in range(steps)])[t].append(bits * chosen)
        initial_key = (
            units_per_bit(float(value0[0, c].sum() / storage0[0, c])) if storage0[0, c] > 0 else 0
        )
        inflows.setdefault(initial_key, [[] for _ in range(steps)])
        classes = sorted(inflows)
        room_slack = SLACK + len(classes)
        cap_bits = int(math.ceil(tables.storage_bits[c] / BIT_UNIT))
        max_bits = cap_bits + round(tables.data_bits[c].max() / BIT_UNIT) * (steps + 1) + 4 * steps
        cap_e = int(math.ceil(tables.battery_wh[c] / ENERGY_UNIT_WH))
        start_e = round(battery0[0, c] / ENERGY_UNIT_WH)
        battery = m.NewIntVar(start_e, start_e, f"b0_{c}")
        held = {
            k: m.NewIntVar(
                *(2 * [round(storage0[0, c] / BIT_UNIT) if k == initial_key else 0]), f"h0_{c}_{k}"
            )
            for k in classes
        }
        max_free = int(
            math.ceil(steps * tables.value[c].max() * max_factor / VALUE_UNIT) + 4 * steps
        )
        free = m.NewIntVar(0, 0, f"f0_{c}") if any(free_value) else None
        for t in range(steps):
            xs = x[t][c]
            m.AddExactlyOne(xs)
            storage = sum(held.values())
            for a in range(n_actions):
                if a in (IDLE, CHARGE):
                    continue
                if not condition[t, c, a]:
                    m.Add(xs[a] == 0)
                    continue
                # The mask's energy and room tests, for the activity chosen.
                energy = round(net_wh[t, c, a] / ENERGY_UNIT_WH)
                m.Add(battery + energy >= -SLACK).OnlyEnforceIf(xs[a])
                room = round(tables.data_bits[c, a] / BIT_UNIT)
                m.Add(storage + room <= cap_bits + room_slack).OnlyEnforceIf(xs[a])
            # Battery (relaxation 4).
            net = sum(round(net_wh[t, c, a] / ENERGY_UNIT_WH) * xs[a] for a in range(n_actions))
            violation = m.NewBoolVar(f"v{t}_{c}")
            nxt_b = m.NewIntVar(0, cap_e + SLACK, f"b{t + 1}_{c}")
            m.Add(nxt_b <= battery + net + SLACK).OnlyEnforceIf(violation.Not())
            m.Add(nxt_b <= cap_e).OnlyEnforceIf(violation.Not())
            m.Add(nxt_b == 0).OnlyEnforceIf(violation)
            objective_terms.append(-penalty_units * violation)
            # Downlink: at most the best tracking station's bits (exact max via one choice).
            sent = m.NewIntVar(0, max_bits, f"sent{t}_{c}")
            pick = []
            for s in range(stations):
                if not station_ok[t, s, c + 1]:
                    continue
                z = m.NewBoolVar(f"z{t}_{s}_{c}")
                m.AddImplication(z, track[t][s][c + 1])
                m.AddImplication(z, xs[DOWNLINK])
                pick.append((z, int(math.ceil(downlink_bits[t, s, c] / BIT_UNIT))))
            if pick:
                m.Add(sum(z for z, _ in pick) <= 1)
                m.Add(sent <= sum(bits * z for z, bits in pick) + SLACK)
            else:
                m.Add(sent == 0)
            # Each class sends at most what it holds; together at most `sent` (plus one bit
            # per class of rounding). Which class leaves first is free: relaxation 2.
            parts = {k: m.NewIntVar(0, max_bits, f"p{t}_{c}_{k}") for k in classes}
            m.Add(sum(parts.values()) <= sent + len(classes))
            moved = []
            nxt = {}
            for k in classes:
                m.Add(parts[k] <= held[k] + SLACK)
                nxt[k] = m.NewIntVar(0, max_bits, f"h{t + 1}_{c}_{k}")
                flow = held[k] + sum(inflows[k][t]) - parts[k]
                m.Add(nxt[k] >= flow - SLACK)
                m.Add(nxt[k] <= flow + SLACK)
                if k:
                    moved.append(k * parts[k])
            nxt_free = None
            if free is not None:
                # Value without bits may leave with any downlink (relaxation 2's fallback).
                out = m.NewIntVar(0, max_free, f"fo{t}_{c}")
                m.Add(out <= free + SLACK)
                m.Add(out == 0).OnlyEnforceIf(xs[DOWNLINK].Not())
                nxt_free = m.NewIntVar(0, max_free, f"f{t + 1}_{c}")
                m.Add(nxt_free <= free + sum(free_value[t]) - out + SLACK)
                moved.append(out)
            arrival = t + 1 + math.ceil(light[t] / dt)
            if arrival <= steps and moved:
                objective_terms.append(sum(moved))
            battery, held, free = nxt_b, nxt, nxt_free
    for t in range(steps):
        m.AddBoolAnd([x[t][0][OCCULTATION], x[t][1][OCCULTATION]]).OnlyEnforceIf(joint[t])
        m.AddBoolOr([x[t][0][OCCULTATION].Not(), x[t][1][OCCULTATION].Not(), joint[t]])
        for s in range(stations):
            m.AddExactlyOne(track[t][s])
            for o in (1, 2):
                if not station_ok[t, s, o]:
                    m.Add(track[t][s][o] == 0)
    agents = config.agents
    if schedule is None:
        # Start the search from the greedy team's schedule: a good first solution early.
        from phobos.agents.team_spec import TeamSpec
        from phobos.evaluation.rollout import EpisodeSpec, run_episode

        greedy = run_episode(EpisodeSpec(ORBIT, config, TeamSpec("greedy"), seed, trace=True))
        if greedy.trace is not None:
            for t in range(steps):
                for c in (0, 1):
                    for a in range(n_actions):
                        m.AddHint(x[t][c][a], int(greedy.trace[agents[c]][t] == a))
                for s in range(stations):
                    for o in range(3):
                        m.AddHint(track[t][s][o], int(greedy.trace[agents[2 + s]][t] == o))
    else:
        for t in range(steps):
            for c in (0, 1):
                m.Add(x[t][c][schedule[agents[c]][t]] == 1)
            for s in range(stations):
                m.Add(track[t][s][schedule[agents[2 + s]][t]] == 1)
    m.Maximize(sum(objective_terms))

    start = time.perf_counter()
    if schedule is None:
        # CP-SAT completes a partial hint poorly: solve the greedy schedule's own flows first
        # (fast, the choices are fixed), then hint every variable with that solution.
        first = cp_model.CpSolver()
        first.parameters.fix_variables_to_their_hinted_value = True
        first.parameters.stop_after_first_solution = True
        first.parameters.max_time_in_seconds = max(float(time_limit_s) / 4.0, 0.1)
        first.parameters.num_workers = max(int(workers), 1)
        if first.Solve(m) in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            every = [m.GetIntVarFromProtoIndex(i) for i in range(len(m.Proto().variables))]
            m.ClearHints()
            for var in every:
                m.AddHint(var, first.Value(var))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(
        float(time_limit_s) - (time.perf_counter() - start), 0.1
    )
    solver.parameters.num_workers = max(int(workers), 1)
    status = solver.Solve(m)
    wall = time.perf_counter() - start
    # Objective rounding: at most half a unit per moved term, plus the slack per term.
    rounding = (0.5 + SLACK) * 2 * steps * VALUE_UNIT
    # Without any bound from CP-SAT: all the value the episode can ever hold.
    trivial = float(value0[0].sum() + steps * 2 * tables.value.max() * max_factor)
    bound = trivial
    if status != cp_model.INFEASIBLE and math.isfinite(solver.BestObjectiveBound()):
        # Proven even when no schedule was found in time (status UNKNOWN).
        bound = min(bound, solver.BestObjectiveBound() * VALUE_UNIT + rounding)
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    objective = solver.ObjectiveValue() * VALUE_UNIT if found else float("nan")
    return OracleResult(
        seed,
        float(bound),
        float(objective),
        status == cp_model.OPTIMAL,
        solver.StatusName(status),
        wall,
    )
