"""The cell-set actor of a shared policy spec: its fields' parsing, its layers, its forward pass.

:attr:`~phobos.agents.shared_policy.SharedPolicySpec.cells` describes an observation that is a
header then one block per cell of a site. One MLP shared by the cells scores each cell's
actions; the cells' mean latent, the header and the role give the other actions. With
``areas`` (format ``phobos-shared-cells/2``), actions that act on a group of cells (image an
area) are scored from the mean latent of that group's cells (``actor.area_logits``): which
area is the vaguest is a comparison of its cells, which the one mean over all cells hides.
Every field is parsed as hostile input: bounded counts, indices in range.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_AREAS = 64


def positive(value: Any, name: str) -> int:
    """``value`` as an int in 1..1,000,000; TypeError naming the field otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 1_000_000:
        raise TypeError(name)
    return value


def natural(value: Any, name: str) -> int:
    """``value`` as an int in 0..1,000,000; TypeError naming the field otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1_000_000:
        raise TypeError(name)
    return value


def parse_cells(value: Any) -> tuple[int, int, int]:
    """``(header, count, size)``."""
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise TypeError("cells")
    header, count, size = (positive(v, "cells") for v in value)
    return header, count, size


def parse_cell_actions(value: Any) -> dict[str, tuple[tuple[int, int], ...]]:
    """Per role, ``(first action, group)`` pairs."""
    if not isinstance(value, dict) or len(value) > 64:
        raise TypeError("cell_actions")
    out = {}
    for role, pairs in value.items():
        if not isinstance(pairs, list | tuple) or len(pairs) > 16:
            raise TypeError("cell_actions")
        checked = []
        for pair in pairs:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise TypeError("cell_actions")
            checked.append((positive(pair[0], "cell_actions"), natural(pair[1], "cell_actions")))
        out[str(role)] = tuple(checked)
    return out


def parse_areas(value: Any) -> tuple[tuple[int, ...], ...]:
    """The cells of each area (indices checked against the cell count by :func:`check_cells`)."""
    if not isinstance(value, list | tuple) or not 0 < len(value) <= MAX_AREAS:
        raise TypeError("areas")
    areas = []
    for cells in value:
        if not isinstance(cells, list | tuple) or not 0 < len(cells) <= 4096:
            raise TypeError("areas")
        areas.append(tuple(natural(c, "areas") for c in cells))
    return tuple(areas)


def parse_area_actions(value: Any) -> dict[str, int]:
    """Per role, the first of its one-per-area actions."""
    if not isinstance(value, dict) or len(value) > 64:
        raise TypeError("area_actions")
    return {str(role): positive(first, "area_actions") for role, first in value.items()}


def check_cells(spec: Any, source: str) -> None:
    """Refuse a cell-set spec whose layout cannot fit its observation and actions."""
    header, count, size = spec.cells
    if header + count * size != spec.observation_size:
        raise ValueError(
            f"{source}: cells {list(spec.cells)} do not make an observation of "
            f"{spec.observation_size} values"
        )
    if spec.inputs != ("observations", "role") or spec.per_role:
        raise ValueError(f"{source}: the cell-set actor reads observations then role, shared")
    for role, pairs in (spec.cell_actions or {}).items():
        if role not in spec.roles:
            raise ValueError(f"{source}: cell_actions for unknown role {role!r}")
        for first, _ in pairs:
            if first + count > spec.action_count:
                raise ValueError(
                    f"{source}: cell actions {first}..{first + count - 1} of {role!r} exceed "
                    f"the {spec.action_count} actions"
                )
    if (spec.areas is None) != (spec.area_actions is None):
        raise ValueError(f"{source}: areas and area_actions come together")
    for cells in spec.areas or ():
        if max(cells) >= count:
            raise ValueError(f"{source}: an area names cell {max(cells)} of {count}")
    for role, first in (spec.area_actions or {}).items():
        if role not in spec.roles:
            raise ValueError(f"{source}: area_actions for unknown role {role!r}")
        if first + len(spec.areas) > spec.action_count:
            raise ValueError(
                f"{source}: area actions {first}..{first + len(spec.areas) - 1} of {role!r} "
                f"exceed the {spec.action_count} actions"
            )


def cell_groups(spec: Any) -> int:
    """Scores per cell of the cell-set actor (0 for the MLP)."""
    if spec.cells is None or not spec.cell_actions:
        return 0
    return 1 + max(group for pairs in spec.cell_actions.values() for _, group in pairs)


def cell_layers(spec: Any, prefix: str) -> list[tuple[str, tuple[int, int]]]:
    """``(weight name, (out, in))`` of each linear layer of a cell-set actor."""
    header, _, size = spec.cells
    context = header + len(spec.roles)
    sizes = [size + context, *spec.hidden]
    layers = [(f"{prefix}.cell.{i}", (sizes[i + 1], sizes[i])) for i in range(len(spec.hidden))]
    latent = spec.hidden[-1]
    layers += [
        (f"{prefix}.cell_logits", (cell_groups(spec), latent)),
        (f"{prefix}.mix", (latent, context + latent)),
        (f"{prefix}.logits", (spec.action_count, latent)),
    ]
    if spec.areas is not None:
        layers.append((f"{prefix}.area_logits", (1, latent)))
    return layers


def area_means(areas: tuple[tuple[int, ...], ...], count: int) -> np.ndarray:
    """``[areas, count]`` weights whose product with cell latents is each area's mean."""
    weights = np.zeros((len(areas), count), dtype=np.float32)
    for a, cells in enumerate(areas):
        weights[a, list(cells)] = 1.0 / len(cells)
    return weights


def cell_logits(
    spec: Any, layers: list[tuple[np.ndarray, np.ndarray]], activation: Any, x: np.ndarray
) -> np.ndarray:
    """``[batch, action_count]`` logits of the cell-set actor (numpy, float32 ``x``)."""
    header, count, size = spec.cells
    depth = len(spec.hidden)
    cell_layers_, heads = layers[:depth], layers[depth:]
    (score_w, score_b), (mix_w, mix_b), (out_w, out_b) = heads[:3]
    batch = len(x)
    context = np.concatenate([x[:, :header], x[:, spec.observation_size :]], axis=1)
    cells = x[:, header : spec.observation_size].reshape(batch, count, size)
    h = np.concatenate(
        [cells, np.broadcast_to(context[:, None], (batch, count, context.shape[1]))], axis=2
    )
    for weight, bias in cell_layers_:
        h = activation(h @ weight.T + bias)
    scores = h @ score_w.T + score_b  # [batch, count, groups]
    mixed = activation(np.concatenate([context, h.mean(axis=1)], axis=1) @ mix_w.T + mix_b)
    logits = mixed @ out_w.T + out_b
    area_scores = None
    if spec.areas is not None:
        area_w, area_b = heads[3]
        pooled = np.einsum("ac,bch->bah", area_means(spec.areas, count), h)
        area_scores = (pooled @ area_w.T + area_b)[..., 0]  # [batch, areas]
    role = x[:, spec.observation_size :].argmax(axis=1)
    for r, name in enumerate(spec.roles):
        rows = np.flatnonzero(role == r)
        for first, group in (spec.cell_actions or {}).get(name, ()):
            logits[rows, first : first + count] = scores[rows, :, group]
        first = (spec.area_actions or {}).get(name)
        if first is not None and area_scores is not None:
            logits[rows, first : first + len(spec.areas)] = area_scores[rows]
    return logits
