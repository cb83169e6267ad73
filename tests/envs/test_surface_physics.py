"""Surface physics of a lander on Phobos, checked against closed forms and independent routes.

The tables the sampling task steps through (``surface_tables``) use closed-form projections;
the checks below recompute the same quantities with the vector functions (``site_up``,
``phobos_positions``, ``geometry.ray_blocked``), with Kepler's equation, with spherical
trigonometry, or with astropy, and say in each docstring where the expected value comes from.
"""

from __future__ import annotations

import numpy as np
import pytest

from phobos.envs import make
from phobos.envs.physics import geometry, surface
from phobos.envs.physics.constants import GROUND_STATIONS, MARS_RADIUS_KM, SPEED_OF_LIGHT_KM_S
from phobos.envs.physics.ephemeris import ephemeris_table
from phobos.envs.physics.orbits import PHOBOS_ORBIT, kepler_positions
from phobos.envs.sampling.config import SamplingConfig
from phobos.envs.sampling.plan import track_for

START = "2013-02-01T00:00:00"
EQUINOX = "2013-06-18T00:00:00"
"""Mars's northern spring equinox of 2013: the Sun and Earth lie near Phobos's orbit plane."""
DAYS = 5.0
SPACING_S = 30.0
SITE = surface.PHOBOS_GRUNT_SITE_DEG
SIDEREAL_PERIOD_H = 7.654
"""Phobos's observed orbital period (MISSION_FACTS)."""
MARS_YEAR_D = 686.98


@pytest.fixture(scope="module")
def table():
    return ephemeris_table(START, DAYS + 0.5)


def _track(table):
    stations = [GROUND_STATIONS[k] for k in ("bear_lakes", "ussuriysk", "miyun")]
    return surface.sky_track(
        table,
        DAYS * 86400.0,
        SPACING_S,
        station_lat_deg=np.array([s.lat_deg for s in stations]),
        station_lon_deg=np.array([s.lon_deg for s in stations]),
        station_mask_deg=10.0,
        conjunction_deg=2.0,
    )


@pytest.fixture(scope="module")
def track(table):
    return _track(table)


@pytest.fixture(scope="module")
def equinox_track():
    return _track(ephemeris_table(EQUINOX, DAYS + 0.5))


def fine_tables(track, site=SITE, days=12, anomaly=0.7, raan=2.1, earth_mask_deg=0.0):
    """One-minute steps (two track samples) over ``days`` whole Phobos solar days, so that
    shares of the day come out unbiased by a partial day."""
    return surface.surface_tables(
        track,
        np.array([0.0]),
        steps=round(days * surface.synodic_day_s() / 60.0),
        step_seconds=60.0,
        substeps=1,
        site_deg=site,
        mean_anomaly0=np.array([anomaly]),
        raan=np.array([raan]),
        earth_mask_deg=earth_mask_deg,
    )


def test_phobos_day_from_the_suns_elevation_at_the_site_is_7_65_hours(track):
    """Phobos is tidally locked, so its solar day is the orbit seen from the Sun: with the
    observed 7.654 h orbit and Mars's 686.98-day year, 1 / (1/7.654 h - 1/year) = 7.6575 h.
    The Sun's rises at the site, over four days, must repeat at that period within 0.1%
    (the model's orbit comes from Kepler's law with the tabulated GM, 7.657 h, 0.04% longer)."""
    tables = fine_tables(track)
    elevation = tables.sun_elevation_deg[0]
    minutes = np.arange(len(elevation), dtype=float)
    rises = np.flatnonzero((elevation[:-1] < 0.0) & (elevation[1:] >= 0.0))
    # Interpolate the crossing inside the minute for sub-minute timing.
    crossing = minutes[rises] + elevation[rises] / (elevation[rises] - elevation[rises + 1])
    assert len(crossing) >= 12
    day_h = (crossing[-1] - crossing[0]) / (len(crossing) - 1) / 60.0
    expected_h = 1.0 / (1.0 / SIDEREAL_PERIOD_H - 1.0 / (MARS_YEAR_D * 24.0))
    assert day_h == pytest.approx(expected_h, rel=1e-3)
    assert day_h == pytest.approx(7.65, rel=2e-3)
    assert day_h * 3600.0 == pytest.approx(surface.synodic_day_s(), rel=2e-4)


