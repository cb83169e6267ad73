"""The fast episode planner against a frozen copy of the planner it replaced.

``reference_plan_episodes`` and ``reference_intent_deliveries`` below are verbatim copies of
``plan.plan_episodes`` and ``batch.intent_deliveries`` as they were before the planner was
restructured for speed (commit 7b7520e), kept here so that any change in what episodes are
produced shows up as a difference. The comparison is exact for every table.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from phobos import config as config_tools
from phobos.comms.link import next_open_step
from phobos.envs.orbit_scheduling.batch import OrbitSchedulingBatch, intent_deliveries
from phobos.envs.orbit_scheduling.config import OrbitSchedulingConfig
from phobos.envs.orbit_scheduling.plan import EpisodePlan, ephemeris_for, plan_episodes
from phobos.envs.physics import geometry
from phobos.envs.physics.constants import (
    AU_KM,
    GROUND_STATIONS,
    IONOSPHERE_BOTTOM_KM,
    IONOSPHERE_TOP_KM,
    MARS_GM_KM3_S2,
    MARS_MEAN_SUN_DISTANCE_KM,
    MARS_RADIUS_KM,
    OCCULTATION_RARE_SZA_DEG,
)
from phobos.envs.physics.orbits import (
    PHASING_ORBIT,
    PHOBOS_ORBIT,
    YINGHUO1_ORBIT,
    OrbitShape,
    _kepler_table,
    orbit_normal,
    quasi_synchronous_positions,
)

CONFIGS = [
    {},
    {"message_loss": 0.4, "message_buffer": 3, "horizon_steps": 96},
    {"phobos_grunt_orbit": "quasi_synchronous", "substeps": 5, "horizon_steps": 120},
    {"start": "2013-09-20T00:00:00", "start_window_days": 3.0, "substeps": 4},
]


@pytest.mark.parametrize("overrides", CONFIGS)
@pytest.mark.parametrize("seeds", [[0], [3, 1, 4, 1, 5, 9, 2, 6]])
def test_plan_equals_the_reference_planner(overrides, seeds):
    config = config_tools.replace(OrbitSchedulingConfig(), **overrides)
    new_rngs = [np.random.default_rng(seed) for seed in seeds]
    old_rngs = [np.random.default_rng(seed) for seed in seeds]
    for _ in range(2):  # a second plan from the advanced generators: their states must agree
        new = plan_episodes(config, new_rngs)
        old = reference_plan_episodes(config, old_rngs)
        for field in dataclasses.fields(EpisodePlan):
            got, want = getattr(new, field.name), getattr(old, field.name)
            assert got.dtype == want.dtype, field.name
            np.testing.assert_array_equal(got, want, err_msg=field.name, strict=True)
        for got, want in zip(
            intent_deliveries(config, new), reference_intent_deliveries(config, old), strict=True
        ):
            np.testing.assert_array_equal(got, want, strict=True)


def test_batch_reset_draws_like_the_reference_planner():
    config = OrbitSchedulingConfig(horizon_steps=48)
    batch = OrbitSchedulingBatch(config, num_envs=4)
    batch.reset([7, 8, 9, 10])
    batch.reset()
    rngs = [np.random.default_rng(seed) for seed in (7, 8, 9, 10)]
    reference_plan_episodes(config, rngs)
    want = reference_plan_episodes(config, rngs)
    np.testing.assert_array_equal(batch.plan.positions, want.positions)
    np.testing.assert_array_equal(batch.plan.message_lost, want.message_lost)


# ------------------------------------------------------- frozen copies of the old planner
def reference_solve_kepler(mean_anomaly: np.ndarray, eccentricity: float) -> np.ndarray:
    """Eccentric anomaly E with E - e sin E = M, to 1e-12 rad.

    Newton's method started from a tabulated solution: the table is solved once per
    eccentricity, so that each call needs two or three vectorised iterations, not ten.
    """
    m = np.mod(mean_anomaly, 2.0 * np.pi)
    e = float(eccentricity)
    grid, table = _kepler_table(e)
    anomaly = np.interp(m, grid, table)
    for _ in range(8):
        step = (anomaly - e * np.sin(anomaly) - m) / (1.0 - e * np.cos(anomaly))
        anomaly -= step
        if np.max(np.abs(step), initial=0.0) < 1e-12:
            break
    return anomaly


def reference_kepler_positions(
    shape: OrbitShape,
    seconds: np.ndarray,
    mean_anomaly0: np.ndarray,
    raan: np.ndarray,
    arg_periapsis: np.ndarray,
) -> np.ndarray:
    """Positions (km) at ``seconds`` for orbits with the given angles (radians) at time 0."""
    a, e = shape.semi_major_axis_km, shape.eccentricity
    mean_motion = np.sqrt(MARS_GM_KM3_S2 / a**3)
    anomaly = reference_solve_kepler(mean_anomaly0 + mean_motion * seconds, e)
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
    return np.stack(
        [px * x_orb + qx * y_orb, py * x_orb + qy * y_orb, pz * x_orb + qz * y_orb], axis=-1
    )


def reference_plan_episodes(
    config: OrbitSchedulingConfig, rngs: list[np.random.Generator]
) -> EpisodePlan:
    """Draw and tabulate one episode per generator (the draws are the only randomness)."""
    table = ephemeris_for(config)
    steps, sub, dt = config.horizon_steps, config.substeps, config.step_seconds
    agents = config.agents
    window_steps = int(config.start_window_days * 86400.0 // dt)
    offsets, angles, initial, loss_u = [], [], [], []
    for rng in rngs:
        offsets.append(rng.integers(0, window_steps + 1) * dt)
        angles.append(rng.uniform(0.0, 2.0 * np.pi, size=6))
        initial.append(rng.uniform(size=4))
        loss_u.append(rng.random((steps, len(agents), len(agents))))
    offset = np.asarray(offsets, dtype=np.float64)
    angle = np.asarray(angles)
    n = len(rngs)

    # Spacecraft move fast: sample them `sub` times a step for eclipses and occultation
    # sweeps. Earth, the Sun and Phobos's survey window change slowly: once a step suffices.
    fine = np.arange(steps * sub + 1) * (dt / sub)
    mid_s = (np.arange(steps) + 0.5) * dt
    start_s = np.arange(steps + 1) * dt
    col = angle[:, :, None]
    no_periapsis_turn = np.zeros((n, 1))

    def phobos_at(seconds: np.ndarray) -> np.ndarray:
        return reference_kepler_positions(
            PHOBOS_ORBIT, seconds, col[:, 0], col[:, 1], no_periapsis_turn
        )

    def craft_at(seconds: np.ndarray) -> np.ndarray:
        if config.phobos_grunt_orbit == "phasing":
            grunt = reference_kepler_positions(
                PHASING_ORBIT, seconds, col[:, 2], col[:, 1], no_periapsis_turn
            )
        else:
            grunt = quasi_synchronous_positions(
                phobos_at(seconds),
                PHOBOS_ORBIT.period_s,
                seconds,
                config.quasi_synchronous_radius_km,
                col[:, 2],
                normal=orbit_normal(PHOBOS_ORBIT.inclination_deg, col[:, 1]),
            )
        yinghuo = reference_kepler_positions(
            YINGHUO1_ORBIT, seconds, col[:, 3], col[:, 4], col[:, 5]
        )
        return np.stack([grunt, yinghuo], axis=2)  # [n, times, 2, 3]

    craft = craft_at(fine[None, :])
    craft_start = craft[:, ::sub]
    # With an even number of substeps the midpoints are fine samples too: reuse them.
    craft_mid = craft[:, sub // 2 :: sub] if sub % 2 == 0 else craft_at(mid_s[None, :])
    phobos_mid = phobos_at(mid_s[None, :])

    eph_mid = table.sample(offset[:, None] + mid_s[None, :])
    eph_start = table.sample(offset[:, None] + start_s[None, :])
    earth_mid = geometry.unit(eph_mid["earth_from_mars"])
    sun_distance = geometry.norm(eph_mid["sun_from_mars"])
    sun_mid = eph_mid["sun_from_mars"] / sun_distance[..., None]
    sun_fine = np.repeat(sun_mid, sub, axis=1)  # the Sun moves 0.02 deg in a step

    shadow = geometry.ray_blocked(craft[:, :-1], sun_fine[:, :, None, :], MARS_RADIUS_KM)
    sunlit = 1.0 - shadow.reshape(n, steps, sub, 2).mean(axis=2)
    earth_visible = ~geometry.ray_blocked(craft_mid, earth_mid[:, :, None, :], MARS_RADIUS_KM)
    dayside = geometry.dot(geometry.unit(craft_mid), sun_mid[:, :, None, :]) > 0.0
    phobos_lit = ~geometry.ray_blocked(phobos_mid, sun_mid, MARS_RADIUS_KM)
    phobos_range = geometry.norm(craft_mid[:, :, 0] - phobos_mid)
    phobos_near = phobos_lit & (phobos_range < config.phobos_survey_range_km)
    magnetosphere = geometry.norm(craft_mid[:, :, 1]) < config.magnetosphere_radius * MARS_RADIUS_KM

    occultation, boost = _occultation_windows(config, craft, sun_mid)
    soon = _any_within(occultation, config.occultation_lookahead_steps)

    stations = [GROUND_STATIONS[key] for key in config.stations]
    lat = np.array([s.lat_deg for s in stations])
    lon = np.array([s.lon_deg for s in stations])
    elevation = geometry.station_elevation_deg(
        lat, lon, eph_mid["mars_cirs"], eph_mid["earth_rotation_angle"]
    )
    sees_mars = elevation >= config.elevation_mask_deg
    earth_distance = geometry.norm(eph_mid["earth_from_mars"])
    light_time = geometry.light_time_s(earth_distance)

    antenna = np.array([s.antenna_m for s in stations])
    antenna_gain = np.minimum(1.0, (antenna / config.reference_antenna_m) ** 2)
    range_gain = np.minimum(1.0, (config.reference_distance_au * AU_KM / earth_distance) ** 2)
    peak_bits = np.array([config.phobos_grunt.downlink_kbps, config.yinghuo1.downlink_kbps])
    peak_bits = peak_bits * 1000.0 * dt
    downlink = (
        peak_bits[None, None, None, :]
        * antenna_gain[None, None, :, None]
        * range_gain[:, :, None, None]
        * (sees_mars[..., :, None] & earth_visible[..., None, :])
    )

    link_open, link_delay = _intent_links(
        len(agents), sees_mars, earth_visible, craft_mid, light_time
    )
    lost = np.asarray(loss_u) < config.message_loss

    return EpisodePlan(
        start_offset_s=offset,
        positions=np.concatenate([phobos_at(start_s[None, :])[:, :, None], craft_start], axis=2),
        earth_direction=geometry.unit(eph_start["earth_from_mars"]),
        sun_direction=geometry.unit(eph_start["sun_from_mars"]),
        sunlit=sunlit,
        solar_scale=(MARS_MEAN_SUN_DISTANCE_KM / sun_distance) ** 2,
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
        initial_state=np.asarray(initial),
    )


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
    altitude, tangent = geometry.occultation_tangent(craft[:, :, 0], craft[:, :, 1])
    index = np.arange(steps)[:, None] * sub + np.arange(sub + 1)[None, :]  # [T, sub + 1]
    window = altitude[:, index]
    low_enough = window.min(axis=-1) <= IONOSPHERE_TOP_KM
    hit = low_enough & (window.max(axis=-1) >= IONOSPHERE_BOTTOM_KM)
    middle = 0.5 * (IONOSPHERE_BOTTOM_KM + IONOSPHERE_TOP_KM)
    closest_to_middle = np.argmin(np.abs(window - middle), axis=-1)  # [n, T]
    best = index[np.arange(steps)[None, :], closest_to_middle]
    cos_sza = geometry.dot(np.take_along_axis(tangent, best[..., None], axis=1), sun)
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


def reference_intent_deliveries(
    config: OrbitSchedulingConfig, plan: EpisodePlan
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """When each intent message arrives, computed from the contact plan like the router does.

    Every agent sends one intent to every other agent each step. Per link: a message sent
    while the link is closed waits (tail drop once ``message_buffer`` are waiting), leaves at
    the next open step, arrives one light time later and is seen in the first observation at
    or after its arrival (never the one it was sent from). Returns, for every observation
    index ``k`` in ``0..T``, the latest send step delivered from each sender to each receiver
    (``-1`` if none) as ``[n, T + 1, receiver, sender]``; the copies delivered by each ``k``
    ``[n, T + 1]``; and the copies rejected at each send step ``[n, T]``.
    """
    n, steps, agents, _ = plan.link_open.shape
    dt = config.step_seconds
    # Link-major layout [n, sender, receiver, T]: every scan below runs along contiguous time.
    link_open = np.ascontiguousarray(np.moveaxis(plan.link_open, 1, -1))
    delay_s = np.ascontiguousarray(np.moveaxis(plan.link_delay_s, 1, -1))
    lost = np.moveaxis(plan.message_lost, 1, -1)
    index = np.arange(steps, dtype=np.int32)
    last_open = np.where(link_open, index, np.int32(-1))
    np.maximum.accumulate(last_open, axis=-1, out=last_open)
    accepted = (index - last_open <= config.message_buffer) | link_open
    depart = next_open_step(np.moveaxis(link_open, -1, -3))
    depart = np.ascontiguousarray(np.moveaxis(depart, -3, -1)).astype(np.int32)
    departs = depart < steps
    np.minimum(depart, steps - 1, out=depart)
    arrival = np.take_along_axis(delay_s, depart, axis=-1)
    arrival += depart * dt
    # First observation time k * dt at or after arrival, compared exactly as the router does.
    k = np.ceil(arrival / dt).astype(np.int32)
    k -= (k - 1) * dt >= arrival
    k += k * dt < arrival
    np.maximum(k, index + 1, out=k)
    valid = accepted & departs & ~lost
    valid[:, np.arange(agents), np.arange(agents)] = False
    np.minimum(k, steps + 1, out=k)
    k[~valid] = steps + 1  # steps + 1: not seen in this episode

    # Latest send step seen by observation k: max{s : k(s) <= k}. The suffix minimum of k(s)
    # is non-decreasing, so that set is a prefix of s; count its length with a histogram.
    suffix_min = np.minimum.accumulate(k[..., ::-1], axis=-1)[..., ::-1]
    rows = suffix_min.reshape(-1, steps)
    width = steps + 2
    flat = (np.arange(rows.shape[0], dtype=np.int64)[:, None] * width + rows).ravel()
    counts = np.bincount(flat, minlength=rows.shape[0] * width).reshape(n, agents, agents, width)
    latest = np.cumsum(counts[..., : steps + 1], axis=-1, dtype=np.int32) - 1
    # [n, k, receiver, sender]: one step's table is then a single slice.
    latest = np.ascontiguousarray(np.transpose(latest, (0, 3, 2, 1)))

    flat_k = (np.arange(n, dtype=np.int64)[:, None] * width + k.reshape(n, -1)).ravel()
    delivered = np.bincount(flat_k, minlength=n * width).reshape(n, width)[:, : steps + 1]
    off_diagonal = ~np.eye(agents, dtype=bool)[..., None]
    rejected = (~accepted & off_diagonal).sum(axis=(1, 2))
    return latest, delivered, rejected
