"""Per-episode tables of the sampling task: everything exogenous, computed once at reset.

The landing date, Phobos's orbital phase and the channel's losses are the only draws; the sky
over the site (Sun, Earth, stations, contacts, light time) follows from them and is tabulated
for the whole episode, so a step only indexes these tables.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from phobos.envs.physics.constants import GROUND_STATIONS
from phobos.envs.physics.ephemeris import ephemeris_table
from phobos.envs.physics.surface import SkyTrack, SurfaceTables, sky_track, surface_tables
from phobos.envs.sampling.config import SamplingConfig
from phobos.envs.sampling.layout import (
    CONTACT,
    EARTH_VISIBLE,
    LIGHT_TIME,
    LIGHT_TIME_SCALE,
    NEXT_CONTACT,
    SHARED_FIELDS,
    SUN,
    TIME,
)


@dataclass(frozen=True)
class EpisodeSky:
    """The sky over the lander for one episode of ``T`` steps.

    From :func:`plan_episodes` every field carries a leading episode axis as well.

    Attributes:
        start_offset_s: Landing time, seconds after ``config.start``.
        mean_anomaly0: Phobos's mean argument of latitude at landing (radians).
        raan: Phobos's ascending node on the Mars equator (radians).
        surface: The tables of :func:`~phobos.envs.physics.surface.surface_tables`, with
            the episode axis dropped.
        solar_wh: ``[T]`` energy the arrays deliver during each step.
        image_ok: ``[T + 1]`` the Sun is high enough for the cameras at the step's start.
        shared: ``[T + 1, SHARED_FIELDS]`` the shared observation block at each step start.
        link_open: ``[T, 2, 2]`` the lander and the science team can exchange messages.
        link_delay_s: ``[T, 2, 2]`` the light time then.
        message_lost: ``[T, 2, 2]`` the channel loses a message sent then.
        start_battery: Battery fraction at landing.

    """

    start_offset_s: float
    mean_anomaly0: float
    raan: float
    surface: SurfaceTables
    solar_wh: np.ndarray
    image_ok: np.ndarray
    shared: np.ndarray
    link_open: np.ndarray
    link_delay_s: np.ndarray
    message_lost: np.ndarray
    start_battery: float


def track_for(config: SamplingConfig) -> SkyTrack:
    """The sky track of every episode ``config`` can draw (computed once per window)."""
    return _cached_track(
        config.start,
        _span_s(config),
        config.step_seconds / (2 * config.substeps),
        config.stations,
        config.elevation_mask_deg,
        config.solar_conjunction_deg,
    )


def _span_s(config: SamplingConfig) -> float:
    window_steps = int(config.start_window_days * 86400.0 // config.step_seconds)
    return (window_steps + config.horizon_steps) * config.step_seconds


@functools.lru_cache(maxsize=8)
def _cached_track(
    start: str,
    span_s: float,
    spacing_s: float,
    stations: tuple[str, ...],
    mask_deg: float,
    conjunction_deg: float,
) -> SkyTrack:
    chosen = [GROUND_STATIONS[key] for key in stations]
    return sky_track(
        ephemeris_table(start, span_s / 86400.0 + 0.5),
        span_s,
        spacing_s,
        station_lat_deg=np.array([s.lat_deg for s in chosen]),
        station_lon_deg=np.array([s.lon_deg for s in chosen]),
        station_mask_deg=mask_deg,
        conjunction_deg=conjunction_deg,
    )


def plan_episode(config: SamplingConfig, rng: np.random.Generator) -> EpisodeSky:
    """Draw the landing time, Phobos's phase and the losses from ``rng``; tabulate the sky."""
    sky = plan_episodes(config, [rng])
    return EpisodeSky(**{f.name: _first(getattr(sky, f.name)) for f in fields(sky)})


def plan_episodes(config: SamplingConfig, rngs: Sequence[np.random.Generator]) -> EpisodeSky:
    """:func:`plan_episode` for one episode per generator, tabulated together.

    Each generator makes the same draws as :func:`plan_episode` would; every field of the
    result then has a leading episode axis (the floats become ``[n]`` arrays), so episode
    ``i`` of the batch equals ``plan_episode(config, rngs[i])``.
    """
    steps, dt = config.horizon_steps, config.step_seconds
    window_steps = int(config.start_window_days * 86400.0 // dt)
    n = len(rngs)
    offset, anomaly, raan, battery = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    lost = np.zeros((n, steps, 2, 2), dtype=bool)
    low, high = config.lander.start_battery
    for i, rng in enumerate(rngs):
        offset[i] = float(rng.integers(0, window_steps + 1) * dt)
        anomaly[i], raan[i] = rng.uniform(0.0, 2.0 * np.pi, size=2)
        battery[i] = float(rng.uniform(low, high))
        lost[i] = rng.random((steps, 2, 2)) < config.message_loss

    surface = surface_tables(
        track_for(config),
        offset,
        steps=steps,
        step_seconds=dt,
        substeps=config.substeps,
        site_deg=(config.site_lat_deg, config.site_lon_deg),
        mean_anomaly0=anomaly,
        raan=raan,
        earth_mask_deg=config.lander.earth_mask_deg,
    )

    contact = surface.contact
    link_open = np.zeros((n, steps, 2, 2), dtype=bool)
    link_open[:, :, 0, 1] = link_open[:, :, 1, 0] = contact
    delay = np.repeat(surface.light_time_s[:, :, None, None], 2, axis=2).repeat(2, axis=3)

    shared = np.zeros((n, steps + 1, SHARED_FIELDS))
    last = np.minimum(np.arange(steps + 1), steps - 1)  # the final observation repeats
    shared[:, :, TIME] = np.arange(steps + 1) / steps
    shared[:, :, SUN] = np.maximum(np.sin(np.radians(surface.sun_elevation_deg)), 0.0)
    shared[:, :, EARTH_VISIBLE] = surface.earth_visible[:, last]
    shared[:, :, CONTACT] = contact[:, last]
    shared[:, :, NEXT_CONTACT] = _steps_to_next(contact)[:, last] / steps
    shared[:, :, LIGHT_TIME] = np.minimum(surface.light_time_s[:, last] / LIGHT_TIME_SCALE, 1.0)
    return EpisodeSky(
        start_offset_s=offset,
        mean_anomaly0=anomaly,
        raan=raan,
        surface=surface,
        solar_wh=surface.solar_fraction * config.lander.solar_peak_w * dt / 3600.0,
        image_ok=surface.sun_elevation_deg >= config.lander.image_min_sun_deg,
        shared=shared,
        link_open=link_open,
        link_delay_s=delay,
        message_lost=lost,
        start_battery=battery,
    )


def _first(value: object) -> object:
    """Episode 0 of a batched field (floats back to Python floats)."""
    if isinstance(value, SurfaceTables):
        return SurfaceTables(**{f.name: getattr(value, f.name)[0] for f in fields(value)})
    return float(value[0]) if value.ndim == 1 and value.dtype == np.float64 else value[0]


def _steps_to_next(flags: np.ndarray) -> np.ndarray:
    """Steps from each step to the first flagged one at or after it (``steps`` when none).

    Works along the last axis, so over one episode ``[T]`` or many ``[n, T]``.
    """
    steps = flags.shape[-1]
    candidate = np.where(flags, np.arange(steps), steps)
    first = np.minimum.accumulate(candidate[..., ::-1], axis=-1)[..., ::-1]
    return np.where(first >= steps, steps, first - np.arange(steps))
