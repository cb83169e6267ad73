"""Agents: the Policy protocol, random and scripted baselines, team builders."""

from phobos.agents.policy import Policy, RandomPolicy
from phobos.agents.teams import make_team, policy_names

__all__ = ["Policy", "RandomPolicy", "make_team", "policy_names"]
