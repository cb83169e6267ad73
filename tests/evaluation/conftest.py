from __future__ import annotations

import pytest

from phobos.envs import make_config


@pytest.fixture(scope="session")
def short_orbit():
    """A four-hour scheduling episode: long enough for contacts, short enough to be fast."""
    return make_config("orbit-scheduling-v0", horizon_steps=48)


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for the module (2 CPUs), shut down after it."""
    import ray

    from phobos.evaluation.runner import init_ray

    started = init_ray(2)
    yield ray
    if started:
        ray.shutdown()
