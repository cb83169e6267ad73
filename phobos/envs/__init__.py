"""Environments: mission physics, the two tasks, their PettingZoo/Gymnasium APIs and registry."""

from phobos.envs.registry import EnvSpec, make, make_config, register, registered, spec

register(
    EnvSpec(
        id="orbit-scheduling-v0",
        entry_point="phobos.envs.orbit_scheduling.env:OrbitSchedulingEnv",
        config_entry_point="phobos.envs.orbit_scheduling.config:OrbitSchedulingConfig",
    )
)
register(
    EnvSpec(
        id="phobos-sampling-v0",
        entry_point="phobos.envs.sampling.env:PhobosSamplingEnv",
        config_entry_point="phobos.envs.sampling.config:SamplingConfig",
    )
)

__all__ = ["EnvSpec", "make", "make_config", "register", "registered", "spec"]
