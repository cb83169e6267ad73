"""Observation and action-mask features shared by the batch core and the ``ParallelEnv``.

The features split into a static part, a function of the episode plan and the step only, and
a dynamic part (battery, storage, received intents). Static parts are computed here for any
set of steps at once: the batch core asks for one step of many episodes, the ``ParallelEnv``
for every step of its one episode at reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phobos.envs.orbit_scheduling.config import (
    CHARGE,
    CRAFT_COUNT,
    DOWNLINK,
    IDLE,
    MARS_CAMERA,
    OCCULTATION,
    PHOBOS_GRUNT_INDEX,
    PHOBOS_SURVEY,
    SPACECRAFT,
    STATION_ACTIVITIES,
    TRACK_FIRST,
    YINGHUO1_CAMERA,
    YINGHUO1_INDEX,
    OrbitSchedulingConfig,
)
from phobos.envs.orbit_scheduling.layout import (
    DAYSIDE,
    DOWNLINK_RATE,
    EARTH_PHOBOS_GRUNT,
    EARTH_VISIBLE,
    INTENT_AGE,
    INTENT_BATTERY,
    INTENT_FIELDS,
    INTENT_RECEIVED,
    INTENT_STORAGE,
    LIGHT_TIME,
    MAX_ACTIONS,
    OCCULTATION_NOW,
    OCCULTATION_SOON,
    RATE_PHOBOS_GRUNT,
    SEES_MARS,
    SPACECRAFT_LINK,
    STATION_SEES_MARS,
    SUNLIT,
    TARGET,
    TIME,
    ObservationLayout,
)
from phobos.envs.orbit_scheduling.lookahead import lookahead_table
from phobos.envs.orbit_scheduling.plan import EpisodePlan

LIGHT_TIME_SCALE = 1400.0
"""Light times are observed as a fraction of this (above the 1,338 s maximum)."""
STORED_VALUE_SCALE = 10.0
"""Stored science value is observed as a fraction of this, clipped at one."""


@dataclass(frozen=True)
class CraftTables:
    """The two spacecraft's configuration as ``[spacecraft]`` or ``[spacecraft, activity]``."""

    step_hours: float
    peak_w: np.ndarray
    bus_w: np.ndarray
    load_w: np.ndarray
    pointing: np.ndarray
    battery_wh: np.ndarray
    storage_bits: np.ndarray
    data_bits: np.ndarray
    value: np.ndarray
    downlink_peak_bits: np.ndarray

    @classmethod
    def from_config(cls, config: OrbitSchedulingConfig) -> CraftTables:
        """Tabulate ``config``'s spacecraft."""
        craft = [getattr(config, name) for name in SPACECRAFT]
        off_sun = np.array([c.off_sun_fraction for c in craft])
        # Share of the array's peak each activity's attitude gives: sun-pointed only to charge.
        pointing = np.repeat(off_sun[:, None], MAX_ACTIONS, axis=1)
        pointing[:, CHARGE] = 1.0
        return cls(
            step_hours=config.step_seconds / 3600.0,
            peak_w=np.array([c.solar_peak_w for c in craft]),
            bus_w=np.array([c.bus_load_w for c in craft]),
            load_w=np.array([c.activity_load_w for c in craft]),
            pointing=pointing,
            battery_wh=np.array([c.battery_wh for c in craft]),
            storage_bits=np.array([c.storage_mbit for c in craft]) * 1e6,
            data_bits=np.array([c.data_mbit for c in craft]) * 1e6,
            value=np.array([c.value for c in craft]),
            downlink_peak_bits=np.array([c.downlink_kbps for c in craft])
            * 1000.0
            * config.step_seconds,
        )


def static_observation(
    plan: EpisodePlan,
    config: OrbitSchedulingConfig,
    layout: ObservationLayout,
    tables: CraftTables,
    k: np.ndarray,
    lookahead: np.ndarray | None = None,
) -> np.ndarray:
    """Static features at observation indices ``k`` (``[K]`` ints in ``0..T``), ``[n, K, A, D]``.

    The dynamic slots (a spacecraft's battery, storage and stored value, and the intent
    block) are left at zero. Observation ``k`` describes the step about to be taken; the
    final one (``k = T``) repeats the last step's geometry. ``lookahead`` is the plan's
    :func:`~phobos.envs.orbit_scheduling.lookahead.lookahead_table` when the layout has that
    block (computed here if not given: callers that observe step by step pass it).
    """
    steps = config.horizon_steps
    g = np.minimum(k, steps - 1)
    n, agents = plan.light_time_s.shape[0], len(config.agents)
    out = np.zeros((n, len(k), agents, layout.size))
    sees = plan.station_sees_mars[:, g]  # [n, K, S]
    shared = out[..., : layout.shared]
    shared[..., TIME] = (k / steps)[None, :, None]
    shared[..., LIGHT_TIME] = np.minimum(plan.light_time_s[:, g] / LIGHT_TIME_SCALE, 1.0)[
        ..., None
    ]
    shared[..., OCCULTATION_NOW] = plan.occultation[:, g, None]
    shared[..., OCCULTATION_SOON] = plan.occultation_soon[:, g, None]
    link = plan.link_open[:, g, PHOBOS_GRUNT_INDEX, YINGHUO1_INDEX]
    shared[..., SPACECRAFT_LINK] = link[..., None]
    shared[..., STATION_SEES_MARS:] = sees[:, :, None, :]

    own = out[..., layout.own]
    rates = np.minimum(plan.downlink_bits[:, g] / tables.downlink_peak_bits, 1.0)  # [n, K, S, 2]
    earth_visible = plan.earth_visible[:, g]
    crafts, stations = slice(None, CRAFT_COUNT), slice(CRAFT_COUNT, None)
    own[:, :, crafts, SUNLIT] = plan.sunlit[:, g]
    own[:, :, crafts, EARTH_VISIBLE] = earth_visible
    own[:, :, crafts, DAYSIDE] = plan.dayside[:, g]
    own[:, :, PHOBOS_GRUNT_INDEX, TARGET] = plan.phobos_near[:, g]
    own[:, :, YINGHUO1_INDEX, TARGET] = plan.magnetosphere[:, g]
    own[:, :, crafts, DOWNLINK_RATE] = rates.max(axis=2)
    own[:, :, stations, SEES_MARS] = sees
    own[:, :, stations, RATE_PHOBOS_GRUNT : RATE_PHOBOS_GRUNT + CRAFT_COUNT] = rates
    own[:, :, stations, EARTH_PHOBOS_GRUNT : EARTH_PHOBOS_GRUNT + CRAFT_COUNT] = earth_visible[
        :, :, None, :
    ]
    if layout.lookahead:
        if lookahead is None:
            lookahead = lookahead_table(plan, config)
        out[..., layout.lookahead_block] = lookahead[:, g, None, :]
    return out


