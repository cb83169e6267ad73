"""The RLlib module every trained policy of this project is: PPO's MLP with masked logits.

Observations are ``{"observations": Box, "action_mask": Box}`` dicts. The networks see only
``observations``; the logits of actions the mask forbids are pushed to the float minimum, so
that neither exploration nor greedy inference ever picks one and PPO's loss never credits
one (the pattern of RLlib's action-masking example, with the mask cast to float because our
masks are ``int8``). It lives in ``agents/`` because a checkpoint names its class: loading a
trained policy must not need the training package.

A centralised critic (``critic: central``, MAPPO's recipe): when the observation space also
has a ``joint_state`` Box (every agent's observation vector of the episode at that step, as
the batch sampler adds it), the actor and the critic get separate encoders; the actor's reads
``observations`` alone and the critic's reads ``observations`` followed by ``joint_state``.
Only :meth:`~MaskedPPOTorchModule.compute_values` and the training forward pass need the joint
state, so the exported module flies a ParallelEnv whose observations lack it, and a deployed
agent checks its environment against :attr:`~MaskedPPOTorchModule.policy_observation_space`.

Module ids are roles (:func:`phobos.agents.roles.module_id`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import gymnasium
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.models.base import ENCODER_OUT
from ray.rllib.utils.torch_utils import FLOAT_MIN

from phobos.agents.activations import use_numpy_tanh

POLICY_KEYS = ("observations", "action_mask")
"""What an agent's environment gives it, and all the actor reads."""
JOINT_STATE = "joint_state"
"""The observation key of the team's joint state, read by a central critic only."""

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
        observation_space: The agent's ``Dict`` space with ``observations`` and
            ``action_mask``, and ``joint_state`` for a centralised critic (which needs
            ``model_config["vf_share_layers"]`` False: the actor must not share its encoder).
        **kwargs: Passed to ``DefaultPPOTorchRLModule`` (``action_space``, ``model_config``, ...).

    Attributes:
        central: Whether the critic is central (the space has ``joint_state``).
        policy_observation_space: What a deployed agent's environment gives it and the actor
            reads: ``observations`` and ``action_mask``, never the joint state.

    """

    def __init__(self, *, observation_space: gymnasium.spaces.Dict, **kwargs: Any) -> None:
        keys = set(getattr(observation_space, "spaces", ()))
        if not isinstance(observation_space, gymnasium.spaces.Dict) or keys not in (
            set(POLICY_KEYS),
            {*POLICY_KEYS, JOINT_STATE},
        ):
            raise ValueError(
                "MaskedPPOTorchModule needs a Dict observation space with exactly "
                f"'observations' and 'action_mask' (and optionally 'joint_state'), got "
                f"{observation_space}"
            )
        self._space_with_mask = observation_space
        self.central = JOINT_STATE in keys
        self.policy_observation_space = gymnasium.spaces.Dict(
            {key: observation_space[key] for key in POLICY_KEYS}
        )
        super().__init__(observation_space=observation_space["observations"], **kwargs)

    def setup(self) -> None:
        """Build PPO's networks for the inner space, then expose the full (masked) one.

        A central critic's encoder is rebuilt for the wider input (own observation, then the
        joint state); inference-only modules (the samplers') have no critic to rebuild.
        """
        super().setup()
        if self.central:
            if self.catalog.actor_critic_encoder_config.shared:
                raise ValueError(
                    "a central critic (observation space with 'joint_state') needs "
                    "model_config vf_share_layers=False: the actor must not see the joint state"
                )
            if self.encoder.critic_encoder is not None:
                base = self.catalog.actor_critic_encoder_config.base_encoder_config
                width = self._space_with_mask["observations"].shape[0]
                width += self._space_with_mask[JOINT_STATE].shape[0]
                wide = dataclasses.replace(base, input_dims=[width])
                self.encoder.critic_encoder = wide.build(framework=self.framework)
        use_numpy_tanh(self)  # RLlib's fcnet "tanh" is torch's, 8-13x slower on the CPU
        self.observation_space = self._space_with_mask

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mask, batch = self._split(batch)  # inference and exploration both come here
        if self.central:  # the actor alone: a deployed agent has no joint state
            return self._mask({Columns.ACTION_DIST_INPUTS: self._actor_logits(batch)}, mask)
        return self._mask(super()._forward(batch, **kwargs), mask)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mask, batch = self._split(batch)
        if self.central:
            outputs = {
                Columns.ACTION_DIST_INPUTS: self._actor_logits(batch),
                Columns.EMBEDDINGS: self._critic_embeddings(batch),
            }
            return self._mask(outputs, mask)
        return self._mask(super()._forward_train(batch, **kwargs), mask)

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> Any:
        """Values of the inner observations (the mask does not change a state's value).

        A central critic's value also reads the batch's joint state.
        """
        _, batch = self._split(batch)
        if self.central and embeddings is None:
            embeddings = self._critic_embeddings(batch)
        return super().compute_values(batch, embeddings)

    def _actor_logits(self, batch: dict[str, Any]) -> Any:
        return self.pi(self.encoder.actor_encoder(batch)[ENCODER_OUT])

    def _critic_embeddings(self, batch: dict[str, Any]) -> Any:
        joint = batch.get("_joint_state")
        if joint is None:
            raise ValueError(
                "this module's critic is central: its values need the observations' "
                "'joint_state' (the batch sampler adds it); acting does not"
            )
        inputs = torch.cat([batch[Columns.OBS], joint], dim=-1)
        return self.encoder.critic_encoder({Columns.OBS: inputs})[ENCODER_OUT]

    @staticmethod
    def _split(batch: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        observation = batch[Columns.OBS]
        if not isinstance(observation, dict):  # already split by an earlier call on this batch
            return batch["_action_mask"], batch
        batch = dict(batch)
        batch[Columns.OBS] = observation["observations"]
        batch["_action_mask"] = observation["action_mask"]
        if JOINT_STATE in observation:
            batch["_joint_state"] = observation[JOINT_STATE]
        return batch["_action_mask"], batch

    @staticmethod
    def _mask(outputs: dict[str, Any], mask: Any) -> dict[str, Any]:
        logits = outputs[Columns.ACTION_DIST_INPUTS]
        outputs[Columns.ACTION_DIST_INPUTS] = logits.masked_fill(mask <= 0, FLOAT_MIN)
        return outputs
