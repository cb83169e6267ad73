"""Physics of the mission simulator checked against known values and independent computations.

Every expected value below comes from outside the code under test: published figures
(MISSION_FACTS), closed-form orbital mechanics, or astropy computing the same quantity by a
different route. The docstrings say why each expected value is what it is.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phobos.envs.orbit_scheduling.config import OrbitSchedulingConfig
from phobos.envs.orbit_scheduling.plan import (
    PHASING_ORBIT,
    PHOBOS_ORBIT,
    YINGHUO1_ORBIT,
    EpisodePlan,
    ephemeris_for,
    plan_episodes,
)
from phobos.envs.physics import geometry
from phobos.envs.physics.constants import (
    GROUND_STATIONS,
    IONOSPHERE_BOTTOM_KM,
    IONOSPHERE_TOP_KM,
    MARS_GM_KM3_S2,
    MARS_RADIUS_KM,
    SPEED_OF_LIGHT_KM_S,
)
from phobos.envs.physics.ephemeris import ephemeris_table, supported_range
from phobos.envs.physics.orbits import (
    OrbitShape,
    kepler_positions,
    quasi_synchronous_positions,
    solve_kepler,
)

R = MARS_RADIUS_KM
AU_KM = 149_597_870.7
MARS_OBLIQUITY_DEG = 25.19
"""Tilt of Mars's equator to its orbit: the Sun's latitude over Mars never exceeds it."""

LONG_TABLE_START = "2012-10-01T00:00:00"
LONG_TABLE_DAYS = 630.0
"""One table from after the planned arrival to June 2014: it spans a solar conjunction
(April 2013) and the closest approach of the 2014 opposition."""


def _offline_astropy() -> None:
    """Use the IERS table bundled with astropy; never reach the network."""
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None


def _plan(config: OrbitSchedulingConfig, seeds: range) -> EpisodePlan:
    config.validate()
    return plan_episodes(config, [np.random.default_rng(seed) for seed in seeds])


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [begin, end) index ranges where a 1-D boolean mask is set."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _eclipses(sunlit: np.ndarray, step_s: float) -> list[tuple[int, int, float]]:
    """(begin step, end step, seconds in shadow) for each eclipse of one craft in one episode."""
    return [
        (begin, end, float(np.sum(1.0 - sunlit[begin:end]) * step_s))
        for begin, end in _runs(sunlit < 1.0)
    ]


@pytest.fixture(scope="module")
def long_table():
    return ephemeris_table(LONG_TABLE_START, LONG_TABLE_DAYS)


@pytest.fixture(scope="module")
def default_window_plan() -> tuple[OrbitSchedulingConfig, EpisodePlan]:
    """Forty one-day episodes in the default Jan-Mar 2013 window (phasing orbit)."""
    config = OrbitSchedulingConfig()
    return config, _plan(config, range(40))


# --- 1. Periods from Kepler's third law -------------------------------------------------------


def test_phobos_period_from_keplers_third_law_matches_observed_period():
    """T = 2 pi sqrt(a^3 / GM): with GM = 42,828 km^3/s^2 and a = 9,376 km this gives
    7.657 h; Phobos's observed period is 7.654 h (MISSION_FACTS allows the 0.04% gap)."""
    period_h = PHOBOS_ORBIT.period_s / 3600.0
    assert period_h == pytest.approx(7.654, rel=1e-3)
    assert period_h == pytest.approx(7.657, abs=0.001)
    independent = 2.0 * np.pi * np.sqrt(9_376.0**3 / 42_828.0) / 3600.0
    assert period_h == pytest.approx(independent, rel=1e-12)


def test_phasing_orbit_500_km_above_phobos_has_an_8_3_hour_period():
    """MISSION_FACTS: a near-circular orbit ~500 km above Phobos's takes about 8.3 h
    (a = 9,876 km in Kepler's third law gives 8.28 h)."""
    assert PHASING_ORBIT.semi_major_axis_km == pytest.approx(9_376.0 + 500.0)
    assert PHASING_ORBIT.period_s / 3600.0 == pytest.approx(8.3, abs=0.05)


def test_yinghuo1_800_by_80000_km_altitude_orbit_has_a_77_3_hour_period():
    """Both figures are altitudes: periapsis radius 3,396 + 800 km, apoapsis 3,396 + 80,000 km,
    so a = 43,796 km and T = 77.3 h (MISSION_FACTS)."""
    periapsis = YINGHUO1_ORBIT.semi_major_axis_km * (1.0 - YINGHUO1_ORBIT.eccentricity)
    apoapsis = YINGHUO1_ORBIT.semi_major_axis_km * (1.0 + YINGHUO1_ORBIT.eccentricity)
    assert periapsis - R == pytest.approx(800.0)
    assert apoapsis - R == pytest.approx(80_000.0)
    assert YINGHUO1_ORBIT.period_s / 3600.0 == pytest.approx(77.3, abs=0.05)
    assert YINGHUO1_ORBIT.inclination_deg == 5.0