def test_tables_agree_with_the_vector_functions(table, track):
    """The tables' closed-form projections equal the elevations computed from the vectors
    ``site_up`` returns, and the eclipse flags equal ``geometry.ray_blocked`` from Phobos."""
    tables = fine_tables(track, site=(12.0, 40.0), days=3)
    seconds = np.arange(tables.sun_elevation_deg.shape[1]) * 60.0
    up = surface.site_up(12.0, 40.0, seconds, 0.7, 2.1)
    sample = table.sample(seconds)
    sun = geometry.unit(sample["sun_from_mars"])
    np.testing.assert_allclose(
        tables.sun_elevation_deg[0], surface.elevation_deg(up, sun), atol=1e-6
    )
    mid = seconds[:-1] + 30.0
    phobos = surface.phobos_positions(mid, 0.7, 2.1)
    shadow = geometry.ray_blocked(phobos, geometry.unit(table.sample(mid)["sun_from_mars"]), 3396.0)
    np.testing.assert_array_equal(tables.eclipsed[0] > 0.5, shadow)


def test_phobos_positions_series_matches_keplers_equation():
    """The equation of the centre to second order in e = 0.0151 must place Phobos within
    50 m of the Kepler solution (the third-order term is about e^3 a = 32 m)."""
    seconds = np.linspace(0.0, 3.0 * PHOBOS_ORBIT.period_s, 2000)
    series = surface.phobos_positions(seconds, 0.3, 1.2)
    kepler = kepler_positions(PHOBOS_ORBIT, seconds, 0.3, 1.2, 0.0)
    assert geometry.norm(series - kepler).max() < 0.05


def test_body_frame_points_at_mars_and_up_is_the_site_direction():
    """The mean body frame's x axis points at Mars within the optical libration 2e (1.73 deg),
    and ``site_up`` is the site's unit vector written in that frame."""
    seconds = np.linspace(0.0, PHOBOS_ORBIT.period_s, 500)
    x, y, z = surface.phobos_frame(seconds, 0.3, 1.2)
    to_mars = -geometry.unit(surface.phobos_positions(seconds, 0.3, 1.2))
    libration = np.degrees(np.arccos(np.clip(geometry.dot(x, to_mars), -1.0, 1.0)))
    assert libration.max() < 1.75 and libration.max() > 1.5
    lat, lon = np.radians(7.0), np.radians(232.5)
    expected = np.cos(lat) * np.cos(lon) * x + np.cos(lat) * np.sin(lon) * y + np.sin(lat) * z
    np.testing.assert_allclose(surface.site_up(7.0, 232.5, seconds, 0.3, 1.2), expected, atol=1e-12)
    # East longitude 90 deg is the trailing apex: opposite the orbital velocity.
    velocity = np.gradient(surface.phobos_positions(seconds, 0.3, 1.2), axis=0)
    trailing = surface.site_up(0.0, 90.0, seconds, 0.3, 1.2)
    assert np.all(geometry.dot(geometry.unit(velocity), trailing) < -0.99)


def test_energy_balance_over_a_day_battery_change_is_solar_minus_loads(table):
    """Over one Phobos day of waiting, the battery (too large to clip) changes by the solar
    energy minus the base load. The solar energy the tables integrate with four samples a
    step must match an independent one-second integration of the panel's output (sine of
    the Sun's elevation, inverse-square distance, Mars's shadow) within 0.5%; and a sunny
    day must pay for the always-on load, or the lander could not survive by waiting."""
    env = make(
        "phobos-sampling-v0",
        lander={"battery_wh": 1.0e6, "start_battery": [0.5, 0.5]},
        horizon_steps=46,  # 46 ten-minute steps: one 7.66 h day
    )
    env.reset(seed=4)
    config, sky = env.config, env.sky
    start_wh = env._lander.battery_wh
    while env.agents:
        env.step({"phobos_grunt": 0, "science_team": 0})
    hours = config.horizon_steps * config.step_seconds / 3600.0
    solar_wh = float(sky.solar_wh.sum())
    loads_wh = config.lander.base_load_w * hours
    assert env._lander.battery_wh - start_wh == pytest.approx(solar_wh - loads_wh, abs=1e-6)

    seconds = np.arange(0.0, config.horizon_steps * config.step_seconds, 1.0) + 0.5
    eph = ephemeris_table(config.start, 31.0).sample(sky.start_offset_s + seconds)
    up = surface.site_up(
        config.site_lat_deg, config.site_lon_deg, seconds, sky.mean_anomaly0, sky.raan
    )
    sun_distance = geometry.norm(eph["sun_from_mars"])
    sun = eph["sun_from_mars"] / sun_distance[:, None]
    lit = ~geometry.ray_blocked(
        surface.phobos_positions(seconds, sky.mean_anomaly0, sky.raan), sun, MARS_RADIUS_KM
    )
    scale = (1.523679 * 149_597_870.7 / sun_distance) ** 2
    power_w = config.lander.solar_peak_w * np.maximum(geometry.dot(up, sun), 0.0) * scale * lit
    assert solar_wh == pytest.approx(power_w.sum() / 3600.0, rel=5e-3)
    assert solar_wh > loads_wh


