"""Configuration of the orbit-scheduling task: spacecraft, stations, time, messaging.

Numbers marked "assumption" have no public source for Phobos-Grunt or Yinghuo-1; they are
sized so that power, storage and downlink all bind within a day, and are overridable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from phobos.envs.episode_config import EpisodeConfig

SPACECRAFT = ("phobos_grunt", "yinghuo1")
"""The two spacecraft; every agent list (``config.agents``) starts with them, in this order."""
PHOBOS_GRUNT_INDEX, YINGHUO1_INDEX = range(2)
"""Each spacecraft's index in the agent axis of the arrays (and in ``config.agents``)."""
CRAFT_COUNT = len(SPACECRAFT)
"""Spacecraft in the agent axis; the ground stations follow them, from this index on."""
SCIENCE, OCCULTATION_KIND = range(2)
"""Kinds of stored and delivered value (the last axis of the stored-value arrays)."""

ACTIVITIES: dict[str, tuple[str, ...]] = {
    "phobos_grunt": (
        "idle",
        "charge",
        "downlink",
        "occultation",
        "mars_camera",
        "phobos_survey",
        "spectrometers",
    ),
    "yinghuo1": (
        "idle",
        "charge",
        "downlink",
        "occultation",
        "plasma",
        "magnetometer",
        "camera",
    ),
}
"""Activities per spacecraft, in action-index order. The first four are shared by both."""

IDLE, CHARGE, DOWNLINK, OCCULTATION = 0, 1, 2, 3
"""The activities both spacecraft share, by action index."""
FIRST_INSTRUMENT = 4
"""Action index of a spacecraft's first science instrument (the rest follow it)."""
MARS_CAMERA = ACTIVITIES["phobos_grunt"].index("mars_camera")
PHOBOS_SURVEY = ACTIVITIES["phobos_grunt"].index("phobos_survey")
YINGHUO1_CAMERA = ACTIVITIES["yinghuo1"].index("camera")
"""Action indices of the instruments with a geometric condition (dayside, Phobos in range)."""

STATION_ACTIVITIES = ("idle", "track_phobos_grunt", "track_yinghuo1")
"""A station's actions: idle, then tracking each spacecraft in ``SPACECRAFT`` order."""
TRACK_FIRST = 1
"""Station action that tracks spacecraft 0; spacecraft ``c`` is tracked by ``TRACK_FIRST + c``."""


@dataclass(frozen=True)
class SpacecraftConfig:
    """Power, storage and instruments of one spacecraft. Tuples are indexed by activity."""

    solar_peak_w: float
    """Array output when sun-pointed at Mars's mean distance from the Sun."""
    off_sun_fraction: float
    """Share of the peak the array gives while pointed for another activity."""
    battery_wh: float
    """Usable battery energy."""
    bus_load_w: float
    """Load of the platform in every activity (heaters, computer, receiver)."""
    activity_load_w: tuple[float, ...]
    """Extra load of each activity, on top of the bus."""
    storage_mbit: float
    """Onboard mass memory for science data."""
    downlink_kbps: float
    """X-band rate to a 70-m antenna at the reference distance (scaled by antenna and range)."""
    data_mbit: tuple[float, ...]
    """Science data each activity produces in one step (occultation: the receiver's share)."""
    value: tuple[float, ...]
    """Science value of one step of each activity, before the condition boosts."""


PHOBOS_GRUNT = SpacecraftConfig(
    # MISSION_FACTS: about 1 kW (the +300 W of the return vehicle is not used in orbit).
    solar_peak_w=1000.0,
    off_sun_fraction=0.5,  # assumption: fixed arrays, body pointed at the target
    battery_wh=1500.0,  # assumption
    bus_load_w=350.0,  # assumption
    activity_load_w=(0.0, 0.0, 400.0, 120.0, 150.0, 150.0, 80.0),  # assumption
    storage_mbit=256.0,  # assumption
    downlink_kbps=32.0,  # assumption: no public rate for Phobos-Grunt's X-band link
    data_mbit=(0.0, 0.0, 0.0, 0.0, 6.0, 6.0, 0.5),  # assumption
    value=(0.0, 0.0, 0.0, 0.0, 1.0, 4.0, 0.15),  # assumption
)

YINGHUO1 = SpacecraftConfig(
    # MISSION_FACTS: 90 W average, 180 W peak; the average is the off-sun share of the peak.
    solar_peak_w=180.0,
    off_sun_fraction=0.5,
    # Assumption, sized so the bus (45 W) survives the longest eclipse the orbit allows: about
    # 8.5 h near apoapsis (the test of eclipse bounds computes it), 383 Wh.
    battery_wh=400.0,
    bus_load_w=45.0,  # assumption
    activity_load_w=(0.0, 0.0, 55.0, 20.0, 12.0, 4.0, 15.0),  # assumption; 12 W RF -> ~55 W DC
    storage_mbit=32.0,  # assumption
    downlink_kbps=16.0,  # MISSION_FACTS: up to 16 kbit/s (another source: 2.5 kbit/s S-band)
    data_mbit=(0.0, 0.0, 0.0, 1.5, 0.3, 0.1, 2.0),  # assumption
    value=(0.0, 0.0, 0.0, 4.0, 0.2, 0.1, 0.8),  # assumption
)


