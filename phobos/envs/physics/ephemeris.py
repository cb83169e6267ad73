"""Earth-Mars geometry for real dates, computed once per date range with astropy and cached.

astropy's built-in ephemeris (ERFA's ``epv00``, VSOP87-based) works offline; IERS data come
from the table bundled with astropy, never downloaded. The slow astronomy runs once into an
:class:`EphemerisTable` on a coarse grid (kept in memory and on disk); an episode only
interpolates it with numpy.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phobos.envs.physics.constants import mars_equator_rotation

CACHE_VERSION = 1
"""Bump when the table's contents change, so stale disk caches are ignored."""

EARTH_ROTATION_RAD_PER_S = 2.0 * np.pi * 1.00273781191135448 / 86400.0
"""Rate of the Earth rotation angle per UT1 second (IERS Conventions 2010, eq. 5.15)."""
ALIASING_GRID_S = 12.0 * 3600.0
"""From this grid spacing on, the angle turns half a revolution or more between samples, so
that unwrapping it cannot tell forward from backward."""


@dataclass(frozen=True)
class EphemerisTable:
    """Earth-Mars geometry sampled every ``grid_seconds`` from ``start`` (UTC, ISO format).

    Attributes:
        start: Grid origin, UTC ISO string.
        grid_seconds: Spacing of the samples.
        earth_from_mars: ``[N, 3]`` km, Earth's centre seen from Mars, Mars equatorial frame.
        sun_from_mars: ``[N, 3]`` km, the Sun's centre seen from Mars, same frame.
        mars_cirs: ``[N, 3]`` unit vectors, Mars's apparent geocentric direction in CIRS.
        earth_rotation_angle: ``[N]`` radians, the angle at each sample (exact modulo a whole
            turn), unwrapped so that it interpolates linearly on grids under 12 h.

    """

    start: str
    grid_seconds: float
    earth_from_mars: np.ndarray
    sun_from_mars: np.ndarray
    mars_cirs: np.ndarray
    earth_rotation_angle: np.ndarray

    @property
    def span_seconds(self) -> float:
        """Seconds covered from ``start`` to the last sample."""
        return (len(self.earth_rotation_angle) - 1) * self.grid_seconds

    def sample(self, seconds: np.ndarray, rotation: str = "table") -> dict[str, np.ndarray]:
        """Linearly interpolate every column at ``seconds`` since ``start`` (any shape).

        Args:
            seconds: Times since ``start``.
            rotation: How the Earth rotation angle is found. ``"table"`` interpolates the
                unwrapped column (the orbit task's v0 numbers); the angle turns about
                half a revolution per 12 h, so from that grid on unwrapping aliases and the
                table path is refused. ``"rate"`` advances the exact angle of the sample at
                or before each time at the IERS rate: right on any grid (UT1 - UTC drifts by
                milliseconds a day; a leap second inside one interval costs 0.004 deg).

        Raises:
            ValueError: if a time falls outside the table, or for the table path on a grid
                of 12 h or more, or an unknown ``rotation``.

        """
        if rotation not in ("table", "rate"):
            raise ValueError(f"rotation must be 'table' or 'rate', got {rotation!r}")
        if rotation == "table" and self.grid_seconds >= ALIASING_GRID_S:
            raise ValueError(
                f"an ephemeris grid of {self.grid_seconds / 3600.0:g} h aliases the unwrapped "
                "Earth rotation angle (half a turn or more per sample); sample it with "
                "rotation='rate' or use a grid under 12 h"
            )
        seconds = np.asarray(seconds, dtype=np.float64)
        if seconds.size and (seconds.min() < 0 or seconds.max() > self.span_seconds):
            raise ValueError(
                f"times {seconds.min():.0f}..{seconds.max():.0f} s fall outside the ephemeris "
                f"table starting {self.start} and spanning {self.span_seconds:.0f} s"
            )
        position = seconds / self.grid_seconds
        index = np.minimum(position.astype(np.int64), len(self.earth_rotation_angle) - 2)
        frac = position - index
        frac3 = frac[..., None]

        def lerp(column: np.ndarray, f: np.ndarray) -> np.ndarray:
            return column[index] * (1.0 - f) + column[index + 1] * f

        if rotation == "table":
            era = lerp(self.earth_rotation_angle, frac)
        else:
            era = self.earth_rotation_angle[index] + EARTH_ROTATION_RAD_PER_S * (
                seconds - index * self.grid_seconds
            )
        return {
            "earth_from_mars": lerp(self.earth_from_mars, frac3),
            "sun_from_mars": lerp(self.sun_from_mars, frac3),
            "mars_cirs": lerp(self.mars_cirs, frac3),
            "earth_rotation_angle": era,
        }


