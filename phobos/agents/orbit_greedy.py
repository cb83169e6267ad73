"""Scripted greedy policies for the orbit-scheduling task (every version), one per role.

They coordinate the way real operations do without a central planner: every agent knows the
ephemeris (which stations see Mars now, from the shared observation block) and learns the
others' state from intent messages, late. Stations rank themselves among those that see Mars
and split the two spacecraft by that rank, fuller memory first; each spacecraft predicts the
same split from its own observation and downlinks only when it expects a station on it.

On v1 the spacecraft also plan ahead with the lookahead block (v0 has none, and its greedy
team acts exactly as before): see :class:`GreedySpacecraft`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phobos.agents.policy import Policy
from phobos.envs.orbit_scheduling.config import (
    ACTIVITIES,
    CHARGE,
    DOWNLINK,
    IDLE,
    OCCULTATION,
    SPACECRAFT,
    OrbitSchedulingConfig,
    SpacecraftConfig,
)
from phobos.envs.orbit_scheduling.layout import (
    BATTERY,
    CONTACT_FOR,
    CONTACT_IN,
    DOWNLINK_RATE,
    EARTH_VISIBLE,
    ECLIPSE_FOR,
    ECLIPSE_IN,
    INTENT_RECEIVED,
    INTENT_STORAGE,
    RATE_PHOBOS_GRUNT,
    SEES_MARS,
    STORAGE,
    WINDOW_FOR,
    WINDOW_IN,
    ObservationLayout,
)

OBSERVATIONS = (4, 5, 6)
LOW_BATTERY = 0.3
DOWNLINK_FROM = 0.05
"""Storage fraction above which a spacecraft bothers to downlink."""
UNKNOWN_STORAGE = 0.5
"""What an agent assumes of a spacecraft's memory before any intent from it arrives."""
OCCULTATION_RESERVE_STEPS = 12
"""v1: memory is kept for an occultation window that starts within this many steps."""


def expected_tracking(
    vector: np.ndarray, layout: ObservationLayout, station_count: int
) -> dict[int, int]:
    """Which spacecraft (0 or 1) each station that sees Mars will track, by the shared rule."""
    visible = [s for s in range(station_count) if vector[layout.station_sees_mars(s)] > 0.5]
    storage = []
    for craft in (0, 1):
        intent = vector[layout.intent(craft)]
        known = intent[INTENT_RECEIVED] > 0.5
        storage.append(intent[INTENT_STORAGE] if known else UNKNOWN_STORAGE)
    fuller_first = (0, 1) if storage[0] >= storage[1] else (1, 0)
    return {station: fuller_first[rank % 2] for rank, station in enumerate(visible)}