CONTENT_ACTIVITY, CONTENT_BATTERY, CONTENT_STORAGE = range(3)
"""Fields of an intent message's content as the batch core records it (last axis, 3 long)."""


def intent_features(content: np.ndarray, received: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Intent block entries from message contents ``[..., 3]`` (activity, battery, storage)."""
    out = np.zeros(received.shape + (INTENT_FIELDS,))
    activity = content[..., CONTENT_ACTIVITY].astype(np.int64)
    out[..., :MAX_ACTIONS] = (np.arange(MAX_ACTIONS) == activity[..., None]) & received[..., None]
    out[..., INTENT_BATTERY] = content[..., CONTENT_BATTERY] * received
    out[..., INTENT_STORAGE] = content[..., CONTENT_STORAGE] * received
    out[..., INTENT_AGE] = np.where(received, age, 1.0)
    out[..., INTENT_RECEIVED] = received
    return out


@dataclass(frozen=True)
class StaticMasks:
    """Mask parts that do not depend on the spacecraft's state, at steps ``g``.

    Attributes:
        condition: ``[n, K, 2, 7]`` geometry allows the activity.
        net_wh: ``[n, K, 2, 7]`` battery change if the activity runs this step.
        stations: ``[n, K, S, 3]`` a station's mask.

    """

    condition: np.ndarray
    net_wh: np.ndarray
    stations: np.ndarray


def static_masks(plan: EpisodePlan, tables: CraftTables, g: np.ndarray) -> StaticMasks:
    """Static mask parts at steps ``g`` (``[K]`` ints in ``0..T-1``)."""
    n = plan.light_time_s.shape[0]
    sees = plan.station_sees_mars[:, g]
    earth_visible = plan.earth_visible[:, g]
    grunt, yinghuo = PHOBOS_GRUNT_INDEX, YINGHUO1_INDEX
    condition = np.ones((n, len(g), CRAFT_COUNT, MAX_ACTIONS), dtype=bool)
    condition[..., DOWNLINK] = earth_visible & sees.any(axis=-1)[..., None]
    condition[..., OCCULTATION] = plan.occultation[:, g, None]
    # The cameras need the dayside below; the survey needs Phobos in range.
    condition[:, :, grunt, MARS_CAMERA] = plan.dayside[:, g, grunt]
    condition[:, :, grunt, PHOBOS_SURVEY] = plan.phobos_near[:, g]
    condition[:, :, yinghuo, YINGHUO1_CAMERA] = plan.dayside[:, g, yinghuo]
    solar = (
        tables.peak_w[:, None]
        * plan.solar_scale[:, g, None, None]
        * plan.sunlit[:, g, :, None]
        * tables.pointing
    )
    net_wh = (solar - tables.bus_w[:, None] - tables.load_w) * tables.step_hours
    stations = np.ones(sees.shape + (len(STATION_ACTIVITIES),), dtype=bool)
    # Tracking a spacecraft needs Mars above the station and the spacecraft facing Earth.
    stations[..., TRACK_FIRST:] = sees[..., None] & earth_visible[:, :, None, :]
    return StaticMasks(condition, net_wh, stations)


def combine_masks(
    static: StaticMasks, battery: np.ndarray, storage: np.ndarray, tables: CraftTables
) -> np.ndarray:
    """Full masks ``[n, K, A, 7]`` int8 from static parts and the state ``[n, 2]``."""
    n, steps = static.condition.shape[:2]
    stations = static.stations.shape[2]
    energy_ok = battery[:, None, :, None] + static.net_wh >= 0.0
    room_ok = storage[:, None, :, None] + tables.data_bits <= tables.storage_bits[:, None]
    craft = static.condition & energy_ok & room_ok
    craft[..., DOWNLINK] &= storage[:, None, :] > 0.0
    craft[..., IDLE] = craft[..., CHARGE] = True  # always allowed: the safe fallbacks
    mask = np.zeros((n, steps, CRAFT_COUNT + stations, MAX_ACTIONS), dtype=np.int8)
    mask[:, :, :CRAFT_COUNT] = craft
    mask[:, :, CRAFT_COUNT:, : len(STATION_ACTIVITIES)] = static.stations
    return mask
