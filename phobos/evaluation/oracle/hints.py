"""Map an environment trajectory onto the model: a complete hint, or a pin for the tests.

:func:`trajectory_point` replays a schedule of executed actions with the environment's own
arithmetic (proportional mixing of stored value, clamped battery, best tracking station) and
writes every model variable's value from it: the constructive half of the claim that the model
is a relaxation (see :mod:`phobos.evaluation.oracle.model`). Rounding follows the model's
slack rules: batteries down, sent bits and pool shares up, stored bits to nearest.
"""

from __future__ import annotations

import math
from typing import Any

from phobos.envs.orbit_scheduling.config import DOWNLINK, OCCULTATION
from phobos.evaluation.oracle.model import BIT_UNIT, ENERGY_UNIT_WH, VALUE_UNIT, EpisodeModel


def trajectory_point(em: EpisodeModel, schedule: dict[str, list[int]]) -> dict[Any, int]:
    """Every model variable's value on the trajectory of ``schedule`` (executed actions).

    Args:
        em: The built model.
        schedule: Per agent id, the executed action of every step (an episode's trace).

    Raises:
        ValueError: if the schedule does not fit the model (length, agents, action range).

    """
    import numpy as np

    from phobos.envs.orbit_scheduling.batch import initial_state
    from phobos.envs.orbit_scheduling.observation import static_masks

    agents, steps = em.agents, len(em.x)
    missing = [a for a in agents if a not in schedule]
    if missing:
        raise ValueError(f"schedule lacks agents {missing}")
    for agent in agents:
        if len(schedule[agent]) != steps:
            raise ValueError(f"schedule of {agent} has {len(schedule[agent])} steps, not {steps}")
    tables, plan = em.tables, em.plan
    masks = static_masks(plan, tables, np.arange(steps))
    net_wh, station_ok = masks.net_wh[0], masks.stations[0]
    downlink = plan.downlink_bits[0]
    battery0, storage0, _ = initial_state(plan, tables)
    stations = len(em.track[0])
    point: dict[Any, int] = {}
    acts = [[int(schedule[agents[c]][t]) for c in (0, 1)] for t in range(steps)]
    tracks = [[int(schedule[agents[2 + s]][t]) for s in range(stations)] for t in range(steps)]
    for t in range(steps):
        for c in (0, 1):
            if not 0 <= acts[t][c] < len(em.x[t][c]):
                raise ValueError(f"{agents[c]} step {t}: action {acts[t][c]} out of range")
            for a, var in enumerate(em.x[t][c]):
                point[var] = int(a == acts[t][c])
        joint = acts[t][0] == OCCULTATION and acts[t][1] == OCCULTATION
        point[em.joint[t]] = int(joint)
        for s in range(stations):
            option = tracks[t][s]
            if em.dominance and option == 0 and station_ok[t, s, 1:].any():
                option = 1 if station_ok[t, s, 1] else 2  # the cut: track when you can
            for o, var in enumerate(em.track[t][s]):
                point[var] = int(o == option)
    for c in (0, 1):
        v = em.craft[c]
        battery = float(battery0[0, c])
        pools = {k: 0.0 for k in v.classes}
        pools[v.initial_key] = float(storage0[0, c])
        free = 0.0  # value at reset always has bits (initial_state stores it with data)
        cap = float(tables.battery_wh[c])
        for t in range(steps):
            a = acts[t][c]
            point[v.battery[t]] = (
                round(battery0[0, c] / ENERGY_UNIT_WH)
                if t == 0
                else int(math.floor(battery / ENERGY_UNIT_WH))
            )
            for k in v.classes:
                point[v.held[t][k]] = round(pools[k] / BIT_UNIT)
            if v.free[t] is not None:
                point[v.free[t]] = 0 if t == 0 else round(free / VALUE_UNIT)
            after = battery + float(net_wh[t, c, a])
            point[v.violation[t]] = int(after < 0.0)
            battery = min(max(after, 0.0), cap)
            joint = acts[t][0] == OCCULTATION and acts[t][1] == OCCULTATION
            stores = a != OCCULTATION or joint
            for key, _, act in v.inflow[t]:
                if act == a and stores:
                    pools[key] += float(tables.data_bits[c, a])
            for units, act in v.free_inflow[t]:
                if act == a and stores:
                    free += units * VALUE_UNIT
            sent, share, best = 0.0, 0.0, None
            if a == DOWNLINK:
                for s, _, _ in v.picks[t]:
                    rate = downlink[t, s, c]
                    if tracks[t][s] == c + 1 and (best is None or rate > downlink[t, best, c]):
                        best = s
                storage = sum(pools.values())
                if best is not None:
                    sent = min(storage, float(downlink[t, best, c]))
                share = sent / max(storage, 1.0)
            for s, z, _ in v.picks[t]:
                point[z] = int(s == best)
            point[v.sent[t]] = int(math.ceil(sent / BIT_UNIT - 1e-9))
            for k in v.classes:
                part = pools[k] * share
                point[v.parts[t][k]] = int(math.ceil(part / BIT_UNIT - 1e-9))
                pools[k] -= part
            if v.out[t] is not None:
                gone = free * share
                point[v.out[t]] = int(math.ceil(gone / VALUE_UNIT - 1e-9))
                free -= gone
        point[v.battery[steps]] = int(math.floor(battery / ENERGY_UNIT_WH))
        for k in v.classes:
            point[v.held[steps][k]] = round(pools[k] / BIT_UNIT)
        if v.free[steps] is not None:
            point[v.free[steps]] = round(free / VALUE_UNIT)
    return point


def apply_hint(em: EpisodeModel, point: dict[Any, int]) -> None:
    """Hint CP-SAT with a complete solution (it starts from it)."""
    em.model.ClearHints()
    for var, value in point.items():
        em.model.AddHint(var, value)


def apply_pin(em: EpisodeModel, point: dict[Any, int], decisions_only: bool = True) -> None:
    """Fix the schedule (``decisions_only``) or every variable to ``point``'s values."""
    decisions = {id(var) for row in em.x for craft in row for var in craft}
    decisions |= {id(var) for row in em.track for station in row for var in station}
    for var, value in point.items():
        if not decisions_only or id(var) in decisions:
            em.model.Add(var == value)
