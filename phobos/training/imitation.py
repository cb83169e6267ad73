"""A warm start for PPO: clone the scripted greedy team before reinforcement learning begins.

PPO from scratch spends most of a 30-minute budget rediscovering what the scripted policies
already know (which cells are worth a spectrometer run, when a station should track which
spacecraft). Cloning them first (behaviour cloning on their own episodes, with the value
head fitted to the discounted returns they earned) starts PPO from the greedy team's level,
and the remaining budget goes into improving on it: the "kickstarting" recipe of
Schmitt et al. 2018, here with a plain cross-entropy phase before PPO rather than an auxiliary
loss during it.

Demonstrations use their own seeds (:data:`SEED_BASE` upwards), apart from the seeds that
evaluation holds out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from phobos.agents import make_team
from phobos.agents.roles import module_id
from phobos.envs import make
from phobos.envs.episode import play

SEED_BASE = 10_000_000
"""Demonstration episodes use seeds ``SEED_BASE + 100_000 * run_seed + i``."""


@dataclass(frozen=True)
class Demonstrations:
    """What the teacher saw and did, one row per agent-step.

    Attributes:
        observations: Observation vectors, ``(n, D)`` float32.
        masks: Action masks, ``(n, A)`` int8.
        actions: The teacher's actions, ``(n,)`` int64.
        returns: Discounted team return from that step on, ``(n,)`` float32.
        regrets: Optional ``(n, A)`` float32: how much team return each action gives up
            against the best one (a search teacher knows it); 0 where unknown or forbidden.

    """

    observations: np.ndarray
    masks: np.ndarray
    actions: np.ndarray
    returns: np.ndarray
    regrets: np.ndarray | None = None

    @staticmethod
    def concatenate(parts: list[Demonstrations]) -> Demonstrations:
        """Stack several agents' demonstrations (stations sharing one module)."""
        columns = [
            np.concatenate(column)
            for column in zip(
                *((p.observations, p.masks, p.actions, p.returns) for p in parts), strict=True
            )
        ]
        regrets = None
        if all(p.regrets is not None for p in parts):
            regrets = np.concatenate([p.regrets for p in parts])
        return Demonstrations(*columns, regrets=regrets)


def collect(
    env_id: str,
    overrides: dict[str, Any],
    episodes: int,
    seed: int,
    gamma: float,
    team_name: str = "greedy",
) -> dict[str, Demonstrations]:
    """Episodes of the scripted team ``team_name``; returns each agent's demonstrations."""
    env = make(env_id, **overrides)
    team = make_team(team_name, env)
    rows: dict[str, list[tuple]] = {agent: [] for agent in env.possible_agents}
    for episode in range(episodes):
        episode_seed = SEED_BASE + 100_000 * seed + episode
        for policy in team.values():
            policy.reset(episode_seed)
        observations, _ = env.reset(seed=episode_seed)
        trace: dict[str, list[tuple]] = {agent: [] for agent in env.possible_agents}
        for step in play(env, lambda seen: _team_actions(env, team, seen), observations):
            for agent, action in step.actions.items():
                observation = step.observations[agent]
                trace[agent].append(
                    (
                        observation["observations"],
                        observation["action_mask"],
                        action,
                        float(step.rewards[agent]),
                    )
                )
        for agent, steps in trace.items():
            to_go = 0.0
            for observation, mask, action, reward in reversed(steps):
                to_go = reward + gamma * to_go
                rows[agent].append((observation, mask, action, to_go))
    env.close()
    return {
        agent: Demonstrations(
            np.stack([r[0] for r in agent_rows]).astype(np.float32),
            np.stack([r[1] for r in agent_rows]).astype(np.int8),
            np.array([r[2] for r in agent_rows], dtype=np.int64),
            np.array([r[3] for r in agent_rows], dtype=np.float32),
        )
        for agent, agent_rows in rows.items()
    }


def joint_states(demonstrations: dict[str, Demonstrations], agents: list[str]) -> np.ndarray:
    """The team's joint state at each demonstration step: ``agents``' observations side by side.

    Every agent acts every step, so row ``j`` of each agent is the same moment.

    Raises:
        ValueError: if the agents acted a different number of steps.

    """
    if len({len(demonstrations[a].actions) for a in agents}) != 1:
        raise ValueError("demonstrations: agents acted a different number of steps")
    return np.concatenate([demonstrations[a].observations for a in agents], axis=1)


def by_module(demonstrations: dict[str, Demonstrations]) -> dict[str, Demonstrations]:
    """Pool the demonstrations of agents that share a module (the ground stations)."""
    pooled: dict[str, list[Demonstrations]] = {}
    for agent, rows in demonstrations.items():
        pooled.setdefault(module_id(agent), []).append(rows)
    return {module: Demonstrations.concatenate(parts) for module, parts in pooled.items()}


# (observations, masks) -> (masked action logits, state values), all torch tensors.
Heads = Callable[[Any, Any], tuple[Any, Any]]


def clone(
    heads: Heads,
    parameters: Any,
    rows: Demonstrations,
    epochs: int,
    seed: int,
    lr: float = 1e-3,
    batch_size: int = 256,
    value_weight: float = 0.5,
    regret_weight: float = 0.0,
) -> dict[str, float]:
    """Fit a policy to the teacher's actions and its value to their returns.

    With ``regret_weight`` and rows that carry regrets, the policy also minimises its expected
    regret ``sum_a pi(a) * regret(a)``: where agents that see the same observation face
    different states (each sees only its own), that leads it to the action best on average
    over them, which copying each state's best action does not, and it weighs a choice by
    what it is worth rather than counting every label alike.

    Returns:
        The final epoch's action accuracy and mean losses.

    """
    import torch

    generator = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(list(parameters), lr=lr)
    observations = torch.as_tensor(rows.observations)
    masks = torch.as_tensor(rows.masks.astype(np.float32))
    actions = torch.as_tensor(rows.actions)
    returns = torch.as_tensor(rows.returns)
    use_regrets = regret_weight > 0 and rows.regrets is not None
    regrets = torch.as_tensor(rows.regrets) if use_regrets else None
    metrics: dict[str, float] = {}
    for _ in range(epochs):
        order = torch.as_tensor(generator.permutation(len(actions)))
        correct, policy_loss, value_loss = 0, 0.0, 0.0
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            logits, values = heads(observations[index], masks[index])
            action_loss = torch.nn.functional.cross_entropy(logits, actions[index])
            fit_loss = torch.nn.functional.mse_loss(values.reshape(-1), returns[index])
            loss = action_loss + value_weight * fit_loss
            if regrets is not None:
                expected = (torch.softmax(logits, dim=1) * regrets[index]).sum(dim=1).mean()
                loss = loss + regret_weight * expected
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(-1) == actions[index]).sum())
            policy_loss += float(action_loss.detach()) * len(index)
            value_loss += float(fit_loss.detach()) * len(index)
        metrics = {
            "accuracy": correct / len(actions),
            "policy_loss": policy_loss / len(actions),
            "value_loss": value_loss / len(actions),
        }
    return metrics


def _team_actions(env: Any, team: dict[str, Any], observations: dict[str, Any]) -> dict:
    """The team's actions as plain ints (the demonstrations' action column)."""
    return {agent: int(team[agent](observations[agent])) for agent in env.agents}
