"""A centralised critic for the shared-network team (MAPPO's recipe, Yu et al. 2022).

With ``critic: central`` each slot's observation is its own input (observation and role
one-hot) followed by the team's joint state: every agent's observation of that episode this
step. The actor reads only the first ``actor_inputs`` values, so the deployed agents stay
decentralised and the exported policy is the same as with an independent critic; the value
function reads everything, which is what a task scored as a team gives it to learn from.

This is the Stable-Baselines3 side (``framework: sb3``). RLlib's (``framework: rllib``, one
module per role) is :class:`~phobos.agents.rl_module.MaskedPPOTorchModule` with a
``joint_state`` observation key, which :class:`~phobos.training.rllib_batch.BatchEnvRunner`
adds; both need the batch sampler, whose core steps every agent of an episode together.
"""

from __future__ import annotations

from typing import Any

import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from torch import nn


def _mlp(inputs: int, hidden: list[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(inputs, size), activation()]
        inputs = size
    return nn.Sequential(*layers)


class SplitMlpExtractor(nn.Module):
    """SB3's ``MlpExtractor`` with the actor on the first ``actor_inputs`` features only.

    Args:
        actor_inputs: Leading features the actor sees (own observation and role).
        features: All features (the critic sees them all).
        hidden: Hidden sizes of each network.
        activation: Activation class.
        actor: The actor network instead of an MLP of ``hidden``, with the width of its output
            (the cell-set actor, whose output is already the logits).

    """

    def __init__(
        self,
        actor_inputs: int,
        features: int,
        hidden: list[int],
        activation: type[nn.Module],
        actor: tuple[nn.Module, int] | None = None,
    ) -> None:
        super().__init__()
        self.actor_inputs = actor_inputs
        # Named as SB3 names them, so exports read the same keys with either critic.
        self.policy_net = _mlp(actor_inputs, hidden, activation) if actor is None else actor[0]
        self.value_net = _mlp(features, hidden, activation)
        self.latent_dim_pi = self.latent_dim_vf = hidden[-1] if hidden else features
        if actor is not None:
            self.latent_dim_pi = actor[1]

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actor and critic latents."""
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        """The actor's latent, from the agent's own inputs."""
        return self.policy_net(features[:, : self.actor_inputs])

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        """The critic's latent, from the joint state as well."""
        return self.value_net(features)


class CentralCriticPolicy(MaskableActorCriticPolicy):
    """MaskablePPO's policy with :class:`SplitMlpExtractor`.

    Args:
        *args: As ``MaskableActorCriticPolicy``.
        actor_inputs: Leading observation values the actor sees.
        **kwargs: As ``MaskableActorCriticPolicy`` (``net_arch`` a list of hidden sizes).

    """

    def __init__(self, *args: Any, actor_inputs: int, **kwargs: Any) -> None:
        self.actor_inputs = actor_inputs
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        if not isinstance(self.net_arch, list):
            raise ValueError("CentralCriticPolicy takes net_arch as a list of hidden sizes")
        self.mlp_extractor = SplitMlpExtractor(
            self.actor_inputs, self.features_dim, list(self.net_arch), self.activation_fn
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return super()._get_constructor_parameters() | {"actor_inputs": self.actor_inputs}
