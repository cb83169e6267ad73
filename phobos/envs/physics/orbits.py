"""Keplerian orbits around Mars, vectorised over time and over environments.

Positions are in the Mars equatorial frame (see ``constants.mars_equator_rotation``), in km.
Every function broadcasts: elements of shape ``[envs, 1]`` against times ``[1, steps]`` give
positions ``[envs, steps, 3]``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from phobos.envs.physics.constants import (
    MARS_GM_KM3_S2,
    MARS_RADIUS_KM,
    PHOBOS_ECCENTRICITY,
    PHOBOS_INCLINATION_DEG,
    PHOBOS_SEMI_MAJOR_AXIS_KM,
)


@dataclass(frozen=True)
class OrbitShape:
    """Size, shape and tilt of an orbit; the angles that vary per episode are drawn separately.

    Attributes:
        semi_major_axis_km: Semi-major axis.
        eccentricity: Eccentricity, in [0, 1).
        inclination_deg: Inclination to the Mars equator.

    """

    semi_major_axis_km: float
    eccentricity: float
    inclination_deg: float

    @property
    def period_s(self) -> float:
        """Orbital period from Kepler's third law with Mars's GM."""
        return 2.0 * np.pi * np.sqrt(self.semi_major_axis_km**3 / MARS_GM_KM3_S2)


def solve_kepler(mean_anomaly: np.ndarray, eccentricity: float) -> np.ndarray:
    """Eccentric anomaly E with E - e sin E = M, to 1e-12 rad.

    Newton's method started from a tabulated solution: the table is solved once per
    eccentricity, so that each call needs two or three vectorised iterations, not ten.
    """
    m = np.mod(mean_anomaly, 2.0 * np.pi)
    e = float(eccentricity)
    grid, table = _kepler_table(e)
    anomaly = np.interp(m, grid, table)
    # In place, the same operations in the same order as
    # step = (anomaly - e * sin(anomaly) - m) / (1 - e * cos(anomaly)): identical bits, with
    # two scratch arrays instead of seven temporaries per iteration.
    step, scratch = np.empty_like(anomaly), np.empty_like(anomaly)
    for _ in range(8):
        np.sin(anomaly, out=scratch)
        scratch *= e
        np.subtract(anomaly, scratch, out=step)
        step -= m
        np.cos(anomaly, out=scratch)
        scratch *= e
        np.subtract(1.0, scratch, out=scratch)
        step /= scratch
        anomaly -= step
        if np.max(np.abs(step, out=scratch), initial=0.0) < 1e-12:
            break
    return anomaly


@functools.lru_cache(maxsize=8)
def _kepler_table(e: float) -> tuple[np.ndarray, np.ndarray]:
    # Tabulate M(E) on a grid of E, dense where M changes slowly (near periapsis for high e).
    anomaly = np.linspace(0.0, 2.0 * np.pi, 65537)
    return anomaly - e * np.sin(anomaly), anomaly


def orbit_normal(inclination_deg: float, raan: np.ndarray) -> np.ndarray:
    """Unit normal of orbits with this inclination and ascending node (radians), ``[..., 3]``."""
    inc = np.radians(inclination_deg)
    raan = np.asarray(raan, dtype=np.float64)
    return np.stack(
        [np.sin(inc) * np.sin(raan), -np.sin(inc) * np.cos(raan), np.cos(inc) + 0.0 * raan], axis=-1
    )


def kepler_positions(
    shape: OrbitShape,
    seconds: np.ndarray,
    mean_anomaly0: np.ndarray,
    raan: np.ndarray,
    arg_periapsis: np.ndarray,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Positions (km) at ``seconds`` for orbits with the given angles (radians) at time 0.

    ``out`` (a view ``[..., 3]`` of the broadcast shape, such as one craft's slot in a larger
    array) receives the positions instead of a new array.
    """
    a, e = shape.semi_major_axis_km, shape.eccentricity
    mean_motion = np.sqrt(MARS_GM_KM3_S2 / a**3)
    anomaly = solve_kepler(mean_anomaly0 + mean_motion * seconds, e)
    x_orb = a * (np.cos(anomaly) - e)
    y_orb = a * np.sqrt(1.0 - e * e) * np.sin(anomaly)
    inc = np.radians(shape.inclination_deg)
    cos_o, sin_o = np.cos(raan), np.sin(raan)
    cos_w, sin_w = np.cos(arg_periapsis), np.sin(arg_periapsis)
    cos_i, sin_i = np.cos(inc), np.sin(inc)
    # Perifocal to equatorial: R3(-raan) R1(-inc) R3(-argp), written out.
    px = cos_o * cos_w - sin_o * sin_w * cos_i
    py = sin_o * cos_w + cos_o * sin_w * cos_i
    pz = sin_w * sin_i
    qx = -cos_o * sin_w - sin_o * cos_w * cos_i
    qy = -sin_o * sin_w + cos_o * cos_w * cos_i
    qz = cos_w * sin_i
    if out is None:
        out = np.empty(np.broadcast(anomaly, px).shape + (3,))
    for axis, (p, q) in enumerate(((px, qx), (py, qy), (pz, qz))):
        np.multiply(p, x_orb, out=out[..., axis])
        out[..., axis] += q * y_orb
    return out


