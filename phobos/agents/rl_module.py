"""The RLlib module every trained policy of this project is: PPO's MLP with masked logits.

Observations are ``{"observations": Box, "action_mask": Box}`` dicts. The networks see only
``observations``; the logits of actions the mask forbids are pushed to the float minimum, so
that neither exploration nor greedy inference ever picks one and PPO's loss never credits
one (the pattern of RLlib's action-masking example, with the mask cast to float because our
masks are ``int8``). It lives in ``agents/`` because a checkpoint names its class: loading a
trained policy must not need the training package.

Module ids are roles (:func:`phobos.agents.roles.module_id`).
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.utils.torch_utils import FLOAT_MIN

RLMODULE_CONFIG_DEPRECATION = "RLModule(config=[RLModuleConfig object])"
"""The deprecation RLlib 2.60 logs for every ``RLModule`` built: ``RLModule.__init__`` itself
makes an ``RLModuleConfig`` (the deprecated class) for legacy subclasses, however the module is
built (``RLModuleSpec.build``, ``from_checkpoint``, keyword arguments). Nothing the caller
does avoids it, so :func:`quiet_rllib_module_deprecation` drops exactly that record."""


class _DropModuleConfigDeprecation(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return RLMODULE_CONFIG_DEPRECATION not in record.getMessage()


def quiet_rllib_module_deprecation() -> None:
    """Drop RLlib's own ``RLModuleConfig`` deprecation record in this process (idempotent).

    Only that record: every other RLlib deprecation still reaches the log.
    """
    logger = logging.getLogger("ray._common.deprecation")  # where RLlib logs deprecations
    if not any(isinstance(f, _DropModuleConfigDeprecation) for f in logger.filters):
        logger.addFilter(_DropModuleConfigDeprecation())


# Importing this module is how every process that builds one (agent, evaluation worker, env
# runner, learner) gets its class, so that is where the filter is installed.
quiet_rllib_module_deprecation()


class MaskedPPOTorchModule(DefaultPPOTorchRLModule):
    """PPO's default torch module over ``observations``, with logits masked by ``action_mask``.

    Args:
        observation_space: The agent's ``Dict`` space with ``observations`` and ``action_mask``.
        **kwargs: Passed to ``DefaultPPOTorchRLModule`` (``action_space``, ``model_config``, ...).

    """

    def __init__(self, *, observation_space: gymnasium.spaces.Dict, **kwargs: Any) -> None:
        if not isinstance(observation_space, gymnasium.spaces.Dict) or set(
            observation_space.spaces
        ) != {"observations", "action_mask"}:
            raise ValueError(
                "MaskedPPOTorchModule needs a Dict observation space with exactly "
                f"'observations' and 'action_mask', got {observation_space}"
            )
        self._space_with_mask = observation_space
        super().__init__(observation_space=observation_space["observations"], **kwargs)

    def setup(self) -> None:
        """Build PPO's networks for the inner space, then expose the full (masked) one."""
        super().setup()
        self.observation_space = self._space_with_mask

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mask, batch = self._split(batch)  # inference and exploration both come here
        return self._mask(super()._forward(batch, **kwargs), mask)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mask, batch = self._split(batch)
        return self._mask(super()._forward_train(batch, **kwargs), mask)

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> Any:
        """Values of the inner observations (the mask does not change a state's value)."""
        _, batch = self._split(batch)
        return super().compute_values(batch, embeddings)

    @staticmethod
    def _split(batch: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        observation = batch[Columns.OBS]
        if not isinstance(observation, dict):  # already split by an earlier call on this batch
            return batch["_action_mask"], batch
        batch = dict(batch)
        batch[Columns.OBS] = observation["observations"]
        batch["_action_mask"] = observation["action_mask"]
        return batch["_action_mask"], batch

    @staticmethod
    def _mask(outputs: dict[str, Any], mask: Any) -> dict[str, Any]:
        logits = outputs[Columns.ACTION_DIST_INPUTS]
        outputs[Columns.ACTION_DIST_INPUTS] = logits.masked_fill(mask <= 0, FLOAT_MIN)
        return outputs
