"""Spaces and input checks shared by the environments: one wording for every bad input.

An action outside its space is an error naming the agent and the valid choices; an unknown
or missing agent is an error naming the agents. (An action the mask forbids is not an error:
each environment carries it out as its safe default and flags it.)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np


def masked_spaces(
    action_counts: Mapping[str, int], observation_size: int
) -> tuple[dict[str, gymnasium.spaces.Dict], dict[str, gymnasium.spaces.Discrete]]:
    """Per-agent ``Dict(observations, action_mask)`` and ``Discrete`` spaces, built once."""
    observation_spaces = {
        agent: gymnasium.spaces.Dict(
            {
                "observations": gymnasium.spaces.Box(
                    0.0, 1.0, (observation_size,), dtype=np.float32
                ),
                "action_mask": gymnasium.spaces.Box(0, 1, (count,), dtype=np.int8),
            }
        )
        for agent, count in action_counts.items()
    }
    action_spaces = {
        agent: gymnasium.spaces.Discrete(count) for agent, count in action_counts.items()
    }
    return observation_spaces, action_spaces


def check_agent(agent: str, possible_agents: Sequence[str]) -> str:
    """``agent``, or ValueError naming the valid ids."""
    if agent not in possible_agents:
        raise ValueError(f"unknown agent id {agent!r}; agents: {', '.join(possible_agents)}")
    return agent


def check_action_keys(
    actions: Mapping[str, Any], live_agents: Collection[str], possible_agents: Sequence[str]
) -> None:
    """ValueError for an unknown agent in ``actions`` or a live agent without an action."""
    if len(actions) == len(live_agents) and all(agent in actions for agent in live_agents):
        return
    unknown = [agent for agent in actions if agent not in live_agents]
    if unknown:
        raise ValueError(
            f"unknown agent id {unknown[0]!r} in actions; agents: {', '.join(possible_agents)}"
        )
    missing = [agent for agent in live_agents if agent not in actions]
    raise ValueError(f"no action for agent(s) {', '.join(missing)}")


def action_index(agent: str, action: Any, count: int, choices: Callable[[], str]) -> int:
    """The integer action in ``Discrete(count)``, or ValueError naming agent and ``choices()``.

    Accepts Python and numpy integers and one-element integer arrays (what samplers and
    policies return); refuses booleans and floats rather than guessing.
    """
    if isinstance(action, np.ndarray) and action.shape in ((), (1,)):
        action = action.reshape(())[()]
    if isinstance(action, bool | np.bool_) or not isinstance(action, int | np.integer):
        raise ValueError(
            f"action {action!r} of agent {agent!r} is not an integer; valid actions: 0..{count - 1}"
        )
    index = int(action)
    if not 0 <= index < count:
        raise ValueError(
            f"action {index} of agent {agent!r} is outside Discrete({count}); "
            f"valid actions: {choices()}"
        )
    return index