@dataclass(frozen=True)
class OrbitSchedulingConfig(EpisodeConfig):
    """Arguments of ``orbit-scheduling-v0`` (the shared ones documented in the base class)."""

    version: ClassVar[int] = 0
    """Behaviour version, the ``vN`` of the registered id: a property of the class, so that no
    recipe can pair one id with another version's behaviour."""

    start: str = "2013-01-01T00:00:00"
    """Mars orbit after the 2011 plan's arrival."""
    start_window_days: float = 60.0
    step_seconds: float = 300.0
    horizon_steps: int = 288
    """288 five-minute steps: one day."""
    substeps: int = 6
    message_buffer: int = 64
    reference_antenna_m: float = 70.0
    """Antenna diameter at which a spacecraft reaches its quoted downlink rate."""
    reference_distance_au: float = 1.0
    """Earth-Mars distance at which it does; the rate falls with the square of the distance."""
    phobos_grunt_orbit: Literal["phasing", "quasi_synchronous"] = "phasing"
    """Phobos-Grunt's pre-landing orbit: near-circular 500 km above Phobos's orbit (8.3 h), or
    a quasi-synchronous orbit around Phobos."""
    quasi_synchronous_radius_km: float = 50.0
    """Radial half-size of the quasi-synchronous loop (twice this along track)."""
    phobos_survey_range_km: float = 3000.0
    """Phobos can be surveyed from closer than this, while it is sunlit."""
    magnetosphere_radius: float = 2.0
    """Yinghuo-1's plasma and field data are worth ``magnetosphere_boost`` times more inside
    this many Mars radii (the induced magnetosphere and bow shock region)."""
    magnetosphere_boost: float = 3.0
    """Value factor inside that region."""
    magnetosphere_activities: tuple[str, ...] = ("plasma", "magnetometer")
    """Yinghuo-1's activities (names from ``ACTIVITIES["yinghuo1"]``) whose data are worth
    ``magnetosphere_boost`` times more inside that region: its field and particle instruments."""
    rare_sza_boost: float = 1.5
    """Value factor of an occultation at solar zenith angles Earth cannot reach."""
    occultation_lookahead_steps: int = 12
    """Horizon of the 'occultation coming' observation feature."""
    energy_violation_penalty: float = 2.0
    """Team penalty each time a spacecraft's battery runs flat (safe mode)."""
    phobos_grunt: SpacecraftConfig = field(default_factory=lambda: PHOBOS_GRUNT)
    """Phobos-Grunt's power, storage and instruments."""
    yinghuo1: SpacecraftConfig = field(default_factory=lambda: YINGHUO1)
    """Yinghuo-1's power, storage and instruments."""

    def validate(self) -> None:
        """Raise ValueError naming the first field that cannot work."""
        super().validate()
        if len(set(self.stations)) != len(self.stations):
            raise ValueError(f"stations: {self.stations} lists a station twice")
        for activity in self.magnetosphere_activities:
            if activity not in ACTIVITIES["yinghuo1"]:
                raise ValueError(
                    f"magnetosphere_activities: unknown activity {activity!r}; choose from "
                    f"{', '.join(ACTIVITIES['yinghuo1'])}"
                )
        for name in SPACECRAFT:
            craft: SpacecraftConfig = getattr(self, name)
            for vector in ("activity_load_w", "data_mbit", "value"):
                if len(getattr(craft, vector)) != len(ACTIVITIES[name]):
                    raise ValueError(
                        f"{name}.{vector} needs one entry per activity {ACTIVITIES[name]}"
                    )
            if craft.battery_wh <= 0 or craft.storage_mbit <= 0:
                raise ValueError(f"{name}: battery_wh and storage_mbit must be positive")

    @property
    def agents(self) -> tuple[str, ...]:
        """Agent ids: the two spacecraft, then ``ground_<station>`` in config order."""
        return SPACECRAFT + tuple(f"ground_{key}" for key in self.stations)


@dataclass(frozen=True)
class OrbitSchedulingConfigV1(OrbitSchedulingConfig):
    """Arguments of ``orbit-scheduling-v1``: v0's, plus the solar-conjunction threshold.

    Version 1 adds the lookahead block to the observation, the solar-conjunction blackout and
    an Earth rotation angle built from its rate (the env module's version history says more).
    """

    version: ClassVar[int] = 1
    """Behaviour version (see :class:`OrbitSchedulingConfig`)."""
    solar_conjunction_deg: float = 2.0
    """No Earth link (downlink, tracking, intents between spacecraft and stations) while the
    Sun is closer than this to Mars in Earth's sky: the sampling task's rule and threshold."""

    def validate(self) -> None:
        """Raise ValueError naming the first field that cannot work."""
        super().validate()
        if self.solar_conjunction_deg < 0:
            raise ValueError(
                f"solar_conjunction_deg must be >= 0, got {self.solar_conjunction_deg}"
            )