# --- 2. Kepler's equation ---------------------------------------------------------------------


def _kepler_residual(mean_anomaly: np.ndarray, eccentricity: float) -> np.ndarray:
    """|E - e sin E - M| wrapped to (-pi, pi]: E is returned for M reduced modulo 2 pi."""
    anomaly = solve_kepler(mean_anomaly, eccentricity)
    diff = anomaly - eccentricity * np.sin(anomaly) - mean_anomaly
    return np.abs(np.angle(np.exp(1j * diff)))


@pytest.mark.parametrize("eccentricity", [0.0, 0.0151, 0.3, 0.7, 0.9041921636679149, 0.95])
def test_solve_kepler_satisfies_keplers_equation_on_a_grid(eccentricity):
    """E - e sin E = M defines the eccentric anomaly; check it over many revolutions,
    including M = 0 and M = pi (periapsis and apoapsis, where E = M exactly)."""
    mean_anomaly = np.linspace(-20.0, 20.0, 40_001)
    assert np.max(_kepler_residual(mean_anomaly, eccentricity)) < 1e-10
    exact = solve_kepler(np.array([0.0, np.pi]), eccentricity)
    np.testing.assert_allclose(exact, [0.0, np.pi], atol=1e-12)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    mean_anomaly=st.floats(-1e3, 1e3, allow_nan=False),
    eccentricity=st.floats(0.0, 0.95),
)
def test_solve_kepler_satisfies_keplers_equation_for_any_sample(mean_anomaly, eccentricity):
    """Same identity on arbitrary (M, e) pairs, scalar inputs."""
    assert _kepler_residual(np.array([mean_anomaly]), eccentricity)[0] < 1e-10


# --- 3. Keplerian positions -------------------------------------------------------------------

ORBITS = {"phobos": PHOBOS_ORBIT, "phasing": PHASING_ORBIT, "yinghuo1": YINGHUO1_ORBIT}


