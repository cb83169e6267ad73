"""Single-agent Gymnasium views with scripted teammates, for Stable-Baselines3 and check_env."""

from __future__ import annotations

from typing import Any

from phobos.agents.orbit_greedy import greedy_team
from phobos.agents.sampling_policies import CautiousLander, ScienceTeam
from phobos.envs import make
from phobos.envs.sampling.config import LANDER, SCIENCE_TEAM
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


def phobos_sampling_single_agent(learner: str = LANDER, **overrides: Any) -> SingleAgentView:
    """``PhobosSampling-v0``: the lander learns and the scripted science team advises it.

    With ``learner="science_team"`` the team learns instead, beside the cautious lander (the
    one that acts only on advice, so that the advice matters). Keyword arguments override
    fields of ``SamplingConfig`` (checked).
    """
    env = make("phobos-sampling-v0", **overrides)
    teammates = {
        LANDER: {SCIENCE_TEAM: ScienceTeam(env.config)},
        SCIENCE_TEAM: {LANDER: CautiousLander(env.config)},
    }
    if learner not in teammates:
        raise ValueError(f"unknown learner {learner!r}; agents: {', '.join(env.possible_agents)}")
    return SingleAgentView(env, learner, teammates[learner])
