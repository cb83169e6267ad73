"""Visibility around Mars: occultation by the planet, eclipses, stations, radio occultation.

All functions are numpy, vectorised over any leading axes; vectors are ``[..., 3]`` in km in
the Mars equatorial frame unless a docstring says otherwise.
"""

from __future__ import annotations

import numpy as np

from phobos.envs.physics.constants import MARS_RADIUS_KM, SPEED_OF_LIGHT_KM_S


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product along the last axis (einsum: reductions over a length-3 axis are slow)."""
    return np.einsum("...i,...i->...", a, b)


def norm(vectors: np.ndarray) -> np.ndarray:
    """Length along the last axis."""
    return np.sqrt(dot(vectors, vectors))


def unit(vectors: np.ndarray) -> np.ndarray:
    """Vectors scaled to length one along the last axis."""
    return vectors / norm(vectors)[..., None]


def ray_blocked(origin: np.ndarray, direction: np.ndarray, radius: float) -> np.ndarray:
    """Whether the ray from ``origin`` along unit ``direction`` hits a sphere at the origin.

    With ``direction`` towards the Sun this is the cylindrical-shadow eclipse test; towards
    Earth (effectively at infinity) it says whether Mars hides a spacecraft from Earth.
    """
    along = dot(origin, np.broadcast_to(direction, origin.shape))
    perpendicular_sq = dot(origin, origin) - along * along
    return (along < 0.0) & (perpendicular_sq < radius * radius)


def segment_closest_point(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Point of the segment ``start``-``end`` closest to Mars's centre."""
    chord = end - start
    t = -dot(start, chord) / np.maximum(dot(chord, chord), 1e-12)
    return start + np.clip(t, 0.0, 1.0)[..., None] * chord


def segment_clear(start: np.ndarray, end: np.ndarray, radius: float) -> np.ndarray:
    """Whether the straight line between two points misses a sphere of ``radius`` at Mars."""
    return norm(segment_closest_point(start, end)) > radius


def light_time_s(distance_km: np.ndarray) -> np.ndarray:
    """One-way light time for a distance."""
    return np.asarray(distance_km) / SPEED_OF_LIGHT_KM_S


def station_elevation_deg(
    lat_deg: np.ndarray,
    lon_deg: np.ndarray,
    mars_cirs: np.ndarray,
    earth_rotation_angle: np.ndarray,
) -> np.ndarray:
    """Elevation of Mars above a station's horizon, degrees.

    Uses Mars's apparent geocentric direction in CIRS and the Earth rotation angle (the
    CIO-based hour angle), so it agrees with astropy's AltAz without refraction to well under
    0.1 deg: polar motion (under 1 arcsec) and topocentric parallax (under 0.01 deg at Mars's
    distance) are the only terms left out. Broadcasting: station arrays ``[S]`` against time
    arrays ``[..., 1]`` give ``[..., S]``.
    """
    direction = unit(mars_cirs)
    ra = np.arctan2(direction[..., 1], direction[..., 0])[..., None]
    dec = np.arcsin(np.clip(direction[..., 2], -1.0, 1.0))[..., None]
    hour_angle = earth_rotation_angle[..., None] + np.radians(lon_deg) - ra
    lat = np.radians(lat_deg)
    sin_elevation = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(hour_angle)
    return np.degrees(np.arcsin(np.clip(sin_elevation, -1.0, 1.0)))


def occultation_tangent(
    transmitter: np.ndarray, receiver: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tangent altitude (km, negative when Mars blocks the ray) and tangent-point direction.

    The radio ray between the two spacecraft sounds the atmosphere at its closest approach to
    Mars; when that point lies at an end of the segment the ray grazes nothing and the
    altitude returned is the end point's own.
    """
    closest = segment_closest_point(transmitter, receiver)
    distance = norm(closest)
    return distance - MARS_RADIUS_KM, closest / np.maximum(distance, 1e-9)[..., None]
