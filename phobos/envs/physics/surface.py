"""A lander on the surface of Phobos: day and night, solar power, Earth in the sky, contacts.

Phobos is tidally locked, so one Phobos day is one orbit seen from the Sun (a synodic day of
7.66 h). Its body frame here has ``x`` towards Mars, ``z`` along Phobos's orbit normal and
``y = z x x``, so east longitude 90 deg is the trailing apex and 270 deg the leading one, as
in the IAU convention (longitudes counted from the sub-Mars point). The frame turns at the
mean motion: with Phobos's small eccentricity, Mars then wobbles by about 2e = 1.7 deg in the
lander's sky (optical libration), as it does for the real moon.

Directions to the Sun and Earth are those seen from Mars, from the cached ephemeris: at Mars's
distance the 9,400 km between Mars and Phobos shift them by arcseconds. Positions are in the
Mars equatorial frame, km. Every function is numpy and broadcasts over any leading axes, so a
whole episode (or many) is tabulated at once and a step only indexes the tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phobos.envs.physics import geometry
from phobos.envs.physics.constants import MARS_MEAN_SUN_DISTANCE_KM, MARS_RADIUS_KM
from phobos.envs.physics.ephemeris import EphemerisTable
from phobos.envs.physics.orbits import PHOBOS_ORBIT, orbit_normal

PHOBOS_MEAN_RADIUS_KM = 11.08
"""Volumetric mean radius of Phobos (its shape is 26.8 x 22.4 x 18.4 km, MISSION_FACTS). The
site's local vertical is taken as a sphere's: the triaxial shape tilts it by a few degrees."""

PHOBOS_GRUNT_SITE_DEG = (0.0, 232.5)
"""Latitude and east longitude of the default landing site: the middle of the region planned
for Phobos-Grunt, about 5 S to 5 N and 230 to 235 E as the mission's public descriptions quote
it (an approximation: the planned ellipse was refined from orbit and never flown), on the
leading side of the anti-Mars hemisphere. Mars never rises there, so it never hides Earth."""


def phobos_frame(
    seconds: np.ndarray, mean_anomaly0: np.ndarray, raan: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phobos's mean body axes ``x`` (to Mars), ``y``, ``z`` at ``seconds``, each ``[..., 3]``.

    ``mean_anomaly0`` and ``raan`` (radians, shaped to broadcast against ``seconds``) are the
    angles the episode plans draw: the periapsis lies on the node, so the mean
    anomaly is the mean argument of latitude.
    """
    theta = _mean_angle(seconds, mean_anomaly0)
    node, ahead, normal = _orbit_basis(raan)
    cos_t, sin_t = np.cos(theta)[..., None], np.sin(theta)[..., None]
    x = -(cos_t * node + sin_t * ahead)
    z = np.broadcast_to(normal, x.shape)
    return x, np.cross(z, x), z


def site_up(
    lat_deg: float,
    lon_deg: float,
    seconds: np.ndarray,
    mean_anomaly0: np.ndarray,
    raan: np.ndarray,
) -> np.ndarray:
    """Local vertical of a site (planetocentric latitude, east longitude), ``[..., 3]``.

    Written in closed form: the site's vertical turns in the orbit plane with the body, so
    ``up = -cos(lat) (cos(theta + lon) node + sin(theta + lon) ahead) + sin(lat) normal``.
    """
    return _up(lat_deg, lon_deg, _mean_angle(seconds, mean_anomaly0), _orbit_basis(raan))


def phobos_positions(
    seconds: np.ndarray, mean_anomaly0: np.ndarray, raan: np.ndarray
) -> np.ndarray:
    """Phobos's centre (km) at ``seconds``, ``[..., 3]``, with the periapsis on the node.

    The equation of the centre to second order in the eccentricity replaces Kepler's
    equation: with e = 0.0151 the neglected terms move Phobos by about 30 m, and the series
    costs a few vectorised operations instead of an iterative solve.
    """
    return _position(_mean_angle(seconds, mean_anomaly0), _orbit_basis(raan))