def test_earth_above_the_horizon_for_the_spherical_triangle_fraction_of_the_day(track, table):
    """Earth's direction barely moves over four days, so in Phobos's frame it keeps a
    declination d = asin(earth . orbit normal) while the site turns under it; Earth is above
    elevation e for the share arccos((sin e - sin lat sin d) / (cos lat cos d)) / pi of the
    day. At the landing site (latitude 0) with the lander's 5 deg mask that is a little
    under half; at latitude 50 deg it depends on the sign of d."""
    from phobos.envs.physics.orbits import orbit_normal

    normal = orbit_normal(PHOBOS_ORBIT.inclination_deg, np.array(2.1))
    declination = np.arcsin(geometry.dot(track.earth[: int(4 * 86400 / SPACING_S)], normal))
    d = float(declination.mean())
    for site, mask_deg in ((SITE, 5.0), ((50.0, 232.5), 0.0)):
        tables = fine_tables(track, site=site, earth_mask_deg=mask_deg)
        lat, e = np.radians(site[0]), np.radians(mask_deg)
        cos_h = (np.sin(e) - np.sin(lat) * np.sin(d)) / (np.cos(lat) * np.cos(d))
        expected = np.arccos(np.clip(cos_h, -1.0, 1.0)) / np.pi
        assert tables.earth_visible.mean() == pytest.approx(expected, abs=0.01)


def test_mars_never_rises_at_the_landing_site_but_hides_earth_from_the_sub_mars_point(
    equinox_track,
):
    """Seen from Phobos, Mars is a disk of angular radius asin(3396 / 9376) = 21.2 deg fixed
    near the sub-Mars point's zenith. At the planned site 127.5 deg away it never clears the
    horizon, so it never hides Earth. At the sub-Mars point it eclipses Earth whenever Earth's
    angular distance from Mars's centre is under that radius: for an Earth declination d from
    Phobos's orbit plane, a share arccos(cos 21.2 deg / cos d) / pi of the day (checked near
    Mars's 2013 equinox, when d is small; in February Earth stands too far south)."""
    seconds = np.linspace(0.0, 2.0 * 86400.0, 5000)
    position, up = surface.lander_positions(*SITE, seconds, 0.7, 2.1)
    mars = surface.mars_elevation_deg(position, up)
    assert mars.max() + 21.3 < 0.0

    tables = fine_tables(equinox_track, site=(0.0, 0.0))
    from phobos.envs.physics.orbits import orbit_normal

    normal = orbit_normal(PHOBOS_ORBIT.inclination_deg, np.array(2.1))
    earth = equinox_track.earth[: int(4 * 86400 / SPACING_S)]
    d = float(np.arcsin(geometry.dot(earth, normal)).mean())
    radius = np.arcsin(MARS_RADIUS_KM / PHOBOS_ORBIT.semi_major_axis_km)
    hidden_share = np.arccos(np.cos(radius) / np.cos(d)) / np.pi
    earth_up = tables.earth_elevation_deg[0, :-1] >= 0.0
    hidden = earth_up & ~tables.earth_visible[0]
    assert hidden.mean() == pytest.approx(hidden_share, rel=0.03)