def supported_range() -> tuple[str, str]:
    """First and last UTC dates (ISO) for which the bundled IERS table gives Earth rotation."""
    from astropy.time import Time
    from astropy.utils import iers

    table = iers.IERS_B.open()
    first = Time(float(table["MJD"][0].value), format="mjd", scale="utc")
    last = Time(float(table["MJD"][-1].value), format="mjd", scale="utc")
    return first.isot, last.isot


def ephemeris_table(start: str, days: float, grid_hours: float = 3.0) -> EphemerisTable:
    """Table covering ``days`` from ``start`` (UTC ISO), from memory, disk cache or astropy.

    Raises:
        ValueError: if ``start`` does not parse or the range leaves the supported dates.

    """
    return _cached_table(str(start), float(days), float(grid_hours))


@functools.lru_cache(maxsize=16)
def _cached_table(start: str, days: float, grid_hours: float) -> EphemerisTable:
    key = hashlib.sha1(f"{CACHE_VERSION}|{start}|{days}|{grid_hours}".encode()).hexdigest()[:16]
    path = _cache_dir() / f"ephemeris-{key}.npz"
    if path.exists():
        with np.load(path) as data:
            return EphemerisTable(
                start=start,
                grid_seconds=grid_hours * 3600.0,
                earth_from_mars=data["earth_from_mars"],
                sun_from_mars=data["sun_from_mars"],
                mars_cirs=data["mars_cirs"],
                earth_rotation_angle=data["earth_rotation_angle"],
            )
    table = compute_table(start, days, grid_hours)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(
        partial,
        earth_from_mars=table.earth_from_mars,
        sun_from_mars=table.sun_from_mars,
        mars_cirs=table.mars_cirs,
        earth_rotation_angle=table.earth_rotation_angle,
    )
    partial.replace(path)  # atomic: concurrent workers never read half a file
    return table


def compute_table(start: str, days: float, grid_hours: float = 3.0) -> EphemerisTable:
    """Compute the table with astropy (about a second per year of 3-hour samples)."""
    import astropy.units as u
    from astropy.coordinates import CIRS, get_body, get_body_barycentric
    from astropy.time import Time
    from erfa import ErfaWarning

    _configure_offline_iers()
    try:
        with warnings.catch_warnings():
            # ERFA warns of "dubious years" far from its tables; the range check below says it.
            warnings.simplefilter("ignore", ErfaWarning)
            t0 = Time(start, scale="utc")
            end = t0 + days * u.day
    except ValueError as error:
        raise ValueError(f"start date {start!r} is not an ISO date: {error}") from None
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    first, last = supported_range()
    if t0 < Time(first) or end > Time(last):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ErfaWarning)
            span = f"{t0.isot} to {end.isot}"
        raise ValueError(
            f"dates {span} leave the supported range {first} to {last} "
            "(the IERS table bundled with astropy; nothing is downloaded at run time)"
        )
    count = int(np.ceil(days * 24.0 / grid_hours)) + 1
    times = t0 + np.arange(count) * grid_hours * u.hour
    earth = get_body_barycentric("earth", times, ephemeris="builtin").xyz.to_value(u.km).T
    mars = get_body_barycentric("mars", times, ephemeris="builtin").xyz.to_value(u.km).T
    sun = get_body_barycentric("sun", times, ephemeris="builtin").xyz.to_value(u.km).T
    rotation = mars_equator_rotation()
    apparent = get_body("mars", times, ephemeris="builtin").transform_to(CIRS(obstime=times))
    mars_cirs = apparent.cartesian.xyz.value.T
    mars_cirs = mars_cirs / np.linalg.norm(mars_cirs, axis=1, keepdims=True)
    era = np.unwrap(times.earth_rotation_angle(0.0 * u.deg).to_value(u.rad))
    return EphemerisTable(
        start=start,
        grid_seconds=grid_hours * 3600.0,
        earth_from_mars=(earth - mars) @ rotation.T,
        sun_from_mars=(sun - mars) @ rotation.T,
        mars_cirs=mars_cirs,
        earth_rotation_angle=era,
    )


def _configure_offline_iers() -> None:
    from astropy.utils import iers

    # Never reach the network; use the table bundled with astropy even when it is "old".
    iers.conf.auto_download = False
    iers.conf.auto_max_age = None


def _cache_dir() -> Path:
    override = os.environ.get("PHOBOS_CACHE_DIR")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "phobos"
