"""Environments: mission physics, the two tasks, their PettingZoo/Gymnasium APIs and registry."""

from phobos.envs.registry import (
    EnvSpec,
    has_batch,
    make,
    make_batch,
    make_config,
    register,
    registered,
    spec,
)

register(
    EnvSpec(
        id="orbit-scheduling-v0",
        entry_point="phobos.envs.orbit_scheduling.env:OrbitSchedulingEnv",
        config_entry_point="phobos.envs.orbit_scheduling.config:OrbitSchedulingConfig",
        batch_entry_point="phobos.envs.orbit_scheduling.batch:OrbitSchedulingBatch",
    )
)
register(
    EnvSpec(
        id="orbit-scheduling-v1",
        entry_point="phobos.envs.orbit_scheduling.env:OrbitSchedulingEnv",
        config_entry_point="phobos.envs.orbit_scheduling.config:OrbitSchedulingConfigV1",
        batch_entry_point="phobos.envs.orbit_scheduling.batch:OrbitSchedulingBatch",
    )
)
register(
    EnvSpec(
        id="phobos-sampling-v0",
        entry_point="phobos.envs.sampling.env:PhobosSamplingEnv",
        config_entry_point="phobos.envs.sampling.config:SamplingConfig",
        batch_entry_point="phobos.envs.sampling.batch:PhobosSamplingBatch",
    )
)

__all__ = [
    "EnvSpec",
    "has_batch",
    "make",
    "make_batch",
    "make_config",
    "register",
    "registered",
    "spec",
]
