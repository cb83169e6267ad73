"""RLlib's view of our environments: a ``MultiAgentEnv`` around a registered ``ParallelEnv``.

RLlib's own ``ParallelPettingZooEnv`` resets the env without a seed on construction and keeps
agent ids in a set, so the order of agents (and with it the seeded trajectory) could change
between processes; this adapter keeps the env's order and passes seeds through.
"""

from __future__ import annotations

from typing import Any

import gymnasium
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from phobos.envs import make


class PhobosMultiAgentEnv(MultiAgentEnv):
    """A registered environment for RLlib.

    Args:
        config: RLlib's ``env_config``: ``{"env": ID, "overrides": {field: value}}``.

    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        config = dict(config or {})
        self.env = make(config["env"], **dict(config.get("overrides") or {}))
        self.possible_agents = list(self.env.possible_agents)
        self.agents = list(self.possible_agents)
        self.observation_spaces = {a: self.env.observation_space(a) for a in self.possible_agents}
        self.action_spaces = {a: self.env.action_space(a) for a in self.possible_agents}
        self.observation_space = gymnasium.spaces.Dict(self.observation_spaces)
        self.action_space = gymnasium.spaces.Dict(self.action_spaces)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset the wrapped env with ``seed`` (its own generator only)."""
        observations, infos = self.env.reset(seed=seed, options=options)
        self.agents = list(self.env.agents)
        return observations, infos

    def step(self, action_dict: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Step every live agent; ``__all__`` ends the episode when every agent is done."""
        observations, rewards, terminations, truncations, infos = self.env.step(action_dict)
        self.agents = list(self.env.agents)
        terminations["__all__"] = all(terminations.values())
        truncations["__all__"] = all(truncations.values())
        return observations, rewards, terminations, truncations, infos

    def close(self) -> None:
        """Close the wrapped env."""
        self.env.close()
