"""Single-agent Gymnasium views with scripted teammates, for Stable-Baselines3 and check_env."""

from __future__ import annotations

from typing import Any

from phobos.agents.orbit_greedy import greedy_team
from phobos.envs import make
from phobos.envs.single_agent import SingleAgentView


def orbit_scheduling_single_agent(
    learner: str = "phobos_grunt", **overrides: Any
) -> SingleAgentView:
    """``OrbitScheduling-v0``: ``learner`` acts, greedy policies drive the other agents.

    Keyword arguments override fields of ``OrbitSchedulingConfig`` (checked).
    """
    env = make("orbit-scheduling-v0", **overrides)
    team = greedy_team(env.config)
    return SingleAgentView(env, learner, {a: p for a, p in team.items() if a != learner})
