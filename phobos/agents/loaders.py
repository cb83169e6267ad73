"""Trained policies behind the :class:`~phobos.agents.policy.Policy` protocol.

``load_sb3`` loads a Stable-Baselines3 model zip and ``load_rllib`` an RLlib ``RLModule``
checkpoint (no Ray cluster needed). Each refuses a policy whose observation or action space
differs from the agent's in the environment, before any episode runs, and acts greedily
among the actions the observation's mask allows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from phobos.agents.policy import Policy

_SB3_ALGORITHMS = ("PPO", "A2C", "DQN")


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
