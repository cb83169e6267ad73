"""The lookahead block: when the next eclipse, contact, pass and occultation window come.

An onboard planner knows its ephemeris, so these are functions of the episode plan alone:
reverse scans over time give, for every step, where the next window of a condition starts and
how long it lasts. :func:`lookahead_table` tabulates a whole episode at once; the
``ParallelEnv`` and the batch core then index it by step, so both see the very same numbers.
"""

from __future__ import annotations

import numpy as np

from phobos.envs.orbit_scheduling.config import SPACECRAFT, OrbitSchedulingConfig
from phobos.envs.orbit_scheduling.layout import (
    CONTACT_BEST_RATE,
    CONTACT_IN,
    CRAFT_LOOKAHEAD_FIELDS,
    EARTH_IN,
    ECLIPSE_IN,
    NO_WINDOW_IN,
    WINDOW_FIELDS,
    WINDOW_FOR,
    WINDOW_IN,
    ObservationLayout,
)
from phobos.envs.orbit_scheduling.plan import EpisodePlan

ECLIPSE_SUNLIT_BELOW = 0.5
"""A step belongs to an eclipse when less than this share of it is sunlit."""


def next_window(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of the next window of ``flags`` (``[n, T, ...]`` bool, time axis 1).

    Returns:
        ``start``: for each step ``t``, the first step at or after ``t`` where the flag holds,
        or ``T`` when none does; ``length``: the steps the window lasts from ``start`` (until
        the flag drops or the episode ends), 0 when there is none. Both int64, ``flags``'s
        shape.

    """
    steps = flags.shape[1]
    index = np.arange(steps).reshape((1, steps) + (1,) * (flags.ndim - 2))
    start = _suffix_min(np.where(flags, index, steps))
    end = _suffix_min(np.where(flags, steps, index))  # first step at or after t without it
    # One more row at T, past the end: a window that never starts ends there too.
    end = np.concatenate([end, np.full_like(end[:, :1], steps)], axis=1)
    length = np.take_along_axis(end, start, axis=1) - start
    return start, length


def window_best(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Largest of ``values`` over the window at ``start``, from that step to its end.

    ``values`` (``[n, T, ...]``) is positive inside windows and 0 outside; ``start`` comes
    from :func:`next_window` (``T``: none, giving 0).
    """
    steps = values.shape[1]
    best = np.zeros((values.shape[0], steps + 1) + values.shape[2:])
    for t in range(steps - 1, -1, -1):  # a suffix maximum that restarts at every gap
        best[:, t] = np.where(values[:, t] > 0.0, np.maximum(values[:, t], best[:, t + 1]), 0.0)
    return np.take_along_axis(best, start, axis=1)


def lookahead_table(plan: EpisodePlan, config: OrbitSchedulingConfig) -> np.ndarray:
    """The lookahead block of every step, ``[n, T, L]`` in the order of the layout's block."""
    steps, dt = config.horizon_steps, config.step_seconds
    layout = ObservationLayout.for_config(config)
    size = layout.lookahead_block.stop - layout.lookahead_block.start
    n = plan.sunlit.shape[0]
    out = np.zeros((n, steps, size))
    now = np.arange(steps).reshape(1, steps, 1)

    def put(offsets: np.ndarray, flags: np.ndarray) -> np.ndarray:
        # Every window's fields are an (in, for) pair: WINDOW_IN, WINDOW_FOR past its offset.
        start, length = next_window(flags)
        out[..., offsets + WINDOW_IN] = np.where(
            start < steps, (start - now) / steps, NO_WINDOW_IN
        )
        out[..., offsets + WINDOW_FOR] = length / steps
        return start

    peak = np.array([getattr(config, name).downlink_kbps for name in SPACECRAFT]) * 1000.0 * dt
    rate = plan.downlink_bits.max(axis=2) / peak  # [n, T, 2] best station now
    craft = np.arange(2) * CRAFT_LOOKAHEAD_FIELDS
    put(craft + ECLIPSE_IN, plan.sunlit < ECLIPSE_SUNLIT_BELOW)
    put(craft + EARTH_IN, plan.earth_visible)
    contact = put(craft + CONTACT_IN, rate > 0.0)
    out[..., craft + CONTACT_BEST_RATE] = np.minimum(window_best(rate, contact), 1.0)
    stations = 2 * CRAFT_LOOKAHEAD_FIELDS + np.arange(len(config.stations)) * WINDOW_FIELDS
    put(stations, plan.station_sees_mars)
    occultation = 2 * CRAFT_LOOKAHEAD_FIELDS + len(config.stations) * WINDOW_FIELDS
    put(np.array([occultation]), plan.occultation[..., None])
    return out


def _suffix_min(values: np.ndarray) -> np.ndarray:
    return np.minimum.accumulate(values[:, ::-1], axis=1)[:, ::-1]
