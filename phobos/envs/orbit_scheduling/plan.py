"""Per-episode tables: everything exogenous to the agents, computed once at reset.

Orbits, eclipses, station visibility, link contacts, occultation opportunities and downlink
rates depend only on the date and the seeded orbital phases, so they are computed for a whole
episode at once, vectorised over time and environments. A step then only indexes these tables.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from phobos.envs.orbit_scheduling.config import OrbitSchedulingConfig
from phobos.envs.physics import geometry
from phobos.envs.physics.constants import (
    AU_KM,
    GROUND_STATIONS,
    IONOSPHERE_BOTTOM_KM,
    IONOSPHERE_TOP_KM,
    MARS_MEAN_SUN_DISTANCE_KM,
    MARS_RADIUS_KM,
    OCCULTATION_RARE_SZA_DEG,
)
from phobos.envs.physics.ephemeris import EphemerisTable, ephemeris_table
from phobos.envs.physics.orbits import (
    PHASING_ORBIT,
    PHOBOS_ORBIT,
    YINGHUO1_ORBIT,
    kepler_positions,
    orbit_normal,
    quasi_synchronous_positions,
)
from phobos.envs.physics.surface import sun_earth_mars_angle_deg


@dataclass(frozen=True)
class EpisodePlan:
    """Exogenous tables for ``n`` episodes of ``T`` steps (axis 0: episode, axis 1: step).

    Spacecraft axes are ``[phobos_grunt, yinghuo1]``; agent axes follow ``config.agents``.
    """

    start_offset_s: np.ndarray  # [n] episode start, seconds after config.start
    positions: np.ndarray  # [n, T + 1, 3, 3] Phobos, Phobos-Grunt, Yinghuo-1 at step starts
    earth_direction: np.ndarray  # [n, T + 1, 3] unit vector from Mars to Earth
    sun_direction: np.ndarray  # [n, T + 1, 3] unit vector from Mars to the Sun
    sunlit: np.ndarray  # [n, T, 2] share of the step in sunlight
    solar_scale: np.ndarray  # [n, T] (mean Sun distance / Sun distance)^2
    earth_visible: np.ndarray  # [n, T, 2] spacecraft not hidden behind Mars from Earth
    dayside: np.ndarray  # [n, T, 2] the point below the spacecraft is sunlit
    phobos_near: np.ndarray  # [n, T] Phobos close to Phobos-Grunt and sunlit
    magnetosphere: np.ndarray  # [n, T] Yinghuo-1 inside the induced magnetosphere region
    occultation: np.ndarray  # [n, T] the spacecraft-to-spacecraft ray sweeps the ionosphere
    occultation_boost: np.ndarray  # [n, T] value factor (rare solar zenith angles)
    occultation_soon: np.ndarray  # [n, T] an opportunity within the look-ahead, after this step
    station_sees_mars: np.ndarray  # [n, T, S] Mars above the mask (v1: and clear of the Sun)
    light_time_s: np.ndarray  # [n, T] Earth-Mars one-way light time
    downlink_bits: np.ndarray  # [n, T, S, 2] bits a station tracking a spacecraft receives
    link_open: np.ndarray  # [n, T, A, A] an intent message can leave sender for receiver
    link_delay_s: np.ndarray  # [n, T, A, A] its light time
    message_lost: np.ndarray  # [n, T, A, A] the channel loses a message sent then
    initial_state: np.ndarray  # [n, 4] battery PG, battery YH, storage PG, storage YH (fractions)


def ephemeris_for(config: OrbitSchedulingConfig) -> EphemerisTable:
    """The cached ephemeris table covering every episode ``config`` can draw."""
    span_days = config.start_window_days + config.horizon_steps * config.step_seconds / 86400.0
    return ephemeris_table(config.start, span_days + 0.5)


def plan_episodes(config: OrbitSchedulingConfig, rngs: list[np.random.Generator]) -> EpisodePlan:
    """Draw and tabulate one episode per generator (the draws are the only randomness)."""
    steps, sub, dt = config.horizon_steps, config.substeps, config.step_seconds
    agents = config.agents
    n = len(rngs)
    window_steps = int(config.start_window_days * 86400.0 // dt)
    start_step = np.empty(n, dtype=np.int64)
    angle, initial = np.empty((n, 6)), np.empty((n, 4))
    loss_u = np.empty((n, steps, len(agents), len(agents)))
    for i, rng in enumerate(rngs):
        start_step[i] = rng.integers(0, window_steps + 1)
        angle[i] = rng.uniform(0.0, 2.0 * np.pi, size=6)
        initial[i] = rng.uniform(size=4)
        rng.random(out=loss_u[i])
    offset = start_step * dt
    dates = _dated(config, start_step, offset)

    # Spacecraft move fast: sample them `sub` times a step for eclipses and occultation
    # sweeps. Earth, the Sun and Phobos's survey window change slowly: once a step suffices.
    fine = np.arange(steps * sub + 1) * (dt / sub)
    mid_s = (np.arange(steps) + 0.5) * dt
    start_s = np.arange(steps + 1) * dt
    col = angle[:, :, None]
    no_periapsis_turn = np.zeros((n, 1))

    def phobos_at(seconds: np.ndarray) -> np.ndarray:
        return kepler_positions(PHOBOS_ORBIT, seconds, col[:, 0], col[:, 1], no_periapsis_turn)

    def craft_at(seconds: np.ndarray) -> np.ndarray:
        craft = np.empty((n, seconds.shape[-1], 2, 3))  # [n, times, 2, 3]
        if config.phobos_grunt_orbit == "phasing":
            kepler_positions(
                PHASING_ORBIT, seconds, col[:, 2], col[:, 1], no_periapsis_turn, craft[:, :, 0]
            )
        else:
            craft[:, :, 0] = quasi_synchronous_positions(
                phobos_at(seconds),
                PHOBOS_ORBIT.period_s,
                seconds,
                config.quasi_synchronous_radius_km,
                col[:, 2],
                normal=orbit_normal(PHOBOS_ORBIT.inclination_deg, col[:, 1]),
            )
        kepler_positions(YINGHUO1_ORBIT, seconds, col[:, 3], col[:, 4], col[:, 5], craft[:, :, 1])
        return craft

    craft = craft_at(fine[None, :])
    craft_start = craft[:, ::sub]
    # With an even number of substeps the midpoints are fine samples too: reuse them.
    craft_mid = craft[:, sub // 2 :: sub] if sub % 2 == 0 else craft_at(mid_s[None, :])
    phobos_mid = phobos_at(mid_s[None, :])
    earth_mid, sun_mid = dates["earth_mid"], dates["sun_mid"]

    # Each fine sample against its step's Sun direction, broadcast rather than repeated.
    fine_by_step = craft[:, :-1].reshape(n, steps, sub, 2, 3)
    shadow = geometry.ray_blocked(fine_by_step, sun_mid[:, :, None, None, :], MARS_RADIUS_KM)
    sunlit = 1.0 - shadow.mean(axis=2)
    earth_visible = ~geometry.ray_blocked(craft_mid, earth_mid[:, :, None, :], MARS_RADIUS_KM)
    dayside = geometry.dot(geometry.unit(craft_mid), sun_mid[:, :, None, :]) > 0.0
    phobos_lit = ~geometry.ray_blocked(phobos_mid, sun_mid, MARS_RADIUS_KM)
    phobos_range = geometry.norm(craft_mid[:, :, 0] - phobos_mid)
    phobos_near = phobos_lit & (phobos_range < config.phobos_survey_range_km)
    magnetosphere = geometry.norm(craft_mid[:, :, 1]) < config.magnetosphere_radius * MARS_RADIUS_KM

    occultation, boost = _occultation_windows(config, craft, sun_mid)
    soon = _any_within(occultation, config.occultation_lookahead_steps)

    sees_mars, light_time = dates["sees_mars"], dates["light_time"]
    antenna = np.array([GROUND_STATIONS[key].antenna_m for key in config.stations])
    antenna_gain = np.minimum(1.0, (antenna / config.reference_antenna_m) ** 2)
    peak_bits = np.array([config.phobos_grunt.downlink_kbps, config.yinghuo1.downlink_kbps])
    peak_bits = peak_bits * 1000.0 * dt
    downlink = (
        peak_bits[None, None, None, :]
        * antenna_gain[None, None, :, None]
        * dates["range_gain"][:, :, None, None]
        * (sees_mars[..., :, None] & earth_visible[..., None, :])
    )

    link_open, link_delay = _intent_links(
        len(agents), sees_mars, earth_visible, craft_mid, light_time
    )
    lost = loss_u < config.message_loss

    return EpisodePlan(
        start_offset_s=offset,
        positions=np.concatenate([phobos_at(start_s[None, :])[:, :, None], craft_start], axis=2),
        earth_direction=dates["earth_direction"],
        sun_direction=dates["sun_direction"],
        sunlit=sunlit,
        solar_scale=dates["solar_scale"],
        earth_visible=earth_visible,
        dayside=dayside,
        phobos_near=phobos_near,
        magnetosphere=magnetosphere,
        occultation=occultation,
        occultation_boost=boost,
        occultation_soon=soon,
        station_sees_mars=sees_mars,
        light_time_s=light_time,
        downlink_bits=downlink,
        link_open=link_open,
        link_delay_s=link_delay,
        message_lost=lost,
        initial_state=initial,
    )


def _dated(
    config: OrbitSchedulingConfig, start_step: np.ndarray, offset: np.ndarray
) -> dict[str, np.ndarray]:
    """Everything that depends only on the date, ``[n, T]`` or ``[n, T + 1]`` per episode.

    Episodes start at whole steps, so their step midpoints and starts are points of one grid
    from ``config.start``: tabulated once per configuration, each episode gathers its rows.
    That gives the very same numbers as sampling per episode while the grid times are exact,
    which they are when a half step is a whole number of seconds (below 2**53); otherwise
    each episode samples its own times.
    """
    steps, dt = config.horizon_steps, config.step_seconds
    if float(2.0 * dt).is_integer():
        grid = _date_grid(config)
        mid = start_step[:, None] + np.arange(steps)
        start = start_step[:, None] + np.arange(steps + 1)
        return {
            key: column[start if key in _AT_STEP_STARTS else mid] for key, column in grid.items()
        }
    mid_s = (np.arange(steps) + 0.5) * dt
    start_s = np.arange(steps + 1) * dt
    return _date_columns(config, offset[:, None] + mid_s, offset[:, None] + start_s)


_AT_STEP_STARTS = ("earth_direction", "sun_direction")


@functools.lru_cache(maxsize=8)
def _date_grid(config: OrbitSchedulingConfig) -> dict[str, np.ndarray]:
    steps, dt = config.horizon_steps, config.step_seconds
    grid_steps = int(config.start_window_days * 86400.0 // dt) + steps
    columns = _date_columns(
        config, (np.arange(grid_steps) + 0.5) * dt, np.arange(grid_steps + 1) * dt
    )
    for column in columns.values():
        column.flags.writeable = False  # shared by every plan of this configuration
    return columns


def _date_columns(
    config: OrbitSchedulingConfig, mid_s: np.ndarray, start_s: np.ndarray
) -> dict[str, np.ndarray]:
    """The dated quantities at step midpoints ``mid_s`` and starts ``start_s`` (any shape)."""
    table = ephemeris_for(config)
    # v0 keeps its interpolated angle bit for bit; from v1 it is built from its known rate.
    rotation = "table" if config.version == 0 else "rate"
    eph_mid = table.sample(mid_s, rotation)
    eph_start = table.sample(start_s, rotation)
    sun_distance = geometry.norm(eph_mid["sun_from_mars"])
    stations = [GROUND_STATIONS[key] for key in config.stations]
    lat = np.array([s.lat_deg for s in stations])
    lon = np.array([s.lon_deg for s in stations])
    elevation = geometry.station_elevation_deg(
        lat, lon, eph_mid["mars_cirs"], eph_mid["earth_rotation_angle"]
    )
    earth_distance = geometry.norm(eph_mid["earth_from_mars"])
    sees_mars = elevation >= config.elevation_mask_deg
    if config.version >= 1:
        # Near solar conjunction the Sun's noise drowns the carrier: a station can work Mars
        # only with the Sun clear of it, so every Earth link and downlink closes in the plan.
        separation = sun_earth_mars_angle_deg(eph_mid["earth_from_mars"], eph_mid["sun_from_mars"])
        sees_mars &= (separation >= config.solar_conjunction_deg)[..., None]
    return {
        "earth_mid": geometry.unit(eph_mid["earth_from_mars"]),
        "sun_mid": eph_mid["sun_from_mars"] / sun_distance[..., None],
        "solar_scale": (MARS_MEAN_SUN_DISTANCE_KM / sun_distance) ** 2,
        "sees_mars": sees_mars,
        "light_time": geometry.light_time_s(earth_distance),
        "range_gain": np.minimum(1.0, (config.reference_distance_au * AU_KM / earth_distance) ** 2),
        "earth_direction": geometry.unit(eph_start["earth_from_mars"]),
        "sun_direction": geometry.unit(eph_start["sun_from_mars"]),
    }


def _occultation_windows(
    config: OrbitSchedulingConfig, craft: np.ndarray, sun: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    # craft: [n, T * sub + 1, 2, 3] fine samples; sun: [n, T, 3] at step midpoints.
    """Steps in which the Phobos-Grunt to Yinghuo-1 ray sweeps the ionosphere, and their value.

    The tangent altitude is sampled ``substeps + 1`` times across each step; a step counts when
    those samples reach both below the top and above the bottom of the band (the ray enters,
    leaves or stays in it). Its value is boosted when the tangent point's solar zenith angle
    is one Earth-based occultation cannot reach.
    """
    steps, sub = config.horizon_steps, config.substeps
    # geometry.occultation_tangent, with the tangent direction taken only where it is used.
    closest = geometry.segment_closest_point(craft[:, :, 0], craft[:, :, 1])
    distance = geometry.norm(closest)
    altitude = distance - MARS_RADIUS_KM
    index = np.arange(steps)[:, None] * sub + np.arange(sub + 1)[None, :]  # [T, sub + 1]
    window = altitude[:, index]
    low_enough = window.min(axis=-1) <= IONOSPHERE_TOP_KM
    hit = low_enough & (window.max(axis=-1) >= IONOSPHERE_BOTTOM_KM)
    middle = 0.5 * (IONOSPHERE_BOTTOM_KM + IONOSPHERE_TOP_KM)
    closest_to_middle = np.argmin(np.abs(window - middle), axis=-1)  # [n, T]
    best = index[np.arange(steps)[None, :], closest_to_middle]
    best_distance = np.take_along_axis(distance, best, axis=1)
    tangent = np.take_along_axis(closest, best[..., None], axis=1)
    tangent /= np.maximum(best_distance, 1e-9)[..., None]
    cos_sza = geometry.dot(tangent, sun)
    sza = np.degrees(np.arccos(np.clip(cos_sza, -1.0, 1.0)))
    low, high = OCCULTATION_RARE_SZA_DEG
    boost = np.where((sza < low) | (sza > high), config.rare_sza_boost, 1.0)
    return hit, np.where(hit, boost, 0.0)


def _any_within(flags: np.ndarray, lookahead: int) -> np.ndarray:
    """For each step, whether ``flags`` is set in any of the next ``lookahead`` steps."""
    counts = np.concatenate([np.zeros_like(flags[:, :1], dtype=np.int64), np.cumsum(flags, 1)], 1)
    steps = flags.shape[1]
    begin = np.minimum(np.arange(steps) + 1, steps)
    end = np.minimum(np.arange(steps) + 1 + lookahead, steps)
    return (counts[:, end] - counts[:, begin]) > 0


def _intent_links(
    agents: int,
    sees_mars: np.ndarray,
    earth_visible: np.ndarray,
    craft_mid: np.ndarray,
    light_time: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Contact plan for intent messages, ``[n, T, A, A]``.

    Spacecraft to spacecraft: while Mars does not block the line between them, with their
    light time. Spacecraft and station: while the station sees Mars and Mars does not hide the
    spacecraft; intents ride the low-rate channel that a dish pointed at Mars receives from
    every spacecraft in its beam (multiple spacecraft per aperture), so they need no tracking
    choice. Station to station: the terrestrial network, always, with no delay worth a step.
    """
    n, steps = light_time.shape
    link_open = np.zeros((n, steps, agents, agents), dtype=bool)
    delay = np.zeros((n, steps, agents, agents))
    isl = geometry.segment_clear(craft_mid[:, :, 0], craft_mid[:, :, 1], MARS_RADIUS_KM)
    isl_delay = geometry.light_time_s(geometry.norm(craft_mid[:, :, 0] - craft_mid[:, :, 1]))
    link_open[:, :, 0, 1] = link_open[:, :, 1, 0] = isl
    delay[:, :, 0, 1] = delay[:, :, 1, 0] = isl_delay
    ground = earth_visible[:, :, :, None] & sees_mars[:, :, None, :]  # [n, T, 2, S]
    link_open[:, :, :2, 2:] = ground
    link_open[:, :, 2:, :2] = np.swapaxes(ground, -1, -2)
    delay[:, :, :2, 2:] = light_time[:, :, None, None]
    delay[:, :, 2:, :2] = light_time[:, :, None, None]
    link_open[:, :, 2:, 2:] = ~np.eye(agents - 2, dtype=bool)
    return link_open, delay