def _random_angles(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    return tuple(rng.uniform(0.0, 2.0 * np.pi, size=(n, 1)) for _ in range(3))


@pytest.mark.parametrize("name", list(ORBITS))
def test_kepler_radius_stays_between_periapsis_and_apoapsis(name):
    """A Keplerian ellipse has r = a (1 - e cos E), so a (1 - e) <= r <= a (1 + e), with both
    ends reached once per orbit."""
    shape = ORBITS[name]
    rng = np.random.default_rng(1)
    seconds = np.linspace(0.0, shape.period_s, 20_001)[None, :]
    positions = kepler_positions(shape, seconds, *_random_angles(rng, 8))
    radius = np.linalg.norm(positions, axis=-1)
    a, e = shape.semi_major_axis_km, shape.eccentricity
    assert radius.min() >= a * (1.0 - e) * (1.0 - 1e-12)
    assert radius.max() <= a * (1.0 + e) * (1.0 + 1e-12)
    # time sampling is coarse in angle at Yinghuo-1's fast periapsis: 5e-5 covers it
    np.testing.assert_allclose(radius.min(axis=1), a * (1.0 - e), rtol=5e-5)
    np.testing.assert_allclose(radius.max(axis=1), a * (1.0 + e), rtol=5e-5)


@pytest.mark.parametrize("name", list(ORBITS))
def test_kepler_position_returns_to_start_after_one_period(name):
    """A two-body orbit is closed: r(t + T) = r(t)."""
    shape = ORBITS[name]
    rng = np.random.default_rng(2)
    start = rng.uniform(0.0, shape.period_s, size=16)
    seconds = np.stack([start, start + shape.period_s], axis=1)
    positions = kepler_positions(shape, seconds, *_random_angles(rng, 16))
    drift = np.linalg.norm(positions[:, 1] - positions[:, 0], axis=-1)
    assert np.all(drift / np.linalg.norm(positions[:, 0], axis=-1) < 1e-6)


@pytest.mark.parametrize("name", list(ORBITS))
def test_kepler_inclination_bounds_the_latitude(name):
    """z / r = sin(i) sin(argument of latitude): its maximum over an orbit is sin(i); and the
    angular momentum r x v points at angle i from Mars's pole."""
    shape = ORBITS[name]
    rng = np.random.default_rng(3)
    seconds = np.linspace(0.0, shape.period_s, 200_001)[None, :]
    positions = kepler_positions(shape, seconds, *_random_angles(rng, 4))
    latitude_sine = np.abs(positions[..., 2]) / np.linalg.norm(positions, axis=-1)
    sin_i = np.sin(np.radians(shape.inclination_deg))
    np.testing.assert_allclose(latitude_sine.max(axis=1), sin_i, rtol=1e-4)
    normal = np.cross(positions[:, 0], positions[:, 1000])
    cos_tilt = normal[:, 2] / np.linalg.norm(normal, axis=-1)
    np.testing.assert_allclose(np.degrees(np.arccos(cos_tilt)), shape.inclination_deg, atol=1e-6)


@pytest.mark.parametrize("name", list(ORBITS))
def test_kepler_speed_obeys_vis_viva(name):
    """Energy conservation: v^2 = GM (2 / r - 1 / a) along the orbit (speed from central
    differences of the positions, an independent check of the anomaly-time relation)."""
    shape = ORBITS[name]
    rng = np.random.default_rng(4)
    h = 0.5
    centre = rng.uniform(0.0, shape.period_s, size=200)
    seconds = np.stack([centre - h, centre, centre + h], axis=1)
    positions = kepler_positions(shape, seconds, *_random_angles(rng, 200))
    speed = np.linalg.norm(positions[:, 2] - positions[:, 0], axis=-1) / (2.0 * h)
    radius = np.linalg.norm(positions[:, 1], axis=-1)
    expected = np.sqrt(MARS_GM_KM3_S2 * (2.0 / radius - 1.0 / shape.semi_major_axis_km))
    np.testing.assert_allclose(speed, expected, rtol=1e-6)


def test_kepler_zero_mean_anomaly_is_periapsis_along_the_node_line():
    """With M0 = 0, raan = 0 and argument of periapsis 0 the craft starts at periapsis on the
    +x axis (the ascending node) and moves towards +y."""
    shape = OrbitShape(10_000.0, 0.2, 30.0)
    zero = np.zeros((1, 1))
    positions = kepler_positions(shape, np.array([[0.0, 60.0]]), zero, zero, zero)
    np.testing.assert_allclose(positions[0, 0], [8_000.0, 0.0, 0.0], atol=1e-6)
    assert positions[0, 1, 1] > 0.0 and positions[0, 1, 2] > 0.0


def test_quasi_synchronous_orbit_is_a_two_by_one_retrograde_loop_around_phobos():
    """Clohessy-Wiltshire centred ellipse: radial offset rho cos(nt), along-track -2 rho sin(nt);
    so the distance to Phobos stays within [rho, 2 rho] and the loop closes once per orbit of
    Phobos, drifting backward (retrograde) when it is on the outside."""
    rng = np.random.default_rng(5)
    angles = _random_angles(rng, 3)
    seconds = np.linspace(0.0, PHOBOS_ORBIT.period_s, 2_001)[None, :]
    host = kepler_positions(PHOBOS_ORBIT, seconds, angles[0], angles[1], np.zeros((3, 1)))
    rho = 80.0
    craft = quasi_synchronous_positions(host, PHOBOS_ORBIT.period_s, seconds, rho, np.zeros((3, 1)))
    relative = craft - host
    distance = np.linalg.norm(relative, axis=-1)
    assert distance.min() >= rho * (1.0 - 1e-9)
    assert distance.max() <= 2.0 * rho * (1.0 + 1e-9)
    np.testing.assert_allclose(relative[:, 0], relative[:, -1], atol=1e-6)
    radial = host / np.linalg.norm(host, axis=-1, keepdims=True)
    np.testing.assert_allclose(np.sum(relative[:, 0] * radial[:, 0], axis=-1), rho, rtol=1e-9)
    velocity = host[:, 1] - host[:, 0]
    assert np.all(np.sum((relative[:, 1] - relative[:, 0]) * velocity, axis=-1) < 0.0)


# --- 4. Earth-Mars light time and the ephemeris frame -----------------------------------------


def test_table_light_time_matches_direct_astropy_computation(long_table):
    """The table's Earth-Mars vector is interpolated from a 3-hour grid; astropy's built-in
    ephemeris queried at the exact instants must give the same light time to well under 1 s
    (Earth-Mars relative acceleration makes the interpolation error ~100 km, ~0.3 ms)."""
    _offline_astropy()
    import astropy.units as u
    from astropy.coordinates import get_body_barycentric
    from astropy.time import Time

    start = Time(LONG_TABLE_START, scale="utc")
    dates = [
        "2012-10-20T05:17:00",
        "2013-01-01T13:30:00",
        "2013-04-18T00:00:00",
        "2013-09-09T22:45:10",
        "2014-04-14T07:00:00",
        "2014-06-01T01:01:01",
    ]
    times = Time(dates, scale="utc")
    seconds = (times - start).to_value(u.s)
    sample = long_table.sample(seconds)
    table_light_time = geometry.light_time_s(geometry.norm(sample["earth_from_mars"]))
    earth = get_body_barycentric("earth", times, ephemeris="builtin")
    mars = get_body_barycentric("mars", times, ephemeris="builtin")
    direct = (earth - mars).norm().to_value(u.km) / SPEED_OF_LIGHT_KM_S
    np.testing.assert_allclose(table_light_time, direct, atol=1.0)
    assert np.all((table_light_time > 182.0) & (table_light_time < 1_338.0))


def test_light_time_spans_conjunction_and_2014_closest_approach(long_table):
    """Over Oct 2012 - Jun 2014 the one-way light time stays in the 182-1,338 s envelope;
    its minimum is Mars's closest approach of 14 April 2014 (0.6176 AU, ~308 s), and the Sun
    and Mars are nearly aligned from Earth at the solar conjunction of 18 April 2013."""
    light_time = geometry.light_time_s(geometry.norm(long_table.earth_from_mars))
    assert light_time.min() > 182.0 and light_time.max() < 1_338.0
    day = np.arange(len(light_time)) * long_table.grid_seconds / 86_400.0
    closest_day = day[np.argmin(light_time)]
    assert closest_day == pytest.approx(560.0, abs=2.0)  # 2012-10-01 + 560 d = 2014-04-14
    assert light_time.min() * SPEED_OF_LIGHT_KM_S / AU_KM == pytest.approx(0.6176, abs=0.002)
    mars_from_earth = -long_table.earth_from_mars
    sun_from_earth = long_table.sun_from_mars - long_table.earth_from_mars
    cos_elongation = geometry.dot(geometry.unit(mars_from_earth), geometry.unit(sun_from_earth))
    elongation = np.degrees(np.arccos(np.clip(cos_elongation, -1.0, 1.0)))
    assert day[np.argmin(elongation)] == pytest.approx(199.0, abs=1.5)  # 2013-04-18
    assert elongation.min() < 1.0


def test_sun_latitude_over_mars_reaches_the_obliquity_at_the_2013_southern_solstice():
    """In Mars's equatorial frame the Sun's latitude swings between +-25.19 deg (the obliquity).
    Mars passed perihelion (Ls 251) on 24 Jan 2013 and its southern summer solstice (Ls 270)
    about a month later, so over Jan-Mar 2013 the Sun's latitude falls to -25.19 deg in late
    February: this checks the IAU pole used to build the frame."""
    table = ephemeris_for(OrbitSchedulingConfig())
    sun = geometry.unit(table.sun_from_mars)
    latitude = np.degrees(np.arcsin(sun[:, 2]))
    assert np.all(np.abs(latitude) <= MARS_OBLIQUITY_DEG + 0.05)
    assert latitude.min() == pytest.approx(-MARS_OBLIQUITY_DEG, abs=0.05)
    solstice_day = np.argmin(latitude) * table.grid_seconds / 86_400.0
    assert solstice_day == pytest.approx(53.0, abs=10.0)  # 2013-01-01 + 53 d = 2013-02-23


# --- 5. Station elevation ---------------------------------------------------------------------


@pytest.mark.parametrize("station", ["bear_lakes", "kunming", "ussuriysk"])
def test_station_elevation_matches_astropy_altaz(long_table, station):
    """The CIO-based hour angle (Earth rotation angle + longitude - CIRS right ascension) and
    the spherical-astronomy elevation formula must reproduce astropy's full AltAz transform
    (polar motion, topocentric parallax) to 0.1 deg, refraction off (pressure = 0)."""
    _offline_astropy()
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time

    site = GROUND_STATIONS[station]
    location = EarthLocation.from_geodetic(
        site.lon_deg * u.deg, site.lat_deg * u.deg, site.height_m * u.m
    )
    seconds = np.concatenate(
        [np.arange(0.0, 2.0 * 86_400.0, 2_700.0), [123.0 * 86_400.0, 555.5 * 86_400.0]]
    )
    times = Time(LONG_TABLE_START, scale="utc") + seconds * u.s
    altaz = get_body("mars", times, ephemeris="builtin").transform_to(
        AltAz(obstime=times, location=location, pressure=0.0 * u.hPa)
    )
    sample = long_table.sample(seconds)
    elevation = geometry.station_elevation_deg(
        np.array([site.lat_deg]),
        np.array([site.lon_deg]),
        sample["mars_cirs"],
        sample["earth_rotation_angle"],
    )[:, 0]
    np.testing.assert_allclose(elevation, altaz.alt.deg, atol=0.1)
    assert elevation.min() < 0.0 < elevation.max()  # the samples cover rise and set


# --- 6. Station visibility fraction -----------------------------------------------------------


def test_station_visibility_fraction_matches_hour_angle_formula():
    """A body at declination dec stays above elevation h for the hour angles |H| < H0 with
    cos H0 = (sin h - sin lat sin dec) / (cos lat cos dec), i.e. a fraction H0 / pi of each
    rotation. Mars was at dec ~ -17 deg in January 2013, so the high-latitude Bear Lakes sees it
    for only ~5 h a day while Kunming (25 N) sees it ~9 h: the plan must agree within 1.5%
    (0.36 h a day) with the formula."""
    _offline_astropy()
    import astropy.units as u
    from astropy.coordinates import CIRS, get_body
    from astropy.time import Time

    stations = ("bear_lakes", "ussuriysk", "miyun", "kunming")
    config = dataclasses.replace(
        OrbitSchedulingConfig(),
        start="2013-01-10T00:00:00",
        start_window_days=0.0,
        horizon_steps=3 * 288,
        stations=stations,
    )
    plan = _plan(config, range(1))
    observed = plan.station_sees_mars[0].mean(axis=0)

    times = Time(config.start, scale="utc") + np.arange(0.0, 3.0 * 24.0, 1.0) * u.hour
    dec = get_body("mars", times, ephemeris="builtin").transform_to(CIRS(obstime=times)).dec.rad
    mask = np.radians(config.elevation_mask_deg)
    for index, key in enumerate(stations):
        lat = np.radians(GROUND_STATIONS[key].lat_deg)
        cos_h0 = (np.sin(mask) - np.sin(lat) * np.sin(dec)) / (np.cos(lat) * np.cos(dec))
        expected = np.mean(np.arccos(np.clip(cos_h0, -1.0, 1.0)) / np.pi)
        assert observed[index] == pytest.approx(expected, abs=0.015), key
    # Mars south of the equator: the further north the station, the shorter its pass
    assert observed[0] < observed[1] < observed[2] < observed[3]


# --- 7. Eclipses ------------------------------------------------------------------------------


def test_ray_blocked_puts_points_behind_mars_in_its_cylindrical_shadow():
    """With the Sun along +x, Mars's shadow is the cylinder x < 0, y^2 + z^2 < R^2."""
    sun = np.array([1.0, 0.0, 0.0])
    points = np.array(
        [
            [-2.0 * R, 0.0, 0.0],  # straight behind: night
            [-50.0 * R, 0.99 * R, 0.0],  # far behind, just inside the cylinder: night
            [-2.0 * R, 0.0, 1.01 * R],  # behind but beside the cylinder: lit
            [2.0 * R, 0.0, 0.0],  # sunward side: lit
            [0.0, 1.5 * R, 0.0],  # over the terminator: lit
        ]
    )
    np.testing.assert_array_equal(
        geometry.ray_blocked(points, sun, R), [True, True, False, False, False]
    )


def _yinghuo1_worst_eclipse_s() -> float:
    """Longest stay in Mars's cylindrical shadow over all Sun directions, by direct sampling.

    In orbit-plane coordinates with x along the Sun's in-plane direction, a Sun at angle beta
    out of the plane gives a distance from the shadow axis of sqrt(y^2 + x^2 sin^2 beta) >= |y|:
    the shadow is longest for beta = 0, so scanning the in-plane angle bounds every case. Time
    comes from Kepler's equation in closed form, t = (E - e sin E) / n (no solver involved).
    """
    a, e = YINGHUO1_ORBIT.semi_major_axis_km, YINGHUO1_ORBIT.eccentricity
    anomaly = np.linspace(0.0, 2.0 * np.pi, 40_001)
    t = (anomaly - e * np.sin(anomaly)) / np.sqrt(MARS_GM_KM3_S2 / a**3)
    x = a * (np.cos(anomaly) - e)
    y = a * np.sqrt(1.0 - e * e) * np.sin(anomaly)
    worst = 0.0
    for phi in np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False):
        along = x * np.cos(phi) + y * np.sin(phi)
        shadow = (along < 0.0) & (x * x + y * y - along * along < R * R)
        worst = max(worst, float(np.sum(np.diff(t)[shadow[:-1]])))
    return worst


