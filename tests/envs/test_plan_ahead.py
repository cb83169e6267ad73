"""Episodes prepared ahead in a background process are the episodes the core would prepare."""

from __future__ import annotations

import selectors

import numpy as np
import pytest

from phobos.envs import make_config
from phobos.envs.orbit_scheduling.batch import OrbitSchedulingBatch
from phobos.envs.plan_ahead import PlanAhead


def _allowed(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    allowed = mask.astype(bool)
    rank = (rng.random(mask.shape[:2]) * allowed.sum(axis=-1)).astype(np.int64)
    return (np.cumsum(allowed, axis=-1) <= rank[..., None]).sum(axis=-1)


def _run(batch: OrbitSchedulingBatch, episodes: int, reseed_at: int, kill_at: int = -1):
    """Every observation, mask, reward and message count of ``episodes`` episodes."""
    rng = np.random.default_rng(7)
    trace = []
    for episode in range(episodes):
        if episode == kill_at:
            # Killed once the reply for this reset is in the pipe: this reset takes it, and the
            # request for the next one finds the worker gone (deterministically).
            process = batch._ahead._process
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                assert selector.select(60.0), "the worker never answered"
            process.kill()
            process.wait()
        seeds = list(range(100, 100 + batch.num_envs)) if episode in (0, reseed_at) else None
        obs, mask = batch.reset(seeds)
        trace += [obs, mask]
        truncated = False
        while not truncated:
            obs, mask, reward, truncated, info = batch.step(_allowed(rng, mask))
            trace += [obs, mask, reward, info["messages_delivered"], info["messages_rejected"]]
    return trace


@pytest.mark.parametrize("env_id", ["orbit-scheduling-v0", "orbit-scheduling-v1"])
def test_prepared_ahead_episodes_equal_those_prepared_at_reset(env_id):
    config = make_config(env_id, horizon_steps=12)
    inline = OrbitSchedulingBatch(config, num_envs=6)
    ahead = OrbitSchedulingBatch(config, num_envs=6, plan_ahead=True)
    try:
        expected = _run(inline, episodes=5, reseed_at=3)
        got = _run(ahead, episodes=5, reseed_at=3)
        # Episodes 1, 2 and 4 came from the worker; 3 was reseeded, so its result was dropped.
        assert (ahead._ahead.taken, ahead._ahead.discarded) == (3, 1)
        assert ahead._ahead.failure is None
    finally:
        ahead.close()
    assert len(got) == len(expected)
    for index, (a, b) in enumerate(zip(expected, got, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"trace item {index}")


def test_a_killed_worker_costs_nothing_but_its_help():
    config = make_config("orbit-scheduling-v0", horizon_steps=8)
    inline = OrbitSchedulingBatch(config, num_envs=3)
    ahead = OrbitSchedulingBatch(config, num_envs=3, plan_ahead=True)
    try:
        expected = _run(inline, episodes=4, reseed_at=-1)
        got = _run(ahead, episodes=4, reseed_at=-1, kill_at=2)
        assert "gone" in ahead._ahead.failure
        assert ahead._ahead.taken == 2
    finally:
        ahead.close()
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_prepared_arrays_are_read_only_and_close_stops_the_worker():
    config = make_config("orbit-scheduling-v0", horizon_steps=8)
    batch = OrbitSchedulingBatch(config, num_envs=2, plan_ahead=True)
    batch.reset([1, 2])
    batch.reset()
    assert batch._ahead.taken == 1
    with pytest.raises(ValueError, match="read-only"):
        batch.plan.sunlit[0, 0, 0] = 0.0
    process = batch._ahead._process
    batch.close()
    assert process.poll() is not None


def failing_prepare(config, rngs):
    raise ArithmeticError(f"cannot prepare {len(rngs)} episodes")


def test_an_error_in_the_worker_is_raised_at_the_reset_that_needs_it():
    config = make_config("orbit-scheduling-v0", horizon_steps=8)
    rngs = [np.random.default_rng(1)]
    ahead = PlanAhead(failing_prepare, config, {"x": np.zeros(3)})
    try:
        ahead.request(rngs)
        with pytest.raises(RuntimeError, match="ArithmeticError: cannot prepare 1 episodes"):
            ahead.take(rngs)
    finally:
        ahead.close()
