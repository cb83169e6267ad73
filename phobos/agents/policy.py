"""The one protocol every policy satisfies: given an agent's observation, return its action.

Random and scripted policies, RLlib modules and Stable-Baselines3 models all load behind it,
so evaluation and the demo never care which kind they run (as Stable-Baselines3's
``evaluate_policy`` types against ``PolicyPredictor``).
"""

from __future__ import annotations

import abc
from typing import Any

import gymnasium
import numpy as np


class Policy(abc.ABC):
    """Maps one agent's observation to its action.

    Required: :meth:`act`. Optional hook: :meth:`reset`, called at each episode start (does
    nothing by default). Calling the policy is the same as calling :meth:`act`, so a policy
    can stand wherever a plain ``observation -> action`` callable is expected.
    """

    @abc.abstractmethod
    def act(self, observation: Any) -> Any:
        """The action for ``observation``."""

    def reset(self, seed: int | None = None) -> None:  # noqa: B027 - an optional hook
        """Start of an episode; ``seed`` reseeds the policy's own generator, if it has one."""

    def __call__(self, observation: Any) -> Any:
        """Same as :meth:`act`."""
        return self.act(observation)


class RandomPolicy(Policy):
    """Uniform over the actions the observation's ``action_mask`` allows (all, without one).

    Args:
        action_space: The agent's ``Discrete`` action space.
        seed: Seed of the policy's own generator.

    """

    def __init__(self, action_space: gymnasium.spaces.Discrete, seed: int | None = None) -> None:
        if not isinstance(action_space, gymnasium.spaces.Discrete):
            raise TypeError(f"RandomPolicy needs a Discrete action space, got {action_space}")
        self.n = int(action_space.n)
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """Reseed when given a seed."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def act(self, observation: Any) -> int:
        """A uniformly drawn allowed action."""
        if isinstance(observation, dict) and "action_mask" in observation:
            allowed = np.flatnonzero(observation["action_mask"])
            return int(allowed[self._rng.integers(len(allowed))])
        return int(self._rng.integers(self.n))
