"""Which trained module an agent's policy is: one per spacecraft, one shared by every station.

Sharing the ground module means a policy trained with three stations flies any station list,
and the three stations learn from three times the data.
"""

from __future__ import annotations


def module_id(agent: str) -> str:
    """The module an agent's policy is: ``ground`` for every ``ground_*`` station, else the id."""
    return "ground" if agent.startswith("ground_") else agent
