"""A single-agent Gymnasium view of a multi-agent task: one agent learns, the others are fixed.

This is the adapter Stable-Baselines3 and Gymnasium's ``check_env`` need. The teammates are
plain callables from an observation to an action (the ``Policy`` protocol of ``agents/``
satisfies it), so this module needs nothing above ``envs/``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

Teammate = Callable[[Any], Any]


class SingleAgentView(gymnasium.Env):
    """Gymnasium ``Env`` in which ``learner`` acts and ``teammates`` drive every other agent.

    Args:
        env: The multi-agent environment; this view owns it from now on.
        learner: Agent id whose observations, actions and (team) rewards this view exposes.
        teammates: One callable per other agent, mapping its observation to its action.

    """

    metadata = {"render_modes": []}

    def __init__(self, env: ParallelEnv, learner: str, teammates: Mapping[str, Teammate]) -> None:
        if learner not in env.possible_agents:
            raise ValueError(
                f"unknown learner {learner!r}; agents: {', '.join(env.possible_agents)}"
            )
        others = set(env.possible_agents) - {learner}
        if set(teammates) != others:
            raise ValueError(
                f"teammates must cover exactly {sorted(others)}, got {sorted(teammates)}"
            )
        self.env = env
        self.learner = learner
        self.teammates = dict(teammates)
        self.observation_space = env.observation_space(learner)
        self.action_space = env.action_space(learner)
        self._observations: dict[str, Any] = {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the wrapped environment (``seed`` seeds its own generator only)."""
        super().reset(seed=seed)
        self._observations, infos = self.env.reset(seed=seed, options=options)
        return self._observations[self.learner], infos.get(self.learner, {})

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Act for the learner; teammates act on their own latest observations."""
        actions = {
            agent: policy(self._observations[agent]) for agent, policy in self.teammates.items()
        }
        actions[self.learner] = action
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        self._observations = observations
        return (
            observations[self.learner],
            float(rewards[self.learner]),
            bool(terminations[self.learner]),
            bool(truncations[self.learner]),
            infos[self.learner],
        )

    def action_masks(self) -> np.ndarray:
        """The learner's current action mask as booleans (sb3-contrib's MaskablePPO hook)."""
        return self._observations[self.learner]["action_mask"].astype(bool)

    def close(self) -> None:
        """Close the wrapped environment."""
        self.env.close()