def test_eclipses_never_outlast_a_crossing_of_the_shadow_cylinder(default_window_plan):
    """An eclipse lasts at most the time to cross Mars's shadow cylinder (diameter 2R).

    Phasing orbit (circular, radius a): in shadow only while |sin theta| < R / a from the
    anti-Sun point, so at most 2 asin(R / a) / (2 pi) of the 8.28 h period, ~55.6 min.
    Yinghuo-1: crossing near its 83,396 km apoapsis at 0.22 km/s takes up to ~8.5 h (the
    worst Sun direction, found by scanning).
    In Jan-Mar 2013 the Sun stands 20.7-25.2 deg south of Mars's equator (southern summer),
    beyond asin(R / a) = 20.1 deg, so Phobos-Grunt's near-equatorial orbit is mostly
    eclipse-free then and the Yinghuo-1 bound is the one that bites.
    """
    config, plan = default_window_plan
    dt, quantum = config.step_seconds, config.step_seconds / config.substeps
    a, e = PHASING_ORBIT.semi_major_axis_km, PHASING_ORBIT.eccentricity
    grunt_bound = np.arcsin(R / (a * (1.0 - e))) / np.pi * PHASING_ORBIT.period_s * (1.0 + 2 * e)
    assert grunt_bound / 60.0 == pytest.approx(55.6, abs=1.0)
    yinghuo_bound = _yinghuo1_worst_eclipse_s()
    assert yinghuo_bound / 3600.0 == pytest.approx(8.5, abs=0.1)
    longest = [0.0, 0.0]
    for episode in range(plan.sunlit.shape[0]):
        for craft in range(2):
            for _, _, duration in _eclipses(plan.sunlit[episode, :, craft], dt):
                longest[craft] = max(longest[craft], duration)
    assert longest[0] <= grunt_bound + 2.0 * quantum
    assert longest[1] <= yinghuo_bound + 2.0 * quantum
    # Yinghuo-1 does pass through the shadow in this window, but with the Sun ~20 deg off its
    # plane the shadow misses the slow apoapsis arc: its eclipses are ~25-min periapsis passes.
    assert 0.0 < longest[1] < 3600.0


