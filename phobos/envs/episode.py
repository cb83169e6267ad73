"""The episode loop every runner shares: choose actions, step, until no agent is left.

``phobos run``, evaluation's rollouts, the imitation warm start and the demo's benchmark fly
episodes through :func:`play`; each reads what it needs from the steps it yields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple


class Transition(NamedTuple):
    """One step of an episode."""

    observations: dict[str, Any]
    """Each agent's observation the actions were chosen from."""
    actions: dict[str, Any]
    """The action each live agent chose."""
    next_observations: dict[str, Any]
    """Each agent's observation after the step."""
    rewards: dict[str, float]
    """The step's rewards."""
    terminations: dict[str, bool]
    """The step's terminations."""
    truncations: dict[str, bool]
    """The step's truncations."""
    infos: dict[str, dict[str, Any]]
    """The step's infos."""


def play(
    env: Any,
    act: Mapping[str, Callable[[Any], Any]] | Callable[[dict[str, Any]], dict[str, Any]],
    observations: dict[str, Any],
) -> Iterator[Transition]:
    """Step ``env`` from ``observations`` (those of its reset) until no agent is left.

    Args:
        env: A ``ParallelEnv`` just reset.
        act: A team (agent -> callable from its observation to its action) or a callable
            from every agent's observation to the actions of the agents still live.
        observations: The observations the episode starts from.

    Yields:
        Every step, in order; the last one ends the episode.

    """
    if isinstance(act, Mapping):
        team = act

        def act(observed: dict[str, Any]) -> dict[str, Any]:
            return {agent: team[agent](observed[agent]) for agent in env.agents}

    while env.agents:
        actions = act(observations)
        step = Transition(observations, actions, *env.step(actions))
        yield step
        observations = step.next_observations
