"""The cell-set actor in torch, for MaskablePPO on the batch path (``policy_network: cells``).

The same network as :class:`~phobos.agents.shared_policy.SharedActor` computes from a
``phobos-shared-cells/1`` spec (see :attr:`~phobos.agents.shared_policy.SharedPolicySpec.
cells`): one MLP shared by every cell of the site scores each cell's actions; the cells' mean
latent with the header and the role gives the other actions' logits. The greedy lander picks
the best of 36 cells by a score of each cell's own features; a flat MLP over the 590 values of
an observation matched only 91% of its choices after cloning, this network learns the rule
once for all cells. The critic is the plain MLP over everything it is given (the joint state
with ``critic: central``).
"""

from __future__ import annotations

from typing import Any

import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from torch import nn

from phobos.agents.cell_actor import area_means
from phobos.training.central_critic import SplitMlpExtractor, _mlp


class CellSetActor(nn.Module):
    """Logits ``[batch, actions]`` of ``[batch, observation + roles]`` actor inputs.

    Args:
        cells: ``(header, count, size)`` of the observation.
        roles: Role names in one-hot order.
        cell_actions: Per role, ``(first action, group)`` pairs scored by the cells.
        actions: Logits per agent.
        hidden: Hidden sizes of the shared cell MLP (the last also sizes the mixing layer).
        activation: Activation class.
        areas: The cells of each area, or None; with ``area_actions`` (per role, the first of
            its one-per-area actions) those actions are scored from their area's mean latent.
        area_actions: See ``areas``.

    """

    def __init__(
        self,
        cells: tuple[int, int, int],
        roles: tuple[str, ...],
        cell_actions: dict[str, tuple[tuple[int, int], ...]],
        actions: int,
        hidden: list[int],
        activation: type[nn.Module],
        areas: tuple[tuple[int, ...], ...] | None = None,
        area_actions: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.header, self.count, self.size = cells
        self.roles, self.cell_actions = roles, cell_actions
        context = self.header + len(roles)
        groups = 1 + max(g for pairs in cell_actions.values() for _, g in pairs)
        self.cell = _mlp(self.size + context, hidden, activation)
        self.cell_logits = nn.Linear(hidden[-1], groups)
        self.mix = nn.Linear(context + hidden[-1], hidden[-1])
        self.logits = nn.Linear(hidden[-1], actions)
        self.activation = activation()
        self.area_actions = dict(area_actions or {})
        if areas is not None:
            self.area_logits = nn.Linear(hidden[-1], 1)
            self.register_buffer("area_means", torch.as_tensor(area_means(areas, self.count)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every action's logit."""
        observation = self.header + self.count * self.size
        context = torch.cat([x[:, : self.header], x[:, observation:]], dim=1)
        cells = x[:, self.header : observation].reshape(len(x), self.count, self.size)
        # The first layer over [cell, context] as its two halves: the context's half once per
        # row, not once per cell (the same weights; about 1.15x the lander's training rate).
        first = self.cell[0]
        shared = nn.functional.linear(context, first.weight[:, self.size :], first.bias)
        h = self.cell[1:](cells @ first.weight[:, : self.size].T + shared[:, None, :])
        scores = self.cell_logits(h)  # [batch, count, groups]
        mixed = self.activation(self.mix(torch.cat([context, h.mean(dim=1)], dim=1)))
        logits = self.logits(mixed)
        areas = None
        if self.area_actions:
            pooled = torch.matmul(self.area_means, h)  # [areas, cells] @ [batch, cells, h]
            areas = self.area_logits(pooled)[..., 0]  # [batch, areas]
        role = x[:, observation:].argmax(dim=1)
        out = logits
        for r, name in enumerate(self.roles):
            replaced = logits
            for first, group in self.cell_actions.get(name, ()):
                # Built by concatenation: an in-place write would break autograd's record.
                replaced = torch.cat(
                    [replaced[:, :first], scores[:, :, group], replaced[:, first + self.count :]],
                    dim=1,
                )
            first = self.area_actions.get(name)
            if first is not None and areas is not None:
                end = first + areas.shape[1]
                replaced = torch.cat([replaced[:, :first], areas, replaced[:, end:]], dim=1)
            out = torch.where((role == r)[:, None], replaced, out)
        return out


class CellSetPolicy(MaskableActorCriticPolicy):
    """MaskablePPO's policy with the cell-set actor.

    Args:
        *args: As ``MaskableActorCriticPolicy``.
        actor_inputs: Leading observation values the actor sees.
        cells: ``(header, count, size)``.
        roles: Role names in one-hot order.
        cell_actions: Per role, ``(first action, group)`` pairs.
        **kwargs: As ``MaskableActorCriticPolicy`` (``net_arch`` a list of hidden sizes).

    """

    def __init__(
        self,
        *args: Any,
        actor_inputs: int,
        cells: tuple[int, int, int],
        roles: tuple[str, ...],
        cell_actions: dict[str, tuple[tuple[int, int], ...]],
        areas: tuple[tuple[int, ...], ...] | None = None,
        area_actions: dict[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        self.actor_inputs, self.cells = actor_inputs, tuple(cells)
        self.roles, self.cell_actions = tuple(roles), dict(cell_actions)
        self.areas, self.area_actions = areas, area_actions
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        if not isinstance(self.net_arch, list):
            raise ValueError("CellSetPolicy takes net_arch as a list of hidden sizes")
        hidden = list(self.net_arch)
        actor = CellSetActor(
            self.cells,
            self.roles,
            self.cell_actions,
            int(self.action_space.n),
            hidden,
            self.activation_fn,
            self.areas,
            self.area_actions,
        )
        # The actor's latent is the logits: _build makes action_net the identity.
        self.mlp_extractor = SplitMlpExtractor(
            self.actor_inputs,
            self.features_dim,
            hidden,
            self.activation_fn,
            actor=(actor, actor.logits.out_features),
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # the extractor's actor latent is the logits
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return super()._get_constructor_parameters() | {
            "actor_inputs": self.actor_inputs,
            "cells": self.cells,
            "roles": self.roles,
            "cell_actions": self.cell_actions,
            "areas": self.areas,
            "area_actions": self.area_actions,
        }


def actor_tensors(policy: CellSetPolicy) -> dict[str, torch.Tensor]:
    """The cell-set actor's and the critic's weights under the shared format's names."""
    actor = policy.mlp_extractor.policy_net
    tensors: dict[str, torch.Tensor] = {}
    linears = [m for m in actor.cell if isinstance(m, nn.Linear)]
    named = [(f"actor.cell.{i}", layer) for i, layer in enumerate(linears)]
    named += [
        ("actor.cell_logits", actor.cell_logits),
        ("actor.mix", actor.mix),
        ("actor.logits", actor.logits),
    ]
    if actor.area_actions:
        named.append(("actor.area_logits", actor.area_logits))
    critic = [m for m in policy.mlp_extractor.value_net if isinstance(m, nn.Linear)]
    named += [(f"critic.{i}", layer) for i, layer in enumerate(critic)]
    named.append(("critic.value", policy.value_net))
    for name, layer in named:
        tensors[f"{name}.weight"] = layer.weight
        tensors[f"{name}.bias"] = layer.bias
    return tensors