def _beta_deg(plan: EpisodePlan, craft_axis: int) -> np.ndarray:
    """Sun elevation over each episode's orbit plane (orbit normal from two early positions)."""
    positions = plan.positions[:, :, craft_axis]
    normal = geometry.unit(np.cross(positions[:, 0], positions[:, 3]))
    sun = plan.sun_direction.mean(axis=1)
    return np.degrees(np.arcsin(geometry.dot(normal, geometry.unit(sun))))


def test_phasing_orbit_has_no_eclipse_when_the_sun_is_high_over_its_plane(default_window_plan):
    """Cylindrical shadow: a circular orbit of radius r never enters it when the Sun stands
    more than asin(R / r) above the orbit plane (|beta| > 20.2 deg at periapsis radius)."""
    _, plan = default_window_plan
    beta = _beta_deg(plan, 1)
    threshold = np.degrees(np.arcsin(R / (PHASING_ORBIT.semi_major_axis_km * 0.995)))
    high = np.abs(beta) > threshold + 0.1
    assert high.sum() >= 30  # most of the Jan-Mar 2013 window
    assert np.all(plan.sunlit[high, :, 0] == 1.0)


def test_phasing_orbit_eclipse_duration_near_equinox_matches_cylinder_formula():
    """Near Mars's northern spring equinox (Ls 0, end of July 2013) the Sun is over the equator
    and every 8.28 h revolution crosses the shadow: for a circular orbit the shadowed arc is
    2 acos(sqrt(1 - (R/a)^2) / cos beta), i.e. ~55 min per orbit at beta ~ 0."""
    config = dataclasses.replace(
        OrbitSchedulingConfig(),
        start="2013-07-15T00:00:00",
        start_window_days=20.0,
        horizon_steps=132,
    )
    plan = _plan(config, range(12))
    dt, quantum = config.step_seconds, config.step_seconds / config.substeps
    a = PHASING_ORBIT.semi_major_axis_km
    beta = np.radians(_beta_deg(plan, 1))
    assert np.all(np.abs(beta) < np.arcsin(R / a) - 0.05)
    for episode in range(plan.sunlit.shape[0]):
        ratio = np.sqrt(1.0 - (R / a) ** 2) / np.cos(beta[episode])
        expected = np.arccos(ratio) / np.pi * PHASING_ORBIT.period_s
        complete = [
            duration
            for begin, end, duration in _eclipses(plan.sunlit[episode, :, 0], dt)
            if begin > 0 and end < config.horizon_steps
        ]
        assert complete, f"episode {episode}: no complete eclipse in 11 h"
        for duration in complete:
            assert duration == pytest.approx(expected, abs=2.0 * quantum + 0.015 * expected)


