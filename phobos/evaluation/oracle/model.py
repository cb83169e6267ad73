"""The model of one seeded orbit-scheduling episode: a relaxation of the env.

It is built as a CP-SAT model (integers, enforced linear constraints); SCIP solves its exact
linear form (:mod:`~phobos.evaluation.oracle.lp`), CP-SAT the model itself.

The model sees the episode's plan tables in advance (every eclipse, contact, occultation and
downlink rate), needs no messages, and chooses every spacecraft's activity and every station's
tracking target for every step at once, maximising the team return.

## Why its optimum bounds every policy
Every trajectory the environment can produce maps to a feasible point of the model with at
least the same objective (:func:`~phobos.evaluation.oracle.hints.trajectory_point` builds that
point, and the tests check that CP-SAT accepts it). So the model's optimum, and any bound on it
that a solver proves, is at least the return of any policy. The model is exact where that is
easy and *relaxed* where exactness is costly; each relaxation only enlarges the feasible set:

1. **Communication.** Intent messages are not modelled: they never change what the
   environment lets an agent do, only what it knows.
2. **Value mixing in memory.** The environment downlinks a *proportional* share of the stored
   value (data of every kind leaves in the same ratio). The model keeps one pool of bits per
   value density (value per kilobit, rounded *up* to whole value units) and lets a downlink
   take its bits from any pools it likes. Value carried by no bits (no shipped activity has
   any) may leave with any downlink.
3. **Downlinking an empty memory** (masked in the environment) is allowed.
4. **Battery clamping and violations.** The model's battery is an upper bound of the real one:
   ``B' <= B + net`` and ``B' <= capacity``, or, when the model declares a violation (paying the
   penalty), ``B' = 0``. A real flat battery is that case; the model may declare one anywhere.
5. **Integer rounding.** CP-SAT works in integers: kilobits, milli-watt-hours and 1e-6 value
   units. Every rounding is absorbed by a slack of ``SLACK`` units per balance per step, by
   rounding capacities, rates and densities up, and by adding the objective's worst rounding
   to the bound.

Dominance cut (``dominance=True``, off when a schedule is pinned): a station that can track a
spacecraft does. Tracking costs nothing, and in the model more downlink room never removes a
solution (``sent`` is only bounded above), so every solution maps to one obeying the cut.

Exact: the activity masks' geometry (the same :func:`static_masks` tables the environment
uses), the energy test of the mask (``B + net >= 0``) for every activity but idle and charge,
the memory-room test, joint occultations (both spacecraft at once, value and data only then),
the magnetosphere boost, one tracking target per station and only while it sees Mars and the
spacecraft, the downlink rate of the best tracking station, and delivery: value counts only
if it reaches Earth (one light time after the step) within the horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from phobos.envs import make
from phobos.envs.orbit_scheduling import task as orbit_task
from phobos.envs.orbit_scheduling.batch import initial_state
from phobos.envs.orbit_scheduling.config import (
    CHARGE,
    DOWNLINK,
    IDLE,
    OCCULTATION,
    YINGHUO1_INDEX,
    OrbitSchedulingConfig,
)
from phobos.envs.orbit_scheduling.observation import CraftTables, static_masks
from phobos.envs.orbit_scheduling.value import magnetosphere_activities
from phobos.envs.orbit_scheduling.value import value_factor as task_value_factor

ORBIT = orbit_task.ID_V0
"""The id the oracle models (every version of the task shares its model)."""
VALUE_UNIT = 1e-6
"""Value per model unit: a kilobit of the least valuable data is worth over 100 units, so
rounding each class's value per kilobit up costs under 1%."""
BIT_UNIT = 1000.0
"""Bits per model unit of data (kilobits: small domains keep CP-SAT fast)."""
ENERGY_UNIT_WH = 1e-3
"""Watt-hours per model unit of battery energy."""
SLACK = 2
"""Rounding slack, in model units, allowed in each balance equation per step."""
MODEL_VERSION = 2
"""Bumped whenever the model changes, so that cached solutions are not reused across it."""


