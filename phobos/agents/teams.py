"""Build a team of policies, one per agent, by name: the entry point of evaluation and the demo.

| name | ``orbit-scheduling-v0`` | ``phobos-sampling-v0`` |
|---|---|---|
| ``random`` | uniform over each agent's allowed actions | the same |
| ``greedy`` | greedy spacecraft and stations | onboard (AEGIS-like) lander, scripted science team |
| ``cautious`` | - | lander that samples only what the ground advised |
| ``oracle`` | - | lander that reads the hidden site: an upper bound, not deployable |
"""

from __future__ import annotations

from typing import Any

from phobos.agents.orbit_greedy import greedy_team
from phobos.agents.policy import Policy, RandomPolicy
from phobos.agents.sampling_policies import sampling_team
from phobos.envs.orbit_scheduling.config import OrbitSchedulingConfig
from phobos.envs.sampling.config import SamplingConfig

_COMMON = ("greedy", "random")
_SAMPLING = ("cautious", "greedy", "oracle", "random")


def policy_names(env: Any = None) -> list[str]:
    """Names :func:`make_team` accepts for ``env``; without one, those every task accepts."""
    if env is not None and isinstance(getattr(env, "config", None), SamplingConfig):
        return sorted(_SAMPLING)
    return sorted(_COMMON)


def make_team(name: str, env: Any, seed: int | None = None) -> dict[str, Policy]:
    """Policies for every agent of ``env`` (a ``ParallelEnv``) by team name.

    Raises:
        ValueError: for an unknown name (naming the valid ones) or a task the team lacks.

    """
    if name not in _COMMON + _SAMPLING:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(policy_names(env))}")
    if name == "random":
        return {
            agent: RandomPolicy(env.action_space(agent), seed=None if seed is None else seed + i)
            for i, agent in enumerate(env.possible_agents)
        }
    config = getattr(env, "config", None)
    if isinstance(config, OrbitSchedulingConfig) and name == "greedy":
        return greedy_team(config)
    if isinstance(config, SamplingConfig):
        return sampling_team(name, env)
    raise ValueError(
        f"no {name!r} policies for environment {type(env).__name__}; "
        f"choose from {', '.join(policy_names(env))}"
    )