def test_sunlit_agrees_with_an_independent_shadow_test_at_step_starts(default_window_plan):
    """A craft deep inside the shadow cylinder at a step's start spends part of the step in
    eclipse; one clearly outside it at both ends of the step, and close to Mars, is lit.
    50 km of margin absorbs the Sun's motion within a step."""
    _, plan = default_window_plan
    steps = plan.sunlit.shape[1]
    craft = plan.positions[:, :, 1:]  # [n, T + 1, 2, 3]
    sun = plan.sun_direction[:, :, None, :]
    along = geometry.dot(craft, sun)
    perpendicular = np.sqrt(np.maximum(geometry.dot(craft, craft) - along**2, 0.0))
    deep = (along < 0.0) & (perpendicular < R - 50.0)
    assert deep[:, :steps].any()
    assert np.all(plan.sunlit[deep[:, :steps]] < 1.0)
    assert np.all(plan.sunlit[deep[:, :steps] & deep[:, 1:]] == 0.0)
    # Phobos-Grunt on its near-circular orbit moves < 6 deg a step: clear at both ends means
    # clear throughout unless it crossed the whole cylinder in between, which it cannot.
    clear = (along > 0.0) | (perpendicular > R + 50.0)
    both = clear[:, :steps, 0] & clear[:, 1:, 0]
    assert np.all(plan.sunlit[both, 0] == 1.0)


# --- 8. Radio occultation geometry ------------------------------------------------------------


