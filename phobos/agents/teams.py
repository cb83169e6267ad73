"""Build a team of policies, one per agent, by name: the entry point of evaluation and the demo."""

from __future__ import annotations

from typing import Any

from phobos.agents.orbit_greedy import greedy_team
from phobos.agents.policy import Policy, RandomPolicy
from phobos.envs.orbit_scheduling.config import OrbitSchedulingConfig

_TEAMS = {"random", "greedy"}


def policy_names() -> list[str]:
    """Names :func:`make_team` accepts."""
    return sorted(_TEAMS)


def make_team(name: str, env: Any, seed: int | None = None) -> dict[str, Policy]:
    """Policies for every agent of ``env`` (a ``ParallelEnv``) by team name.

    Raises:
        ValueError: for an unknown name (naming the valid ones) or a task the team lacks.

    """
    if name not in _TEAMS:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(policy_names())}")
    if name == "random":
        return {
            agent: RandomPolicy(env.action_space(agent), seed=None if seed is None else seed + i)
            for i, agent in enumerate(env.possible_agents)
        }
    config = getattr(env, "config", None)
    if isinstance(config, OrbitSchedulingConfig):
        return greedy_team(config)
    raise ValueError(f"no {name!r} policies for environment {type(env).__name__}")
