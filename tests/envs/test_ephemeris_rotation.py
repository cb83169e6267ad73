"""The Earth rotation angle on coarse ephemeris grids: unwrapping aliases, the rate does not.

The angle turns 1.0027 revolutions a day, so on a 12 h grid it advances just over half a turn
per sample and ``np.unwrap`` takes each step as just under half a turn backwards. Station
elevations interpolated from that column are wrong by tens of degrees between samples.
"""

from __future__ import annotations

import numpy as np
import pytest

from phobos.envs.physics import geometry
from phobos.envs.physics.constants import GROUND_STATIONS
from phobos.envs.physics.ephemeris import compute_table, ephemeris_table

START = "2013-01-10T00:00:00"
SECONDS = np.array([3.0, 7.5, 16.0, 29.0, 40.25, 55.0, 64.5]) * 3600.0
"""Times between the samples of a 12 h grid (and a few on them)."""


def _astropy_elevation(station: str, seconds: np.ndarray) -> np.ndarray:
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    site = GROUND_STATIONS[station]
    location = EarthLocation.from_geodetic(
        site.lon_deg * u.deg, site.lat_deg * u.deg, site.height_m * u.m
    )
    times = Time(START, scale="utc") + seconds * u.s
    altaz = get_body("mars", times, ephemeris="builtin").transform_to(
        AltAz(obstime=times, location=location, pressure=0.0 * u.hPa)
    )
    return altaz.alt.deg


def _elevation(station: str, mars_cirs: np.ndarray, era: np.ndarray) -> np.ndarray:
    site = GROUND_STATIONS[station]
    return geometry.station_elevation_deg(
        np.array([site.lat_deg]), np.array([site.lon_deg]), mars_cirs, era
    )[:, 0]


@pytest.fixture(scope="module")
def coarse():
    return compute_table(START, 3.0, grid_hours=12.0)


@pytest.mark.parametrize("station", ["bear_lakes", "miyun"])
def test_rate_built_angle_matches_astropy_on_a_12_hour_grid(coarse, station):
    want = _astropy_elevation(station, SECONDS)
    sample = coarse.sample(SECONDS, rotation="rate")
    got = _elevation(station, sample["mars_cirs"], sample["earth_rotation_angle"])
    np.testing.assert_allclose(got, want, atol=0.1)
    # The old way, the unwrapped column interpolated, aliases: elevations off by degrees.
    grid = np.arange(len(coarse.earth_rotation_angle)) * coarse.grid_seconds
    aliased = np.interp(SECONDS, grid, coarse.earth_rotation_angle)
    wrong = _elevation(station, sample["mars_cirs"], aliased)
    assert np.abs(wrong - want).max() > 10.0


def test_table_path_refuses_a_12_hour_grid_and_names_the_fix(coarse):
    with pytest.raises(ValueError, match="rotation='rate'"):
        coarse.sample(SECONDS)
    with pytest.raises(ValueError, match="'table' or 'rate'"):
        coarse.sample(SECONDS, rotation="exact")


def test_rate_and_table_agree_on_the_3_hour_grid_the_tasks_use():
    table = ephemeris_table(START, 3.0)
    seconds = np.linspace(0.0, 2.5 * 86400.0, 97)
    table_era = table.sample(seconds)["earth_rotation_angle"]
    rate_era = table.sample(seconds, rotation="rate")["earth_rotation_angle"]
    np.testing.assert_allclose(rate_era, table_era, atol=1e-6)
    for station in ("bear_lakes", "ussuriysk"):
        want = _astropy_elevation(station, seconds[::8])
        sample = table.sample(seconds[::8], rotation="rate")
        got = _elevation(station, sample["mars_cirs"], sample["earth_rotation_angle"])
        np.testing.assert_allclose(got, want, atol=0.1)
