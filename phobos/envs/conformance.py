"""Conformance checks run over every registered environment (library functions, not tests).

``check_environment(env_id)`` runs PettingZoo's ``parallel_api_test``, a seeded determinism
check, a check that the global numpy generator is never touched, and checks that spaces are
cached and observations lie in them. Tests parametrise it over the registry, as Gymnasium's
``tests/envs/test_envs.py`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pettingzoo.test import parallel_api_test

from phobos.envs.registry import make


def rollout(env: Any, seed: int, action_seed: int, steps: int) -> list[tuple]:
    """A trajectory of ``steps`` steps with seeded random allowed actions, as plain tuples."""
    rng = np.random.default_rng(action_seed)
    observations, _ = env.reset(seed=seed)
    trajectory = [_freeze(observations)]
    for _ in range(steps):
        if not env.agents:
            break
        actions = {}
        for agent in env.agents:
            mask = (
                observations[agent].get("action_mask")
                if isinstance(observations[agent], dict)
                else None
            )
            choices = (
                np.flatnonzero(mask) if mask is not None else np.arange(env.action_space(agent).n)
            )
            actions[agent] = int(choices[rng.integers(len(choices))])
        observations, rewards, terminations, truncations, _ = env.step(actions)
        trajectory.append((_freeze(observations), _freeze(rewards), _freeze(truncations)))
    return trajectory


def check_determinism(env_id: str, seed: int = 7, steps: int = 50, **overrides: Any) -> None:
    """Two environments reset with one seed give the same trajectory, and reseeding repeats it.

    Raises:
        AssertionError: naming the first difference.

    """
    first, second = make(env_id, **overrides), make(env_id, **overrides)
    a = rollout(first, seed, 1, steps)
    b = rollout(second, seed, 1, steps)
    assert a == b, f"{env_id}: two environments seeded {seed} diverge"
    c = rollout(first, seed, 1, steps)
    assert a == c, f"{env_id}: reseeding with {seed} does not repeat the episode"
    d = rollout(first, seed + 1, 1, steps)
    assert a != d, f"{env_id}: seeds {seed} and {seed + 1} give the same episode"


def check_global_rng_untouched(env_id: str, steps: int = 20, **overrides: Any) -> None:
    """Resetting (seeded or not) and stepping never draw from numpy's global generator."""
    state = np.random.get_state()
    marker = np.random.random()  # what the global generator would yield next
    np.random.set_state(state)
    env = make(env_id, **overrides)
    rollout(env, 3, 2, steps)
    env.reset()
    assert np.random.random() == marker, f"{env_id} drew from the global numpy generator"


def check_spaces(env_id: str, **overrides: Any) -> None:
    """Spaces are cached objects and every observation of a short rollout lies in its space."""
    env = make(env_id, **overrides)
    for agent in env.possible_agents:
        assert env.observation_space(agent) is env.observation_space(agent)
        assert env.action_space(agent) is env.action_space(agent)
    observations, _ = env.reset(seed=0)
    for _ in range(10):
        for agent, observation in observations.items():
            assert env.observation_space(agent).contains(observation), (
                f"{env_id}: {agent}'s observation leaves its space"
            )
        actions = {agent: 0 for agent in env.agents}
        observations, *_ = env.step(actions)


def check_environment(env_id: str, **overrides: Any) -> None:
    """Every conformance check on ``env_id``."""
    parallel_api_test(make(env_id, **overrides), num_cycles=200)
    check_spaces(env_id, **overrides)
    check_determinism(env_id, **overrides)
    check_global_rng_untouched(env_id, **overrides)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((k, _freeze(v)) for k, v in sorted(value.items()))
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    return value
