"""Physical constants and mission facts, with their sources (see shared MISSION_FACTS.md).

Values that sources disagree on, or that no public source gives, are parameters of the
spacecraft and task configurations instead; this module holds only settled numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPEED_OF_LIGHT_KM_S = 299_792.458
AU_KM = 149_597_870.7

MARS_GM_KM3_S2 = 42_828.0
"""Mars gravitational parameter (MISSION_FACTS: 42,828 km^3/s^2)."""
MARS_RADIUS_KM = 3_396.0
"""Mars equatorial radius (MISSION_FACTS)."""
MARS_SIDEREAL_DAY_S = 24.6229 * 3600.0
MARS_MEAN_SUN_DISTANCE_KM = 1.523679 * AU_KM
"""Mars's mean distance from the Sun: solar panel ratings below are quoted at it."""

# IAU WGCCRE 2009 rotation model of Mars (Archinal et al. 2011, Celest. Mech. Dyn. Astr. 109):
# pole right ascension and declination in ICRF at J2000. The secular drift (-0.1061 and
# -0.0609 deg per century) is below 0.02 deg over the mission and is left out.
MARS_POLE_RA_DEG = 317.68143
MARS_POLE_DEC_DEG = 52.88650

PHOBOS_SEMI_MAJOR_AXIS_KM = 9_376.0
PHOBOS_ECCENTRICITY = 0.0151
PHOBOS_INCLINATION_DEG = 1.08
"""Phobos orbit (MISSION_FACTS), inclination to the Mars equator."""

IONOSPHERE_BOTTOM_KM = 80.0
IONOSPHERE_TOP_KM = 400.0
"""Altitude band that a satellite-to-satellite occultation sounds (Mars's dayside ionosphere
peaks near 130-140 km; the band reaches the topside). A ray whose tangent altitude sweeps
through this band during a step makes a usable occultation."""

OCCULTATION_RARE_SZA_DEG = (43.0, 138.0)
"""Solar zenith angles below the first or above the second are unreachable from Earth-based
occultation (Sun Yueqiang et al., Chinese Journal of Space Science 29(5), 2009)."""


@dataclass(frozen=True)
class GroundStation:
    """A deep-space ground station (WGS84 coordinates, MISSION_FACTS table).

    Attributes:
        key: Short id used in agent ids (``ground_<key>``).
        name: Human name.
        antenna_m: Dish diameter in metres.
        lat_deg: Geodetic latitude.
        lon_deg: East longitude.
        height_m: Height above the ellipsoid (0 where the source gives none).

    """

    key: str
    name: str
    antenna_m: float
    lat_deg: float
    lon_deg: float
    height_m: float = 0.0


GROUND_STATIONS: dict[str, GroundStation] = {
    s.key: s
    for s in (
        GroundStation("bear_lakes", "Medvezhi Ozera (Bear Lakes)", 64.0, 55.868, 37.952, 200.0),
        GroundStation("ussuriysk", "Ussuriysk", 70.0, 44.016, 131.757, 155.0),
        GroundStation("yevpatoria", "Yevpatoria", 70.0, 45.189, 33.187),
        GroundStation("sheshan", "Shanghai Sheshan", 25.0, 31.099, 121.200),
        GroundStation("miyun", "Beijing Miyun", 50.0, 40.558, 116.976),
        GroundStation("kunming", "Kunming", 40.0, 25.027, 102.796, 1974.0),
        GroundStation("urumqi", "Urumqi", 25.0, 43.472, 87.178),
        GroundStation("jiamusi", "Jiamusi (after 2011)", 66.0, 46.494, 130.771),
        GroundStation("kashi", "Kashi (after 2011)", 35.0, 38.421, 76.714),
    )
}


def mars_equator_rotation() -> np.ndarray:
    """Rotation matrix taking ICRF vectors into the Mars equatorial frame.

    The frame's z axis is Mars's north pole and its x axis the ascending node of Mars's
    equator on the ICRF equator (the IAU convention for planetary frames).
    """
    ra, dec = np.radians(MARS_POLE_RA_DEG), np.radians(MARS_POLE_DEC_DEG)
    z = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])