@pytest.mark.parametrize("altitude", [-500.0, 0.0, 80.0, 137.0, 400.0, 2_000.0])
def test_occultation_tangent_altitude_of_a_chord_across_mars(altitude):
    """Two craft on opposite sides of Mars, the chord between them passing at altitude h
    (rotated arbitrarily): the ray's closest approach is the chord's midpoint, at altitude h."""
    rng = np.random.default_rng(6)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    transmitter = np.array([-20_000.0, R + altitude, 0.0]) @ rotation.T
    receiver = np.array([45_000.0, R + altitude, 0.0]) @ rotation.T
    tangent_altitude, direction = geometry.occultation_tangent(transmitter, receiver)
    assert tangent_altitude == pytest.approx(altitude, abs=1.0)
    np.testing.assert_allclose(direction, rotation @ [0.0, 1.0, 0.0], atol=1e-9)
    assert bool(geometry.segment_clear(transmitter, receiver, R)) == (altitude > 0.0)


def test_occultation_tangent_when_the_ray_grazes_nothing_is_the_nearer_end():
    """If Mars's centre projects outside the segment, the closest point is an end point."""
    altitude, direction = geometry.occultation_tangent(
        np.array([R + 1_000.0, 0.0, 0.0]), np.array([R + 5_000.0, 2_000.0, 0.0])
    )
    assert altitude == pytest.approx(1_000.0)
    np.testing.assert_allclose(direction, [1.0, 0.0, 0.0])


def _midpoints(positions: np.ndarray) -> np.ndarray:
    """Step midpoints by linear interpolation of the step-start positions (60-s steps: the
    chord sags < 3 km below the orbit even at Yinghuo-1's periapsis)."""
    return 0.5 * (positions[:, :-1] + positions[:, 1:])


def test_occultations_occur_and_agree_with_spacecraft_line_of_sight():
    """The Phobos-Grunt to Yinghuo-1 ray sweeps the 80-400 km ionosphere band a few times a
    day. Checks, from the step-start positions alone: a step whose start and end tangent
    altitudes reach below the band's top and above its bottom is an occultation step; at a
    step's middle the inter-spacecraft link is open when the tangent altitude is clearly above
    ground and closed when clearly below (20 km margin for the interpolated midpoint)."""
    config = dataclasses.replace(OrbitSchedulingConfig(), step_seconds=60.0, horizon_steps=1_440)
    plan = _plan(config, range(10))
    assert plan.occultation.sum() >= 10
    assert plan.occultation.any(axis=1).sum() >= 5  # most seeds see at least one

    grunt, yinghuo = plan.positions[:, :, 1], plan.positions[:, :, 2]
    ends, _ = geometry.occultation_tangent(grunt, yinghuo)  # [n, T + 1]
    # the tangent altitude varies continuously, so ends that reach below the band's top and
    # above its bottom mean the ray touched the band during the step
    reaches_band = (np.minimum(ends[:, :-1], ends[:, 1:]) <= IONOSPHERE_TOP_KM) & (
        np.maximum(ends[:, :-1], ends[:, 1:]) >= IONOSPHERE_BOTTOM_KM
    )
    assert reaches_band.sum() >= 10
    assert np.all(plan.occultation[reaches_band])

    middle, _ = geometry.occultation_tangent(_midpoints(grunt), _midpoints(yinghuo))
    isl = plan.link_open[:, :, 0, 1]
    np.testing.assert_array_equal(isl, plan.link_open[:, :, 1, 0])
    assert np.all(isl[middle > 20.0])
    assert not np.any(isl[middle < -20.0])
    at_occultation = plan.occultation & (middle > 20.0)
    assert at_occultation.any() and np.all(isl[at_occultation])


# --- 9. Ephemeris date range ------------------------------------------------------------------


@pytest.mark.parametrize("start", ["1950-01-01", "2031-01-01"])
def test_ephemeris_outside_supported_dates_raises_naming_the_date(start):
    """astropy's bundled IERS table covers 1962 to its release date; outside it the Earth
    rotation is unknown offline, so the table refuses rather than extrapolate."""
    with pytest.raises(ValueError, match=start):
        ephemeris_table(start, 10.0)


def test_ephemeris_range_running_past_the_supported_end_raises():
    """The whole range must lie inside the table, not only its start."""
    _, last = supported_range()
    with pytest.raises(ValueError, match="supported range"):
        ephemeris_table(last[:10], 30.0)


@pytest.mark.parametrize("start", ["not-a-date", "2013-13-45", "2013-02-30"])
def test_ephemeris_malformed_date_raises_value_error(start):
    with pytest.raises(ValueError, match="not an ISO date"):
        ephemeris_table(start, 1.0)


def test_supported_range_covers_the_planned_mission():
    """The simulated mission (late 2012 to mid 2014) must fall within the bundled IERS data."""
    first, last = supported_range()
    assert first <= "2012-10-01" and last >= "2014-06-30"


