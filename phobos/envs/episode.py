"""The episode loop every runner shares: choose actions, step, until no agent is left.

``phobos run``, evaluation's rollouts, the imitation warm start, the demo's benchmark and the
live world fly episodes through :func:`play`; each reads what it needs from the steps it yields.
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
    act: Mapping[str, Callable[[Any], Any]] | Callable[[dict[str, Any]], dict[str, Any] | None],
    observations: dict[str, Any],
    step: Callable[[dict[str, Any]], tuple] | None = None,
) -> Iterator[Transition]:
    """Step ``env`` from ``observations`` (those of its reset) until no agent is left.

    Args:
        env: A ``ParallelEnv`` just reset.
        act: A team (agent -> callable from its observation to its action) or a callable
            from every agent's observation to the actions of the agents still live; it may
            return ``None`` to end the loop early (the live world does on a stop).
        observations: The observations the episode starts from.
        step: What steps the environment (``env.step`` by default; the live world wraps it).

    Yields:
        Every step, in order; the last one ends the episode (or precedes an early end).

    """
    if isinstance(act, Mapping):
        team = act

        def act(observed: dict[str, Any]) -> dict[str, Any]:
            return {agent: team[agent](observed[agent]) for agent in env.agents}

    advance = step or env.step
    while env.agents:
        actions = act(observations)
        if actions is None:
            return
        transition = Transition(observations, actions, *advance(actions))
        yield transition
        observations = transition.next_observations