class GreedySpacecraft(Policy):
    """Occultation when possible, downlink when a station is expected, else the best observation.

    With a lookahead block (v1) it also: charges ahead of an eclipse its battery would not
    last through; keeps memory free for the occultation window coming next (Yinghuo-1 stores
    its share); and picks observations by value per bit as soon as the memory would fill
    before the next contact starts, not only once it is 60% full.

    Args:
        agent: ``phobos_grunt`` or ``yinghuo1``.
        config: The task configuration (for the layout and the instruments' values).

    """

    def __init__(self, agent: str, config: OrbitSchedulingConfig) -> None:
        if agent not in SPACECRAFT:
            raise ValueError(f"{agent!r} is not a spacecraft; choose from {SPACECRAFT}")
        self.index = SPACECRAFT.index(agent)
        self.layout = ObservationLayout.for_config(config)
        self.stations = len(config.stations)
        craft: SpacecraftConfig = getattr(config, agent)
        self.value_per_step = {a: craft.value[a] for a in OBSERVATIONS}
        self.value_per_bit = {
            a: craft.value[a] / max(craft.data_mbit[a], 1e-9) for a in OBSERVATIONS
        }
        self.names = ACTIVITIES[agent]
        self.lookahead = self.layout.lookahead
        self.horizon = config.horizon_steps
        step_hours = config.step_seconds / 3600.0
        self.storage_mbit = craft.storage_mbit
        self.data_mbit = craft.data_mbit
        # Battery share one step of the bus and of each activity's load drains with no Sun.
        self.dark_drain = [
            (craft.bus_load_w + load) * step_hours / craft.battery_wh
            for load in craft.activity_load_w
        ]

    def act(self, observation: dict[str, Any]) -> int:
        """Pick by the priorities in the class docstring."""
        vector, mask = observation["observations"], observation["action_mask"]
        layout = self.layout
        battery = vector[layout.own_field(BATTERY)]
        storage = vector[layout.own_field(STORAGE)]
        if mask[OCCULTATION]:
            return OCCULTATION
        if mask[DOWNLINK] and storage > DOWNLINK_FROM and vector[layout.own_field(EARTH_VISIBLE)]:
            tracking = expected_tracking(vector, layout, self.stations)
            if self.index in tracking.values() and vector[layout.own_field(DOWNLINK_RATE)] > 0:
                return DOWNLINK
        if battery < LOW_BATTERY:
            return CHARGE
        allowed = [a for a in OBSERVATIONS if mask[a]]
        filling = storage >= 0.6
        if self.lookahead:
            if self._charge_for_eclipse(vector, battery):
                return CHARGE
            allowed = self._room_for_occultation(vector, storage, allowed)
            filling = filling or self._fills_before_contact(vector, storage, allowed)
        if allowed:
            # Plenty of room: take the most value per step; filling up: the most per bit,
            # because the downlink, not the instrument, is the bottleneck then.
            score = self.value_per_bit if filling else self.value_per_step
            return max(allowed, key=lambda a: (score[a], -a))
        return CHARGE if battery < 0.95 else IDLE

    # ------------------------------------------------------------------ v1 lookahead rules
    def _steps(self, vector: np.ndarray, index: int) -> float:
        return float(vector[index]) * self.horizon

    def _charge_for_eclipse(self, vector: np.ndarray, battery: float) -> bool:
        """An eclipse starts within two steps and the battery would not see it through."""
        layout = self.layout
        ahead = self._steps(vector, layout.lookahead_craft(self.index, ECLIPSE_IN))
        if not 0 < ahead <= 2:
            return False
        length = self._steps(vector, layout.lookahead_craft(self.index, ECLIPSE_FOR))
        worst = max(self.dark_drain[a] for a in OBSERVATIONS)
        return battery < LOW_BATTERY + length * worst

    def _room_for_occultation(
        self, vector: np.ndarray, storage: float, allowed: list[int]
    ) -> list[int]:
        """Drop observations that would leave too little memory for the next occultation."""
        need = self.data_mbit[OCCULTATION]
        if need <= 0.0:
            return allowed
        layout = self.layout
        ahead = self._steps(vector, layout.lookahead_occultation(WINDOW_IN))
        if ahead > OCCULTATION_RESERVE_STEPS:
            return allowed
        length = self._steps(vector, layout.lookahead_occultation(WINDOW_FOR))
        room = (1.0 - storage) * self.storage_mbit - length * need
        return [a for a in allowed if self.data_mbit[a] <= room]

    def _fills_before_contact(self, vector: np.ndarray, storage: float, allowed: list) -> bool:
        """The memory would be full before the next contact if each step took the most."""
        if not allowed:
            return False
        layout = self.layout
        ahead = self._steps(vector, layout.lookahead_craft(self.index, CONTACT_IN))
        if vector[layout.lookahead_craft(self.index, CONTACT_FOR)] <= 0.0:
            ahead = self.horizon  # no contact left in this episode
        most = max(self.data_mbit[a] for a in allowed)
        return storage * self.storage_mbit + ahead * most > self.storage_mbit


class GreedyStation(Policy):
    """Track the spacecraft the shared rule assigns to this station, when it sees Mars.

    Args:
        agent: ``ground_<station>``.
        config: The task configuration.

    """

    def __init__(self, agent: str, config: OrbitSchedulingConfig) -> None:
        stations = [f"ground_{key}" for key in config.stations]
        if agent not in stations:
            raise ValueError(f"{agent!r} is not a station of this task; choose from {stations}")
        self.station = stations.index(agent)
        self.stations = len(stations)
        self.layout = ObservationLayout.for_config(config)

    def act(self, observation: dict[str, Any]) -> int:
        """Track the assigned spacecraft, or the other one if only it is reachable."""
        vector, mask = observation["observations"], observation["action_mask"]
        if vector[self.layout.own_field(SEES_MARS)] < 0.5:
            return IDLE
        tracking = expected_tracking(vector, self.layout, self.stations)
        preferred = tracking.get(self.station, 0)
        for craft in (preferred, 1 - preferred):
            rate = vector[self.layout.own_field(RATE_PHOBOS_GRUNT + craft)]
            if mask[1 + craft] and rate > 0:
                return 1 + craft
        return IDLE


def greedy_team(config: OrbitSchedulingConfig) -> dict[str, Policy]:
    """A greedy policy for every agent of ``config``."""
    return {
        agent: GreedySpacecraft(agent, config)
        if agent in SPACECRAFT
        else GreedyStation(agent, config)
        for agent in config.agents
    }


def greedy_team_of(env: Any) -> dict[str, Policy]:
    """The task spec's ``greedy`` team: :func:`greedy_team` of ``env``'s configuration."""
    return greedy_team(env.config)