def test_eclipses_fall_at_noon_below_mars_and_at_night_on_the_far_side(track, equinox_track):
    """Mars eclipses the Sun for Phobos when Phobos passes behind it, which is when the Sun
    stands over Mars in Phobos's sky: local noon at the sub-Mars point, deep night at the
    planned far-side site. Phobos crosses the shadow cylinder (radius 3396 km at 9376 km,
    an angle r = 21.2 deg) for the share arccos(cos r / cos d) / pi of its day, d being the
    Sun's declination from the orbit plane: up to 54 min near Mars's equinox, none in
    February 2013, near its southern solstice, when d exceeds r."""
    from phobos.envs.physics.orbits import orbit_normal

    normal = orbit_normal(PHOBOS_ORBIT.inclination_deg, np.array(2.1))
    near = fine_tables(equinox_track, site=(0.0, 0.0), days=6)
    far = fine_tables(equinox_track, site=SITE, days=6)
    eclipsed = near.eclipsed[0] > 0.5
    runs = np.diff(np.concatenate([[0], eclipsed.astype(int), [0]]))
    minutes = np.flatnonzero(runs == -1) - np.flatnonzero(runs == 1)
    sun = equinox_track.sun[: len(eclipsed) * 2]
    d = float(np.arcsin(geometry.dot(sun, normal)).mean())
    radius = np.arcsin(MARS_RADIUS_KM / PHOBOS_ORBIT.semi_major_axis_km)
    expected = np.arccos(np.cos(radius) / np.cos(d)) / np.pi * surface.synodic_day_s() / 60.0
    assert len(minutes) == 6
    np.testing.assert_allclose(minutes, expected, atol=2.0)
    assert near.sun_elevation_deg[0, :-1][eclipsed].min() > 45.0
    assert far.sun_elevation_deg[0, :-1][eclipsed].max() < 90.0 - 127.5 + 21.3  # night
    assert np.all(near.solar_fraction[0][eclipsed] == 0.0)
    assert not fine_tables(track, site=(0.0, 0.0), days=6).eclipsed.any()


def test_light_time_matches_the_ephemeris_and_astropy():
    """The tables' light time is the Earth-Mars distance over c at mid-step; astropy's built-in
    ephemeris at the same instants must agree to well under a second (February 2013 is two
    months before the solar conjunction: about 19-21 minutes)."""
    from astropy import units as u
    from astropy.coordinates import get_body_barycentric
    from astropy.time import Time, TimeDelta
    from astropy.utils import iers

    iers.conf.auto_download = False
    env = make("phobos-sampling-v0")
    env.reset(seed=9)
    sky, config = env.sky, env.config
    steps = np.array([0, 40, 95])
    mid_s = sky.start_offset_s + (steps + 0.5) * config.step_seconds
    times = Time(config.start, scale="utc") + TimeDelta(mid_s, format="sec")
    earth = get_body_barycentric("earth", times, ephemeris="builtin")
    mars = get_body_barycentric("mars", times, ephemeris="builtin")
    direct = (earth - mars).norm().to_value(u.km) / SPEED_OF_LIGHT_KM_S
    np.testing.assert_allclose(sky.surface.light_time_s[steps], direct, atol=0.5)
    light = sky.surface.light_time_s
    assert np.all((light > 18 * 60.0) & (light < 22.5 * 60.0))
    np.testing.assert_array_equal(sky.link_delay_s[:, 0, 1], light)


def test_contact_needs_earth_in_view_and_a_station_seeing_mars():
    """A link exists only while Earth is above the lander's antenna mask and not behind Mars,
    some station sees Mars, and the Sun is clear of Mars in Earth's sky."""
    env = make("phobos-sampling-v0")
    for seed in range(3):
        env.reset(seed=seed)
        tables = env.sky.surface
        expected = tables.earth_visible & tables.station_sees_mars.any(axis=1)
        np.testing.assert_array_equal(tables.contact, expected)
        assert 0.05 < tables.contact.mean() < 0.8
        np.testing.assert_array_equal(env.sky.link_open[:, 0, 1], tables.contact)


def test_solar_conjunction_blocks_every_contact():
    """On 18 April 2013 the Sun stood within a degree of Mars seen from Earth (solar
    conjunction): with a 2 deg exclusion no contact exists that day."""
    config = SamplingConfig(start="2013-04-18T00:00:00", start_window_days=0.0)
    track = track_for(config)
    env = make("phobos-sampling-v0", config)
    env.reset(seed=0)
    assert not env.sky.surface.contact.any()
    assert not track.clear_of_sun.any()
