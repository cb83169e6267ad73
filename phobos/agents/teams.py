"""Build a team of policies, one per agent, by name: the entry point of evaluation and the demo.

The names a task offers are its task spec's ``teams`` (:mod:`phobos.envs.task`) plus:

| name | what it is |
|---|---|
| ``random`` | uniform over each agent's allowed actions, for every task |
| ``trained`` | the committed policies of the task, greedy for agents without one |

The orbit task offers ``greedy`` (greedy spacecraft and stations); the sampling task
``greedy`` (onboard, AEGIS-like lander), ``cautious`` (a lander that samples only what the
ground advised) and ``oracle`` (a lander that reads the hidden site: an upper bound, not
deployable), each beside the scripted science team.

``trained`` loads the small policies committed under ``phobos/agents/trained/<env name>/``
(safetensors weights and a JSON spec, so no pickle runs; with the command and config that
trained them); it is offered only where one exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phobos.agents.policy import Policy, RandomPolicy
from phobos.envs.registry import registered_tasks, task_named, task_of

RANDOM = "random"
TRAINED = Path(__file__).with_name("trained")
"""Committed trained policies, one folder per environment name (``env.metadata["name"]``)."""


def trained_policy(env: Any) -> Path | None:
    """The committed trained policy for ``env``, if there is one."""
    name = getattr(env, "metadata", {}).get("name") if env is not None else None
    folder = TRAINED / name if name else None
    return folder if folder is not None and (folder / "phobos.json").exists() else None


def policy_names(env: Any = None) -> list[str]:
    """Names :func:`make_team` accepts for ``env``; without one, those every task accepts."""
    task = task_of(env) if env is not None else None
    if task is not None:
        names = {RANDOM, *task.teams}
    else:
        every = [set(task_named(name).teams) for name in registered_tasks()]
        names = {RANDOM, *set.intersection(*every)} if every else {RANDOM}
    if trained_policy(env) is not None:
        names.add("trained")
    return sorted(names)


def make_team(name: str, env: Any, seed: int | None = None) -> dict[str, Policy]:
    """Policies for every agent of ``env`` (a ``ParallelEnv``) by team name.

    Raises:
        ValueError: for an unknown name (naming the valid ones) or a task the team lacks.

    """
    known = {RANDOM, *(team for t in registered_tasks() for team in task_named(t).teams)}
    if name not in policy_names(env) and name not in known:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(policy_names(env))}")
    if name == "trained":
        return _trained_team(env, seed)
    if name == RANDOM:
        return {
            agent: RandomPolicy(env.action_space(agent), seed=None if seed is None else seed + i)
            for i, agent in enumerate(env.possible_agents)
        }
    task = task_of(env)
    if task is not None and name in task.teams:
        return task.team(name)(env)
    raise ValueError(
        f"no {name!r} policies for environment {type(env).__name__}; "
        f"choose from {', '.join(policy_names(env))}"
    )


def _trained_team(env: Any, seed: int | None) -> dict[str, Policy]:
    """Every agent that has a committed trained policy flies it; greedy flies the rest.

    Committed policies are safetensors weights with a JSON spec
    (:mod:`~phobos.agents.shared_policy`): loading them runs no pickle.
    """
    from phobos.agents.shared_policy import load_shared_team

    folder = trained_policy(env)
    team = make_team("greedy", env, seed=seed)
    team.update(load_shared_team(str(folder), env, partial=True))
    return team