def test_plan_for_an_unsupported_start_raises_value_error():
    config = dataclasses.replace(OrbitSchedulingConfig(), start="1950-01-01", horizon_steps=4)
    with pytest.raises(ValueError, match="1950-01-01"):
        _plan(config, range(1))


def test_table_sample_outside_its_span_raises(long_table):
    with pytest.raises(ValueError, match="outside the ephemeris"):
        long_table.sample(np.array([long_table.span_seconds + 1.0]))
    with pytest.raises(ValueError, match="outside the ephemeris"):
        long_table.sample(np.array([-1.0]))


# --- 10. Line of sight ------------------------------------------------------------------------


def test_ray_blocked_towards_earth_hides_only_craft_behind_mars():
    """Earth is effectively at infinity along +y: Mars hides a craft whose ray towards Earth
    passes within R of Mars's centre on the far side."""
    earth = np.array([0.0, 1.0, 0.0])
    points = np.array(
        [
            [0.0, -5_000.0, 0.0],  # behind Mars
            [3_000.0, -9_000.0, 0.0],  # behind, 3,000 km off axis (< R)
            [3_500.0, -9_000.0, 0.0],  # behind, 3,500 km off axis (> R)
            [0.0, 5_000.0, 0.0],  # in front
        ]
    )
    np.testing.assert_array_equal(
        geometry.ray_blocked(points, earth, R), [True, True, False, False]
    )
    many = np.broadcast_to(points, (4, 7, 4, 3))
    assert geometry.ray_blocked(many, earth, R).shape == (4, 7, 4)


def test_segment_clear_is_false_only_when_mars_lies_between_the_ends():
    """The segment misses the sphere unless its closest point to the centre is inside it;
    a line through Mars whose ends are both on the same side does not count."""
    starts = np.array(
        [
            [-10_000.0, 0.0, 0.0],
            [-10_000.0, R + 10.0, 0.0],
            [-10_000.0, R - 10.0, 0.0],
            [5_000.0, 0.0, 0.0],
            [-10_000.0, 0.0, 0.0],
        ]
    )
    ends = np.array(
        [
            [10_000.0, 0.0, 0.0],  # through the centre
            [10_000.0, R + 10.0, 0.0],  # grazing 10 km above
            [10_000.0, R - 10.0, 0.0],  # 10 km below the surface
            [9_000.0, 0.0, 0.0],  # both ends on the same side
            [-10_000.0, 0.0, 0.0],  # zero-length segment outside Mars
        ]
    )
    np.testing.assert_array_equal(
        geometry.segment_clear(starts, ends, R), [False, True, False, True, True]
    )
    np.testing.assert_array_equal(
        geometry.segment_clear(starts, ends, R), geometry.segment_clear(ends, starts, R)
    )


def test_earth_visibility_agrees_with_an_independent_behind_mars_test(default_window_plan):
    """earth_visible is evaluated at step midpoints. A craft deep inside the Earth-pointing
    cylinder behind Mars at both ends of a step is hidden (the region is convex; 100 km covers
    the orbit's curvature over a step). One 40 km outside it at both ends is visible: checked
    for Phobos-Grunt only, whose step path is short enough (< 650 km) that its midpoint cannot
    cut into the cylinder; a fast Yinghuo-1 periapsis pass could clip its edge."""
    _, plan = default_window_plan
    earth = plan.earth_direction[:, :, None, :]
    craft = plan.positions[:, :, 1:]
    along = geometry.dot(craft, earth)
    perpendicular = np.sqrt(np.maximum(geometry.dot(craft, craft) - along**2, 0.0))
    hidden = (along < 0.0) & (perpendicular < R - 100.0)
    shown = (along > 0.0) | (perpendicular > R + 40.0)
    hidden_step = hidden[:, :-1] & hidden[:, 1:]
    shown_step = shown[:, :-1] & shown[:, 1:]
    assert hidden_step.any() and shown_step.any()
    assert not np.any(plan.earth_visible[hidden_step])
    assert np.all(plan.earth_visible[shown_step[..., 0], 0])


def test_light_time_in_the_plan_is_earth_mars_distance_over_c(default_window_plan):
    """Plan light time is the one-way delay |Earth - Mars| / c (18.5-19.6 min in early 2013),
    and it is also the delay of every spacecraft-ground link."""
    config, plan = default_window_plan
    assert np.all((plan.light_time_s > 1_100.0) & (plan.light_time_s < 1_180.0))
    np.testing.assert_allclose(geometry.light_time_s(SPEED_OF_LIGHT_KM_S), 1.0)
    spacecraft_to_ground = plan.link_delay_s[:, :, :2, 2:]
    expected = np.broadcast_to(plan.light_time_s[:, :, None, None], spacecraft_to_ground.shape)
    np.testing.assert_allclose(spacecraft_to_ground, expected)
