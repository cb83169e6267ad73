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
5. **Integer rounding.** CP-SAT works in integers: bits, micro-watt-hours and 1e-9 value units.
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

VALUE_UNIT = 1e-9
"""Value per model unit: fine enough that a rounded value-per-bit limit is within 1e-3 of true."""
ENERGY_UNIT_WH = 1e-6
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
) -> OracleResult:
    """The upper bound of the episode ``reset(seed=seed)`` draws under ``config``."""
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

    # rho: highest value per bit anything stored on a spacecraft can carry (relaxation 2).
    rho: list[float | None] = []
    for c in (0, 1):
        densities = [float(value0[0, c].sum() / storage0[0, c])] if storage0[0, c] > 0 else []
        unbounded = False
        for a in range(n_actions):
            best = max(value_factor(t, c, a) for t in range(steps)) * tables.value[c, a]
            if best <= 0:
                continue
            if tables.data_bits[c, a] <= 0:
                unbounded = True
            else:
                densities.append(best / tables.data_bits[c, a])
        rho.append(None if unbounded else max(densities, default=0.0))

    big_value = (
        int(
            math.ceil(
                (
                    value0[0].sum()
                    + steps
                    * 2
                    * tables.value.max()
                    * max(1.0, boost.max(), config.magnetosphere_boost)
                )
                / VALUE_UNIT
            )
        )
        + 4 * SLACK * steps
    )
    objective_terms = []
    penalty_units = math.floor(config.energy_violation_penalty / VALUE_UNIT)
    for c in (0, 1):
        cap_bits = int(math.ceil(tables.storage_bits[c]))
        max_bits = cap_bits + int(math.ceil(tables.data_bits[c].max())) * (steps + 1) + 4 * steps
        cap_e = int(math.ceil(tables.battery_wh[c] / ENERGY_UNIT_WH))
        battery = m.NewIntVar(
            round(battery0[0, c] / ENERGY_UNIT_WH),
            round(battery0[0, c] / ENERGY_UNIT_WH),
            f"b0_{c}",
        )
        storage = m.NewIntVar(round(storage0[0, c]), round(storage0[0, c]), f"s0_{c}")
        stored = m.NewIntVar(
            round(value0[0, c].sum() / VALUE_UNIT),
            round(value0[0, c].sum() / VALUE_UNIT),
            f"w0_{c}",
        )
        for t in range(steps):
            xs = x[t][c]
            m.AddExactlyOne(xs)
            for a in range(n_actions):
                if a in (IDLE, CHARGE):
                    continue
                if not condition[t, c, a]:
                    m.Add(xs[a] == 0)
                    continue
                # The mask's energy and room tests, for the activity chosen.
                m.Add(battery + round(net_wh[t, c, a] / ENERGY_UNIT_WH) >= -SLACK).OnlyEnforceIf(
                    xs[a]
                )
                m.Add(
                    storage + int(math.ceil(tables.data_bits[c, a])) <= cap_bits + SLACK
                ).OnlyEnforceIf(xs[a])
            # Battery (relaxation 4).
            net = sum(round(net_wh[t, c, a] / ENERGY_UNIT_WH) * xs[a] for a in range(n_actions))
            violation = m.NewBoolVar(f"v{t}_{c}")
            nxt_b = m.NewIntVar(0, cap_e + SLACK, f"b{t + 1}_{c}")
            m.Add(nxt_b <= battery + net + SLACK).OnlyEnforceIf(violation.Not())
            m.Add(nxt_b <= cap_e).OnlyEnforceIf(violation.Not())
            m.Add(nxt_b == 0).OnlyEnforceIf(violation)
            objective_terms.append(-penalty_units * violation)
            # Data and value produced this step (occultation only when joint).
            inflow_bits, inflow_value = [], []
            for a in range(n_actions):
                bits = int(math.ceil(tables.data_bits[c, a]))
                units = round(tables.value[c, a] * value_factor(t, c, a) / VALUE_UNIT)
                chosen = joint[t] if a == OCCULTATION else xs[a]
                if a == OCCULTATION and value_factor(t, c, a) <= 0:
                    continue
                if bits:
                    inflow_bits.append(bits * chosen)
                if units:
                    inflow_value.append(units * chosen)
            # Downlink: at most the best tracking station's bits (exact max via one choice).
            sent = m.NewIntVar(0, max_bits, f"sent{t}_{c}")
            pick = []
            for s in range(stations):
                if not station_ok[t, s, c + 1]:
                    continue
                z = m.NewBoolVar(f"z{t}_{s}_{c}")
                m.AddImplication(z, track[t][s][c + 1])
                m.AddImplication(z, xs[DOWNLINK])
                pick.append((z, int(math.ceil(downlink_bits[t, s, c]))))
            if pick:
                m.Add(sum(z for z, _ in pick) <= 1)
                m.Add(sent <= sum(bits * z for z, bits in pick) + SLACK)
            else:
                m.Add(sent == 0)
            m.Add(sent <= storage + SLACK)
            moved = m.NewIntVar(0, big_value, f"moved{t}_{c}")
            m.Add(moved <= stored + SLACK)
            if rho[c] is not None:
                per_bit = int(math.ceil(rho[c] / VALUE_UNIT))
                m.Add(moved <= per_bit * (sent + 2) + SLACK)
            nxt_s = m.NewIntVar(0, max_bits, f"s{t + 1}_{c}")
            m.Add(nxt_s >= storage + sum(inflow_bits) - sent - SLACK)
            m.Add(nxt_s <= storage + sum(inflow_bits) - sent + SLACK)
            nxt_w = m.NewIntVar(0, big_value, f"w{t + 1}_{c}")
            m.Add(nxt_w <= stored + sum(inflow_value) - moved + SLACK)
            arrival = t + 1 + math.ceil(light[t] / dt)
            if arrival <= steps:
                objective_terms.append(moved)
            battery, storage, stored = nxt_b, nxt_s, nxt_w
    for t in range(steps):
        m.AddBoolAnd([x[t][0][OCCULTATION], x[t][1][OCCULTATION]]).OnlyEnforceIf(joint[t])
        m.AddBoolOr([x[t][0][OCCULTATION].Not(), x[t][1][OCCULTATION].Not(), joint[t]])
        for s in range(stations):
            m.AddExactlyOne(track[t][s])
            for o in (1, 2):
                if not station_ok[t, s, o]:
                    m.Add(track[t][s][o] == 0)
    m.Maximize(sum(objective_terms))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = max(int(workers), 1)
    start = time.perf_counter()
    status = solver.Solve(m)
    wall = time.perf_counter() - start
    # Objective rounding: at most half a unit per moved term, plus the slack per term.
    rounding = (0.5 + SLACK) * 2 * steps * VALUE_UNIT
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        bound = solver.BestObjectiveBound() * VALUE_UNIT + rounding
        objective = solver.ObjectiveValue() * VALUE_UNIT
    else:  # no schedule found in time: only the trivial bound of all value ever available
        bound = big_value * VALUE_UNIT
        objective = float("nan")
    return OracleResult(
        seed,
        float(bound),
        float(objective),
        status == cp_model.OPTIMAL,
        solver.StatusName(status),
        wall,
    )
