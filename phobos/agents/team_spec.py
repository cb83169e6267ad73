"""Team specs: which policy flies each agent, as one string (evaluation and the demo parse it).

A team spec is a string: a base team for every agent, then optional ``agent=policy``
overrides, comma separated::

    greedy                                  # every agent greedy
    random,yinghuo1=greedy                  # random team, greedy Yinghuo-1
    greedy,phobos_grunt=sb3:runs/pg.zip     # a Stable-Baselines3 model flies Phobos-Grunt
    greedy,phobos_grunt=rllib:runs/ckpt     # an RLlib checkpoint (its RLModule) flies it
    rllib:runs/train/orbit/policy           # every agent flies its role's trained module
    shared:runs/train/orbit/policy          # every agent flies one shared network (no pickle)

Base teams are those of :func:`phobos.agents.make_team` (``random``, ``greedy``; for the
sampling task also ``cautious`` and ``oracle``). ``sb3:PATH`` loads a MaskablePPO model, what
``phobos train`` makes (``sb3:PATH@PPO``, ``@A2C`` or ``@DQN`` for another algorithm).
``rllib:PATH`` loads an RLlib ``RLModule`` checkpoint (the exported ``policy/`` folder of
``phobos train``, or a module folder inside an algorithm checkpoint), taking the module of the
agent's role (:func:`~phobos.agents.roles.module_id`), else ``default_policy``; as the base team,
every agent flies its role's module. ``shared:PATH`` (base team only) loads a shared-network
team policy (:mod:`~phobos.agents.shared_policy`: safetensors and JSON, no pickle), what the
batch sampler of ``phobos train`` exports. Every loaded policy's observation and
action spaces must equal the agent's in the environment, or the spec is refused before any
episode runs. Everything goes behind the :class:`~phobos.agents.policy.Policy` protocol.

``sb3:`` and ``rllib:`` checkpoints are pickles, which run code when loaded: they load only
from a spec marked trusted (``TeamSpec.parse(text, trust=True)``, ``build_team(...,
trust=True)``; ``--trust-checkpoint`` on the command line). ``shared:`` never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from phobos.agents import make_team, policy_names
from phobos.agents.loaders import load_rllib, load_sb3
from phobos.agents.policy import Policy
from phobos.agents.shared_policy import load_shared_team


@dataclass(frozen=True)
class TeamSpec:
    """A parsed team spec.

    Attributes:
        base: The team every agent starts from (a :func:`make_team` name).
        overrides: ``(agent, policy)`` pairs replacing the base team's policy for ``agent``.
        trust: Pickle-based checkpoints may load (see the module docstring).

    """

    base: str
    overrides: tuple[tuple[str, str], ...] = ()
    trust: bool = False
    """Whether pickle-based checkpoints (``sb3:``, ``rllib:``) of this spec may load; it
    travels with the spec (to evaluation's workers) and is not part of its label."""

    @property
    def label(self) -> str:
        """The spec as written: the team's name in tables and figures."""
        return ",".join([self.base, *(f"{agent}={name}" for agent, name in self.overrides)])

    @classmethod
    def parse(cls, text: str, trust: bool = False) -> TeamSpec:
        """Parse ``base[,agent=policy...]``; raises ValueError on a malformed spec."""
        parts = [part.strip() for part in str(text).split(",")]
        if not parts[0] or "=" in parts[0]:
            raise ValueError(f"team spec {text!r} must start with a base team such as 'greedy'")
        overrides = []
        for part in parts[1:]:
            agent, sep, name = part.partition("=")
            if not sep or not agent or not name:
                raise ValueError(f"team spec {text!r}: {part!r} is not agent=policy")
            overrides.append((agent.strip(), name.strip()))
        return cls(parts[0], tuple(overrides), trust)


def build_team(
    spec: TeamSpec, env: Any, seed: int | None = None, *, trust: bool = False
) -> dict[str, Policy]:
    """Policies for every agent of ``env``; raises ValueError for anything that cannot fly it.

    ``trust`` (or the spec's own) lets ``sb3:`` and ``rllib:`` pickles load.
    """
    trust = trust or spec.trust
    if spec.base.startswith("rllib:"):  # a trained team: every agent flies its role's module
        team = {
            agent: load_rllib(spec.base[6:], env, agent, trust=trust)
            for agent in env.possible_agents
        }
    elif spec.base.startswith("shared:"):
        team = load_shared_team(spec.base[7:], env)
    else:
        team = make_team(spec.base, env, seed=seed)
    for agent, name in spec.overrides:
        if agent not in env.possible_agents:
            raise ValueError(
                f"team {spec.label!r}: unknown agent {agent!r}; "
                f"agents are {', '.join(env.possible_agents)}"
            )
        if name.startswith("sb3:"):
            team[agent] = load_sb3(name[4:], env, agent, trust=trust)
        elif name.startswith("rllib:"):
            team[agent] = load_rllib(name[6:], env, agent, trust=trust)
        elif name in policy_names(env):
            team[agent] = make_team(name, env, seed=seed)[agent]
        else:
            raise ValueError(
                f"team {spec.label!r}: unknown policy {name!r} for {agent}; choose from "
                f"{', '.join(policy_names(env))}, sb3:PATH or rllib:PATH"
            )
    return team
