"""Single-agent Gymnasium views with scripted teammates, for Stable-Baselines3 and check_env.

:func:`single_agent` builds the view of any registered task from its task spec's
``single_agent_view``; the two below are those of the package's tasks.
"""

from __future__ import annotations

from typing import Any

from phobos.agents.orbit_greedy import greedy_team
from phobos.agents.sampling_policies import CautiousLander, ScienceTeam
from phobos.envs import make, task_spec
from phobos.envs.orbit_scheduling import task as orbit_task
from phobos.envs.sampling import task as sampling_task
from phobos.envs.sampling.config import LANDER, SCIENCE_TEAM
from phobos.envs.single_agent import SingleAgentView


def single_agent(env_id: str, learner: str | None = None, **overrides: Any) -> Any:
    """The single-agent view of ``env_id`` in which ``learner`` acts (None: the task's usual).

    Keyword arguments override fields of the environment's configuration (checked).
    """
    view = task_spec(env_id).load("single_agent_view")
    return view(make(env_id, **overrides), learner)


def orbit_scheduling_view(env: Any, learner: str | None = None) -> SingleAgentView:
    """``learner`` (Phobos-Grunt by default) acts, greedy policies drive the other agents."""
    learner = learner or "phobos_grunt"
    team = greedy_team(env.config)
    return SingleAgentView(env, learner, {a: p for a, p in team.items() if a != learner})


def phobos_sampling_view(env: Any, learner: str | None = None) -> SingleAgentView:
    """The lander learns (by default) and the scripted science team advises it.

    With ``learner="science_team"`` the team learns instead, beside the cautious lander (the
    one that acts only on advice, so that the advice matters).
    """
    learner = learner or LANDER
    teammates = {
        LANDER: {SCIENCE_TEAM: ScienceTeam(env.config)},
        SCIENCE_TEAM: {LANDER: CautiousLander(env.config)},
    }
    if learner not in teammates:
        raise ValueError(f"unknown learner {learner!r}; agents: {', '.join(env.possible_agents)}")
    return SingleAgentView(env, learner, teammates[learner])


def orbit_scheduling_single_agent(
    learner: str = "phobos_grunt", **overrides: Any
) -> SingleAgentView:
    """``OrbitScheduling-v0``: ``learner`` acts, greedy policies drive the other agents.

    Keyword arguments override fields of ``OrbitSchedulingConfig`` (checked).
    """
    return single_agent(orbit_task.ID_V0, learner, **overrides)


def phobos_sampling_single_agent(learner: str = LANDER, **overrides: Any) -> SingleAgentView:
    """``PhobosSampling-v0``: the lander learns and the scripted science team advises it.

    Keyword arguments override fields of ``SamplingConfig`` (checked).
    """
    return single_agent(sampling_task.ID_V0, learner, **overrides)