@dataclass
class CraftVars:
    """One spacecraft's state and flow variables, per step (``[t]``, states ``[0..T]``).

    Attributes:
        classes: Model units of value per kilobit of each data pool, ascending.
        initial_key: The pool of the data in memory at reset.
        inflow: ``[t]`` -> (pool, kilobits, action) stored when the action runs (joint
            occultations: when both run).
        free_inflow: ``[t]`` -> (value units, action) of value carried by no bits.
        battery: ``[t]`` battery, milli-watt-hours.
        violation: ``[t]`` the battery ran flat during step ``t``.
        sent: ``[t]`` kilobits downlinked.
        picks: ``[t]`` -> (station, literal, kilobits): the station whose rate is used.
        parts: ``[t]`` pool -> kilobits of that pool downlinked.
        held: ``[t]`` pool -> kilobits held.
        free: ``[t]`` value units held without bits (``None``: the craft has none).
        out: ``[t]`` free value units downlinked.
        counted: ``[t]`` the step's downlink reaches Earth within the horizon.

    """

    classes: list[int]
    initial_key: int
    inflow: list[list[tuple[int, int, int]]]
    free_inflow: list[list[tuple[int, int]]]
    battery: list[Any] = field(default_factory=list)
    violation: list[Any] = field(default_factory=list)
    sent: list[Any] = field(default_factory=list)
    picks: list[list[tuple[int, Any, int]]] = field(default_factory=list)
    parts: list[dict[int, Any]] = field(default_factory=list)
    held: list[dict[int, Any]] = field(default_factory=list)
    free: list[Any] = field(default_factory=list)
    out: list[Any] = field(default_factory=list)
    counted: list[bool] = field(default_factory=list)


@dataclass
class EpisodeModel:
    """A built model with its variables and the episode tables it was built from.

    Attributes:
        model: The CP-SAT model (objective set).
        config: The task's configuration.
        seed: The episode's seed.
        tables: The spacecraft tables.
        plan: The episode plan (one episode).
        x: ``[t][c][a]`` spacecraft ``c`` runs activity ``a`` in step ``t``.
        track: ``[t][s][o]`` station ``s`` picks option ``o`` (idle, track craft 1, 2).
        joint: ``[t]`` both spacecraft run the occultation.
        craft: The two spacecraft's flow variables.
        rounding: The objective's worst rounding, in value (added to a proven bound).
        dominance: Whether the dominance cut is in the model.

    """

    model: Any
    config: OrbitSchedulingConfig
    seed: int
    tables: CraftTables
    plan: Any
    x: list[list[list[Any]]]
    track: list[list[list[Any]]]
    joint: list[Any]
    craft: list[CraftVars]
    rounding: float
    dominance: bool

    @property
    def agents(self) -> tuple[str, ...]:
        """Agent ids in the model's order (spacecraft, then stations)."""
        return self.config.agents

    def schedule(self, value: Any) -> dict[str, list[int]]:
        """Per agent, the action of every step in a solution (``value(var) -> int``)."""
        steps = len(self.x)
        out: dict[str, list[int]] = {}
        for c in (0, 1):
            out[self.agents[c]] = [
                next(a for a, var in enumerate(self.x[t][c]) if value(var)) for t in range(steps)
            ]
        for s in range(len(self.track[0])):
            out[self.agents[2 + s]] = [
                next(o for o, var in enumerate(self.track[t][s]) if value(var))
                for t in range(steps)
            ]
        return out


def units_per_kbit(density: float) -> int:
    """Model value units per kilobit of data of ``density`` value per bit, rounded up."""
    return int(math.ceil(density * BIT_UNIT / VALUE_UNIT - 1e-9))


def value_factor(config: OrbitSchedulingConfig, plan: Any, t: int, c: int, a: int) -> float:
    """The value factor of activity ``a`` of craft ``c`` at step ``t`` (occultation: joint).

    The task's rule (:func:`phobos.envs.orbit_scheduling.value.value_factor`), as the env has it.
    """
    return task_value_factor(
        a == OCCULTATION,
        float(plan.occultation_boost[0][t]),
        c == YINGHUO1_INDEX and a in magnetosphere_activities(config),
        bool(plan.magnetosphere[0][t]),
        config.magnetosphere_boost,
    )


