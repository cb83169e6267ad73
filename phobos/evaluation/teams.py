"""Which policy flies each agent: team specs, and loaders for trained policies.

A team spec is a string: a base team for every agent, then optional ``agent=policy``
overrides, comma separated::

    greedy                                  # every agent greedy
    random,yinghuo1=greedy                  # random team, greedy Yinghuo-1
    greedy,phobos_grunt=sb3:runs/pg.zip     # a Stable-Baselines3 model flies Phobos-Grunt
    greedy,phobos_grunt=rllib:runs/ckpt     # an RLlib checkpoint (its RLModule) flies it

Base teams are those of :func:`phobos.agents.make_team` (``random``, ``greedy``; for the
sampling task also ``cautious`` and ``oracle``). ``sb3:PATH`` loads a PPO model (``sb3:PATH@A2C``
or ``@DQN`` for another algorithm); ``rllib:PATH`` an RLlib ``RLModule`` checkpoint, taking the
module named after the agent, else ``default_policy``. Every loaded policy's observation and
action spaces must equal the agent's in the environment, or the spec is refused before any
episode runs. Everything goes behind the :class:`~phobos.agents.policy.Policy` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phobos.agents import make_team, policy_names
from phobos.agents.policy import Policy

_SB3_ALGORITHMS = ("PPO", "A2C", "DQN")


@dataclass(frozen=True)
class TeamSpec:
    """A parsed team spec.

    Attributes:
        base: The team every agent starts from (a :func:`make_team` name).
        overrides: ``(agent, policy)`` pairs replacing the base team's policy for ``agent``.

    """

    base: str
    overrides: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """The spec as written: the team's name in tables and figures."""
        return ",".join([self.base, *(f"{agent}={name}" for agent, name in self.overrides)])

    @classmethod
    def parse(cls, text: str) -> TeamSpec:
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
        return cls(parts[0], tuple(overrides))


def build_team(spec: TeamSpec, env: Any, seed: int | None = None) -> dict[str, Policy]:
    """Policies for every agent of ``env``; raises ValueError for anything that cannot fly it."""
    team = make_team(spec.base, env, seed=seed)
    for agent, name in spec.overrides:
        if agent not in env.possible_agents:
            raise ValueError(
                f"team {spec.label!r}: unknown agent {agent!r}; "
                f"agents are {', '.join(env.possible_agents)}"
            )
        if name.startswith("sb3:"):
            team[agent] = load_sb3(name[4:], env, agent)
        elif name.startswith("rllib:"):
            team[agent] = load_rllib(name[6:], env, agent)
        elif name in policy_names(env):
            team[agent] = make_team(name, env, seed=seed)[agent]
        else:
            raise ValueError(
                f"team {spec.label!r}: unknown policy {name!r} for {agent}; choose from "
                f"{', '.join(policy_names(env))}, sb3:PATH or rllib:PATH"
            )
    return team


def _check_spaces(source: str, observation_space: Any, action_space: Any, env: Any, agent: str):
    if observation_space != env.observation_space(agent) or action_space != env.action_space(agent):
        raise ValueError(
            f"{source} does not match {agent} in this environment: it expects observations "
            f"{observation_space} and actions {action_space}, the environment gives "
            f"{env.observation_space(agent)} and {env.action_space(agent)}"
        )


def _masked_argmax(scores: np.ndarray, observation: Any) -> int:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if isinstance(observation, dict) and "action_mask" in observation:
        scores = np.where(np.asarray(observation["action_mask"]) > 0, scores, -np.inf)
    return int(np.argmax(scores))


class SB3Policy(Policy):
    """A Stable-Baselines3 model behind the Policy protocol (deterministic actions).

    Args:
        model: A loaded ``BaseAlgorithm``.

    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def act(self, observation: Any) -> int:
        """The model's deterministic action; a masked choice becomes the env's idle."""
        action, _ = self.model.predict(observation, deterministic=True)
        return int(np.asarray(action).reshape(-1)[0])


def load_sb3(reference: str, env: Any, agent: str) -> SB3Policy:
    """Load ``PATH[@ALGO]`` (PPO by default) and check it against ``agent``'s spaces."""
    path, _, algorithm = reference.partition("@")
    algorithm = algorithm or "PPO"
    if algorithm not in _SB3_ALGORITHMS:
        raise ValueError(f"sb3 algorithm {algorithm!r}; choose from {', '.join(_SB3_ALGORITHMS)}")
    if not Path(path).exists():
        raise ValueError(f"sb3 checkpoint {path!r} does not exist")
    import stable_baselines3

    try:
        model = getattr(stable_baselines3, algorithm).load(path, device="cpu")
    except Exception as error:  # noqa: BLE001 - any load failure is a bad checkpoint
        raise ValueError(
            f"sb3 checkpoint {path!r} cannot be loaded as {algorithm}: {error}"
        ) from error
    _check_spaces(
        f"sb3 checkpoint {path!r}", model.observation_space, model.action_space, env, agent
    )
    return SB3Policy(model)


class RLlibPolicy(Policy):
    """An RLlib ``RLModule`` behind the Policy protocol: greedy over the allowed logits.

    Args:
        module: The loaded (torch) ``RLModule``.

    """

    def __init__(self, module: Any) -> None:
        self.module = module

    def act(self, observation: Any) -> int:
        """Argmax of the module's action logits over the actions the mask allows."""
        import torch

        def batch(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: batch(v) for k, v in x.items()}
            return torch.as_tensor(np.asarray(x))[None]

        with torch.no_grad():
            out = self.module.forward_inference({"obs": batch(observation)})
        return _masked_argmax(out["action_dist_inputs"][0].numpy(), observation)


def load_rllib(path: str, env: Any, agent: str) -> RLlibPolicy:
    """Load an RLModule checkpoint at ``path`` and check it against ``agent``'s spaces."""
    if not Path(path).exists():
        raise ValueError(f"rllib checkpoint {path!r} does not exist")
    from ray.rllib.core.rl_module.rl_module import RLModule

    try:
        module = RLModule.from_checkpoint(path)
    except Exception as error:  # noqa: BLE001 - any load failure is a bad checkpoint
        raise ValueError(f"rllib checkpoint {path!r} cannot be loaded: {error}") from error
    modules = getattr(module, "_rl_modules", None)
    if modules is not None:  # a MultiRLModule: one module per policy id
        key = agent if agent in modules else "default_policy"
        if key not in modules:
            raise ValueError(
                f"rllib checkpoint {path!r} has no module for {agent} (modules: "
                f"{', '.join(modules)})"
            )
        module = modules[key]
    _check_spaces(
        f"rllib checkpoint {path!r}", module.observation_space, module.action_space, env, agent
    )
    return RLlibPolicy(module)
