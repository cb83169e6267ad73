"""Autonomous sampling on Phobos (``phobos-sampling-v0``)."""

from phobos.envs.sampling.batch import PhobosSamplingBatch
from phobos.envs.sampling.config import (
    AGENTS,
    LANDER,
    MATERIALS,
    SCIENCE_TEAM,
    LanderConfig,
    SamplingConfig,
    SiteConfig,
)
from phobos.envs.sampling.env import PhobosSamplingEnv
from phobos.envs.sampling.layout import SamplingLayout
from phobos.envs.sampling.site import Site, generate_site

__all__ = [
    "AGENTS",
    "LANDER",
    "MATERIALS",
    "SCIENCE_TEAM",
    "LanderConfig",
    "PhobosSamplingBatch",
    "PhobosSamplingEnv",
    "SamplingConfig",
    "SamplingLayout",
    "Site",
    "SiteConfig",
    "generate_site",
]