def quasi_synchronous_positions(
    host: np.ndarray,
    host_period_s: float,
    seconds: np.ndarray,
    radius_km: float,
    phase: np.ndarray,
    normal: np.ndarray | None = None,
) -> np.ndarray:
    """Positions of a craft in a quasi-synchronous (retrograde 2:1) orbit around a moon.

    Uses the Clohessy-Wiltshire relative ellipse about the moon's position ``host``
    (``[..., steps, 3]``): ``radius_km`` in the radial direction, twice that along track,
    one loop per orbit of the moon. Phobos's own gravity is neglected, as the
    Clohessy-Wiltshire model assumes; at 50-130 km it changes the shape, not the scale.
    The along-track direction is ``normal x radial`` when the moon's orbit normal
    (``[..., 1, 3]``) is given, else it is differenced from the samples.
    """
    radial = host / np.linalg.norm(host, axis=-1, keepdims=True)
    if normal is not None:
        ahead = np.cross(normal, radial)
    elif host.shape[-2] >= 2:
        ahead = np.gradient(host, axis=-2)
    else:
        raise ValueError("one host sample gives no direction of motion: pass the orbit normal")
    ahead -= np.sum(ahead * radial, axis=-1, keepdims=True) * radial
    ahead /= np.linalg.norm(ahead, axis=-1, keepdims=True)
    angle = 2.0 * np.pi * seconds / host_period_s + phase
    x = radius_km * np.cos(angle)[..., None]
    y = -2.0 * radius_km * np.sin(angle)[..., None]
    return host + x * radial + y * ahead


PHOBOS_ORBIT = OrbitShape(PHOBOS_SEMI_MAJOR_AXIS_KM, PHOBOS_ECCENTRICITY, PHOBOS_INCLINATION_DEG)
PHASING_ORBIT = OrbitShape(PHOBOS_SEMI_MAJOR_AXIS_KM + 500.0, 0.005, PHOBOS_INCLINATION_DEG)
"""Phobos-Grunt's near-circular orbit about 500 km above Phobos's (MISSION_FACTS: 8.3 h)."""
YINGHUO1_ORBIT = OrbitShape(
    MARS_RADIUS_KM + (800.0 + 80_000.0) / 2.0,
    (80_000.0 - 800.0) / (80_000.0 + 800.0 + 2.0 * MARS_RADIUS_KM),
    5.0,
)
"""Yinghuo-1's 800 x 80,000 km (altitudes) orbit inclined 5 deg: period 77.3 h."""
