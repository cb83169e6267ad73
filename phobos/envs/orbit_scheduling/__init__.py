"""Cooperative observation scheduling in Mars orbit (``orbit-scheduling-v0``)."""

from phobos.envs.orbit_scheduling.batch import OrbitSchedulingBatch
from phobos.envs.orbit_scheduling.config import (
    ACTIVITIES,
    STATION_ACTIVITIES,
    OrbitSchedulingConfig,
    SpacecraftConfig,
)
from phobos.envs.orbit_scheduling.env import OrbitSchedulingEnv
from phobos.envs.orbit_scheduling.layout import ObservationLayout

__all__ = [
    "ACTIVITIES",
    "STATION_ACTIVITIES",
    "ObservationLayout",
    "OrbitSchedulingBatch",
    "OrbitSchedulingConfig",
    "OrbitSchedulingEnv",
    "SpacecraftConfig",
]