def episode(config: OrbitSchedulingConfig | None, seed: int) -> tuple[Any, Any]:
    """The configuration and plan of the episode ``reset(seed=seed)`` draws."""
    env = make(ORBIT, config)
    env.reset(seed=seed)
    config, plan = env.config, env.plan
    env.close()
    return config, plan


def check_config(config: OrbitSchedulingConfig | None) -> None:
    """Raise ValueError naming what the model cannot represent in ``config``."""
    from phobos.envs.orbit_scheduling.config import SPACECRAFT

    config = config or OrbitSchedulingConfig()
    for name in SPACECRAFT:
        craft = getattr(config, name)
        for field_name in ("value", "data_mbit"):
            if min(getattr(craft, field_name)) < 0:
                raise ValueError(
                    f"the oracle models non-negative science only: {name}.{field_name} "
                    f"is {getattr(craft, field_name)}"
                )
    if config.energy_violation_penalty < 0 or config.magnetosphere_boost < 0:
        raise ValueError("the oracle needs energy_violation_penalty and magnetosphere_boost >= 0")


def build_model(
    config: OrbitSchedulingConfig | None, seed: int, dominance: bool = True
) -> EpisodeModel:
    """The model of the episode ``reset(seed=seed)`` draws under ``config``."""
    from ortools.sat.python import cp_model

    check_config(config)
    if seed < 0:
        raise ValueError(f"seed {seed} is negative: episode seeds are >= 0")
    config, plan = episode(config, seed)
    tables = CraftTables.from_config(config)
    steps, dt = config.horizon_steps, config.step_seconds
    masks = static_masks(plan, tables, np.arange(steps))
    condition, net_wh = masks.condition[0], masks.net_wh[0]  # [T, 2, 7]
    station_ok = masks.stations[0]  # [T, S, 3]
    stations = station_ok.shape[1]
    battery0, storage0, value0 = initial_state(plan, tables)
    light = plan.light_time_s[0].tolist()
    downlink_bits = plan.downlink_bits[0]  # [T, S, 2]
    n_actions = tables.value.shape[1]
    max_factor = max(1.0, float(plan.occultation_boost[0].max()), config.magnetosphere_boost)

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
    terms: list[Any] = []
    penalty_units = math.floor(config.energy_violation_penalty / VALUE_UNIT)
    crafts = []
    for c in (0, 1):
        inflow: list[list[tuple[int, int, int]]] = [[] for _ in range(steps)]
        free_inflow: list[list[tuple[int, int]]] = [[] for _ in range(steps)]
        keys = set()
        for t in range(steps):
            for a in range(n_actions):
                factor = value_factor(config, plan, t, c, a)
                bits = round(tables.data_bits[c, a] / BIT_UNIT)
                value = tables.value[c, a] * factor
                if factor <= 0 or (bits <= 0 and value <= 0):
                    continue  # an occultation without its partner stores nothing
                if bits <= 0:
                    free_inflow[t].append((int(math.ceil(value / VALUE_UNIT)), a))
                    continue
                key = units_per_kbit(value / tables.data_bits[c, a])
                inflow[t].append((key, bits, a))
                keys.add(key)
        initial_key = (
            units_per_kbit(float(value0[0, c].sum() / storage0[0, c])) if storage0[0, c] > 0 else 0
        )
        keys.add(initial_key)
        v = CraftVars(sorted(keys), initial_key, inflow, free_inflow)
        crafts.append(v)
        classes = v.classes
        room_slack = SLACK + len(classes)
        cap_bits = int(math.ceil(tables.storage_bits[c] / BIT_UNIT))
        max_bits = cap_bits + round(tables.data_bits[c].max() / BIT_UNIT) * (steps + 1) + 4 * steps
        cap_e = int(math.ceil(tables.battery_wh[c] / ENERGY_UNIT_WH))
        start_e = round(battery0[0, c] / ENERGY_UNIT_WH)
        start_bits = round(storage0[0, c] / BIT_UNIT)
        v.battery.append(m.NewIntVar(start_e, start_e, f"b0_{c}"))
        v.held.append(
            {
                k: m.NewIntVar(*(2 * [start_bits if k == initial_key else 0]), f"h0_{c}_{k}")
                for k in classes
            }
        )
        has_free = any(free_inflow)
        max_free = int(
            math.ceil(steps * tables.value[c].max() * max_factor / VALUE_UNIT) + 4 * steps
        )
        v.free.append(m.NewIntVar(0, 0, f"f0_{c}") if has_free else None)
        for t in range(steps):
            xs, battery, held = x[t][c], v.battery[t], v.held[t]
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
            terms.append(-penalty_units * violation)
            # Downlink: at most the best tracking station's bits (exact max via one choice).
            sent = m.NewIntVar(0, max_bits, f"sent{t}_{c}")
            pick = []
            for s in range(stations):
                if not station_ok[t, s, c + 1]:
                    continue
                z = m.NewBoolVar(f"z{t}_{s}_{c}")
                m.AddImplication(z, track[t][s][c + 1])
                m.AddImplication(z, xs[DOWNLINK])
                pick.append((s, z, int(math.ceil(downlink_bits[t, s, c] / BIT_UNIT))))
            if pick:
                m.Add(sum(z for _, z, _ in pick) <= 1)
                m.Add(sent <= sum(bits * z for _, z, bits in pick) + SLACK)
            else:
                m.Add(sent == 0)
            # Each pool sends at most what it holds; together at most `sent` (plus one unit
            # per pool of rounding). Which pool leaves first is free: relaxation 2.
            parts = {k: m.NewIntVar(0, max_bits, f"p{t}_{c}_{k}") for k in classes}
            m.Add(sum(parts.values()) <= sent + len(classes))
            moved = []
            nxt = {}
            for k in classes:
                m.Add(parts[k] <= held[k] + SLACK)
                nxt[k] = m.NewIntVar(0, max_bits, f"h{t + 1}_{c}_{k}")
                stored = [
                    bits * (joint[t] if a == OCCULTATION else xs[a])
                    for key, bits, a in inflow[t]
                    if key == k
                ]
                flow = held[k] + sum(stored) - parts[k]
                m.Add(nxt[k] >= flow - SLACK)
                m.Add(nxt[k] <= flow + SLACK)
                if k:
                    moved.append(k * parts[k])
            out = nxt_free = None
            if has_free:
                # Value without bits may leave with any downlink (relaxation 2's fallback).
                free = v.free[t]
                out = m.NewIntVar(0, max_free, f"fo{t}_{c}")
                m.Add(out <= free + SLACK)
                m.Add(out == 0).OnlyEnforceIf(xs[DOWNLINK].Not())
                nxt_free = m.NewIntVar(0, max_free, f"f{t + 1}_{c}")
                gained = [u * (joint[t] if a == OCCULTATION else xs[a]) for u, a in free_inflow[t]]
                m.Add(nxt_free <= free + sum(gained) - out + SLACK)
                moved.append(out)
            counted = t + 1 + math.ceil(light[t] / dt) <= steps
            if counted and moved:
                terms.append(sum(moved))
            v.violation.append(violation)
            v.sent.append(sent)
            v.picks.append(pick)
            v.parts.append(parts)
            v.out.append(out)
            v.counted.append(counted)
            v.battery.append(nxt_b)
            v.held.append(nxt)
            v.free.append(nxt_free)
    for t in range(steps):
        m.AddBoolAnd([x[t][0][OCCULTATION], x[t][1][OCCULTATION]]).OnlyEnforceIf(joint[t])
        m.AddBoolOr([x[t][0][OCCULTATION].Not(), x[t][1][OCCULTATION].Not(), joint[t]])
        for s in range(stations):
            m.AddExactlyOne(track[t][s])
            for o in (1, 2):
                if not station_ok[t, s, o]:
                    m.Add(track[t][s][o] == 0)
            if dominance and (station_ok[t, s, 1] or station_ok[t, s, 2]):
                m.Add(track[t][s][0] == 0)
    m.Maximize(sum(terms))
    # Objective rounding: at most half a unit per moved term, plus the slack per term.
    rounding = (0.5 + SLACK) * 2 * steps * VALUE_UNIT
    return EpisodeModel(m, config, seed, tables, plan, x, track, joint, crafts, rounding, dominance)