def lander_positions(
    lat_deg: float,
    lon_deg: float,
    seconds: np.ndarray,
    mean_anomaly0: np.ndarray,
    raan: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The lander's position around Mars (km) and its local vertical, both ``[..., 3]``."""
    mean, basis = _mean_angle(seconds, mean_anomaly0), _orbit_basis(raan)
    up = _up(lat_deg, lon_deg, mean, basis)
    return _position(mean, basis) + PHOBOS_MEAN_RADIUS_KM * up, up


def elevation_deg(up: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Elevation of a unit ``direction`` above the horizon whose vertical is ``up``."""
    return np.degrees(np.arcsin(np.clip(geometry.dot(up, direction), -1.0, 1.0)))


def mars_elevation_deg(position: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Elevation of Mars's centre seen from a lander at ``position`` with vertical ``up``."""
    return elevation_deg(up, -geometry.unit(position))


@dataclass(frozen=True)
class SurfaceTables:
    """What the sky does to a lander over ``n`` episodes of ``T`` steps.

    Axis 0 is the episode, axis 1 the step; ``[n, T + 1]`` arrays hold step starts (what an
    observation shows), the others describe the whole step.

    Attributes:
        sun_elevation_deg: ``[n, T + 1]`` the Sun's elevation at the site.
        earth_elevation_deg: ``[n, T + 1]`` Earth's elevation at the site.
        solar_fraction: ``[n, T]`` mean over the step of a horizontal panel's share of its
            rating: sine of the Sun's elevation (zero below the horizon), times the
            inverse-square distance factor, zero in Mars's shadow.
        eclipsed: ``[n, T]`` share of the step Phobos spends in Mars's shadow.
        earth_visible: ``[n, T]`` at mid-step, Earth is above the lander's antenna mask and
            not behind Mars.
        station_sees_mars: ``[n, T, S]`` at mid-step, Mars is above each station's mask.
        contact: ``[n, T]`` a link exists: Earth visible, at least one station sees Mars, and
            the Sun is not too close to Mars in Earth's sky (solar conjunction).
        light_time_s: ``[n, T]`` one-way light time at mid-step.

    """

    sun_elevation_deg: np.ndarray
    earth_elevation_deg: np.ndarray
    solar_fraction: np.ndarray
    eclipsed: np.ndarray
    earth_visible: np.ndarray
    station_sees_mars: np.ndarray
    contact: np.ndarray
    light_time_s: np.ndarray


@dataclass(frozen=True)
class SkyTrack:
    """The Sun, Earth and stations on a regular grid of absolute time, shared by episodes.

    Nothing here depends on the site or on Phobos's phase, so one track serves every episode
    of a date window; an episode only indexes it (see :func:`surface_tables`).

    Attributes:
        spacing_s: Grid spacing; sample ``j`` lies ``j * spacing_s`` after the table's start.
        sun: ``[N, 3]`` unit vectors from Mars to the Sun.
        solar_scale: ``[N]`` (mean Sun distance / Sun distance) squared.
        earth: ``[N, 3]`` unit vectors from Mars to Earth.
        light_time_s: ``[N]`` Earth-Mars one-way light time.
        station_sees_mars: ``[N, S]`` Mars above each station's elevation mask.
        clear_of_sun: ``[N]`` the Sun is at least the conjunction angle from Mars in Earth's sky.

    """

    spacing_s: float
    sun: np.ndarray
    solar_scale: np.ndarray
    earth: np.ndarray
    light_time_s: np.ndarray
    station_sees_mars: np.ndarray
    clear_of_sun: np.ndarray


def sky_track(
    table: EphemerisTable,
    span_s: float,
    spacing_s: float,
    *,
    station_lat_deg: np.ndarray,
    station_lon_deg: np.ndarray,
    station_mask_deg: float,
    conjunction_deg: float = 0.0,
) -> SkyTrack:
    """Sample ``table`` every ``spacing_s`` over its first ``span_s`` seconds."""
    eph = table.sample(np.arange(int(round(span_s / spacing_s)) + 1) * spacing_s)
    sun_distance = geometry.norm(eph["sun_from_mars"])
    earth_distance = geometry.norm(eph["earth_from_mars"])
    elevation = geometry.station_elevation_deg(
        np.asarray(station_lat_deg),
        np.asarray(station_lon_deg),
        eph["mars_cirs"],
        eph["earth_rotation_angle"],
    )
    separation = sun_earth_mars_angle_deg(eph["earth_from_mars"], eph["sun_from_mars"])
    return SkyTrack(
        spacing_s=float(spacing_s),
        sun=eph["sun_from_mars"] / sun_distance[:, None],
        solar_scale=(MARS_MEAN_SUN_DISTANCE_KM / sun_distance) ** 2,
        earth=eph["earth_from_mars"] / earth_distance[:, None],
        light_time_s=geometry.light_time_s(earth_distance),
        station_sees_mars=elevation >= station_mask_deg,
        clear_of_sun=separation >= conjunction_deg,
    )


def surface_tables(
    track: SkyTrack,
    start_offset_s: np.ndarray,
    *,
    steps: int,
    step_seconds: float,
    substeps: int,
    site_deg: tuple[float, float],
    mean_anomaly0: np.ndarray,
    raan: np.ndarray,
    earth_mask_deg: float,
) -> SurfaceTables:
    """Tabulate :class:`SurfaceTables` for episodes starting ``start_offset_s`` into ``track``.

    ``start_offset_s``, ``mean_anomaly0`` and ``raan`` are ``[n]``. Solar energy is the mean
    of ``substeps`` midpoint samples per step (the Sun crosses 7.8 deg of sky in ten minutes):
    the track's spacing must divide ``step_seconds / (2 * substeps)`` so that step starts,
    midpoints and those samples all fall on it, and so must the offsets.

    Raises:
        ValueError: if a time falls off the track's grid or past its end.

    """
    spacing = track.spacing_s
    ratio = step_seconds / (2 * substeps) / spacing
    offset_index = np.asarray(start_offset_s, dtype=np.float64) / spacing
    if abs(ratio - round(ratio)) > 1e-9 or np.any(
        np.abs(offset_index - np.round(offset_index)) > 1e-6
    ):
        raise ValueError(
            f"the track's spacing {spacing} s must divide step_seconds / (2 * substeps) and "
            "every start offset"
        )
    per_sub = int(round(ratio))
    base = np.round(offset_index).astype(np.int64)[:, None]
    fine = base + per_sub * (2 * np.arange(steps * substeps) + 1)[None, :]
    edge = base + per_sub * 2 * substeps * np.arange(steps + 1)[None, :]
    mid = base + per_sub * (2 * substeps * np.arange(steps) + substeps)[None, :]
    if edge.max() >= len(track.solar_scale):
        raise ValueError(
            f"an episode of {steps} steps starting {float(np.max(start_offset_s)):.0f} s in "
            f"runs past the track's {(len(track.solar_scale) - 1) * spacing:.0f} s"
        )
    n = base.shape[0]
    node, ahead, normal = _orbit_basis(np.asarray(raan, dtype=np.float64)[:, None])
    frame_t = np.stack([node[:, 0], ahead[:, 0], normal[:, 0]], axis=-1)  # [n, 3, 3]
    anomaly = np.asarray(mean_anomaly0, dtype=np.float64)[:, None]
    cos_lat, sin_lat = np.cos(np.radians(site_deg[0])), np.sin(np.radians(site_deg[0]))
    lon = np.radians(site_deg[1])
    e, a = PHOBOS_ORBIT.eccentricity, PHOBOS_ORBIT.semi_major_axis_km

    def phase(index: np.ndarray) -> tuple[np.ndarray, ...]:
        # The closed forms of site_up and phobos_positions, as the coefficients that multiply
        # a direction's components along (node, ahead, normal).
        mean = anomaly + _mean_motion() * ((index - base) * spacing)
        theta = mean + lon
        true = mean + 2.0 * e * np.sin(mean) + 1.25 * e * e * np.sin(2.0 * mean)
        radius = a * (1.0 - e * e) / (1.0 + e * np.cos(true))
        return (
            -cos_lat * np.cos(theta),
            -cos_lat * np.sin(theta),
            radius * np.cos(true),
            radius * np.sin(true),
            radius,
        )

    def sky(
        directions: np.ndarray, index: np.ndarray, terms: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sine of the elevation at the site, and whether Mars hides the direction."""
        up_node, up_ahead, r_node, r_ahead, radius = terms
        proj = directions[index] @ frame_t  # [n, K, 3]: along node, ahead, normal
        p0, p1 = proj[..., 0], proj[..., 1]
        sin_elevation = up_node * p0 + up_ahead * p1 + sin_lat * proj[..., 2]
        # The cylinder test of geometry.ray_blocked from Phobos's centre: the lander sits
        # 11 km off it, a few seconds of shadow timing.
        along = r_node * p0 + r_ahead * p1
        hidden = (along < 0.0) & (radius * radius - along * along < MARS_RADIUS_KM**2)
        return sin_elevation, hidden

    fine_terms, edge_terms, mid_terms = phase(fine), phase(edge), phase(mid)
    sin_sun, shadow = sky(track.sun, fine, fine_terms)
    power = np.where(shadow, 0.0, np.maximum(sin_sun, 0.0) * track.solar_scale[fine])
    sin_sun_edge, _ = sky(track.sun, edge, edge_terms)
    sin_earth_edge, _ = sky(track.earth, edge, edge_terms)
    sin_earth, earth_hidden = sky(track.earth, mid, mid_terms)
    earth_up = sin_earth >= np.sin(np.radians(earth_mask_deg))
    earth_visible = earth_up & ~earth_hidden
    sees_mars = track.station_sees_mars[mid]
    sun_elevation = np.degrees(np.arcsin(np.clip(sin_sun_edge, -1.0, 1.0)))
    earth_elevation = np.degrees(np.arcsin(np.clip(sin_earth_edge, -1.0, 1.0)))
    return SurfaceTables(
        sun_elevation_deg=sun_elevation,
        earth_elevation_deg=earth_elevation,
        solar_fraction=power.reshape(n, steps, substeps).mean(axis=2),
        eclipsed=shadow.reshape(n, steps, substeps).mean(axis=2),
        earth_visible=earth_visible,
        station_sees_mars=sees_mars,
        contact=earth_visible & sees_mars.any(axis=-1) & track.clear_of_sun[mid],
        light_time_s=track.light_time_s[mid],
    )


def sun_earth_mars_angle_deg(earth_from_mars: np.ndarray, sun_from_mars: np.ndarray) -> np.ndarray:
    """Angle between the Sun and Mars in Earth's sky (small near solar conjunction)."""
    mars_from_earth = geometry.unit(-earth_from_mars)
    sun_from_earth = geometry.unit(sun_from_mars - earth_from_mars)
    cosine = np.clip(geometry.dot(mars_from_earth, sun_from_earth), -1.0, 1.0)
    return np.degrees(np.arccos(cosine))


def synodic_day_s() -> float:
    """Length of a Phobos solar day in this model: the orbit against Mars's mean motion."""
    mars_year_s = 686.98 * 86400.0
    return 1.0 / (1.0 / PHOBOS_ORBIT.period_s - 1.0 / mars_year_s)


def _mean_motion() -> float:
    return 2.0 * np.pi / PHOBOS_ORBIT.period_s


def _mean_angle(seconds: np.ndarray, mean_anomaly0: np.ndarray) -> np.ndarray:
    return np.asarray(mean_anomaly0) + _mean_motion() * np.asarray(seconds)


def _orbit_basis(raan: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ascending node, the direction 90 deg ahead of it in the orbit, and the orbit normal."""
    raan = np.asarray(raan, dtype=np.float64)
    inc = np.radians(PHOBOS_ORBIT.inclination_deg)
    cos_o, sin_o = np.cos(raan), np.sin(raan)
    node = np.stack([cos_o, sin_o, 0.0 * raan], axis=-1)
    # normal x node, written out (numpy's cross costs more than the rest of the basis).
    ahead = np.stack([-np.cos(inc) * sin_o, np.cos(inc) * cos_o, np.sin(inc) + 0.0 * raan], -1)
    return node, ahead, orbit_normal(PHOBOS_ORBIT.inclination_deg, raan)


Basis = tuple[np.ndarray, np.ndarray, np.ndarray]


def _up(lat_deg: float, lon_deg: float, mean: np.ndarray, basis: Basis) -> np.ndarray:
    node, ahead, normal = basis
    lat = np.radians(lat_deg)
    theta = mean + np.radians(lon_deg)
    cos_t, sin_t = np.cos(theta)[..., None], np.sin(theta)[..., None]
    return -np.cos(lat) * (cos_t * node + sin_t * ahead) + np.sin(lat) * normal


def _position(mean: np.ndarray, basis: Basis) -> np.ndarray:
    e, a = PHOBOS_ORBIT.eccentricity, PHOBOS_ORBIT.semi_major_axis_km
    true = mean + 2.0 * e * np.sin(mean) + 1.25 * e * e * np.sin(2.0 * mean)
    radius = a * (1.0 - e * e) / (1.0 + e * np.cos(true))
    node, ahead, _ = basis
    return radius[..., None] * (np.cos(true)[..., None] * node + np.sin(true)[..., None] * ahead)
