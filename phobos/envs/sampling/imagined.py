"""Sites a sampling lander might be on, drawn from what it believes: the belief search's worlds.

:meth:`~phobos.envs.sampling.batch.PhobosSamplingBatch.believed_sites` draws them for the
rollout teacher of :mod:`phobos.training.belief_teacher`, which tries each candidate action
in these imagined sites instead of the true one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from phobos.envs.sampling.config import MATERIALS
from phobos.envs.sampling.layout import SAMPLED
from phobos.envs.sampling.site import failure_probability


def draw_believed_sites(core: Any, rngs: Sequence[np.random.Generator]) -> dict[str, np.ndarray]:
    """One site per episode of ``core`` (a sampling batch core), one generator each.

    See :meth:`~phobos.envs.sampling.batch.PhobosSamplingBatch.believed_sites`.
    """
    site, belief = core.config.site, core.belief
    n, cells = core.num_envs, core.layout.cells
    material_log = belief.material_loglik[:, 0]  # [n, cells, materials]
    class_log = belief.class_loglik[:, 0]  # [n, cells, classes]
    joint = (
        np.asarray(site.material_prior)[:, None]
        * np.asarray(site.composition_prior)
        * np.exp(material_log - material_log.max(axis=-1, keepdims=True))[..., None]
        * np.exp(class_log - class_log.max(axis=-1, keepdims=True))[..., None, :]
    ).reshape(n, cells, -1)
    cumulative = np.cumsum(joint, axis=-1)
    cumulative /= cumulative[..., -1:]
    draws, normal = np.zeros((4, n, cells)), np.zeros((2, n, cells))
    for i, rng in enumerate(rngs):
        draws[:, i] = rng.random((4, cells))
        normal[:, i] = rng.standard_normal((2, cells))
    pick = (draws[0][..., None] > cumulative[..., :-1]).sum(axis=-1)
    material, composition = np.divmod(pick, len(site.compositions))
    # The slope: a normal prior of the material, and readings of known noise.
    prior_mean = np.asarray(site.slope_mean_deg)[material]
    prior_var = np.asarray(site.slope_sd_deg)[material] ** 2
    noise_var = core.config.lander.slope_noise_deg**2
    count, total = belief.slope_count[:, 0], belief.slope_sum[:, 0]
    var = 1.0 / (1.0 / np.maximum(prior_var, 1e-9) + count / noise_var)
    mean = var * (prior_mean / np.maximum(prior_var, 1e-9) + total / noise_var)
    slope = np.clip(np.abs(mean + np.sqrt(var) * normal[0]), 0.0, 45.0)
    value = np.asarray(site.composition_value)[composition] * np.exp(
        site.value_spread * normal[1] - 0.5 * site.value_spread**2
    )
    mass = np.asarray(site.sample_mass_g)[material] * (
        1.0 + site.mass_spread * (2.0 * draws[1] - 1.0)
    )
    true = core.site
    attempted = core.blocks[:, 0, :, core.layout.classes + len(MATERIALS) + SAMPLED] > 0
    stowed_cells = attempted & ~(true["failure_draw"] < true["failure_probability"])
    stowed = np.zeros((n, len(site.compositions)), dtype=bool)
    rows, columns = np.nonzero(stowed_cells)
    stowed[rows, composition[rows, columns]] = True
    return {
        "material": material,
        "slope_deg": slope,
        "composition": composition,
        "value": value,
        "failure_probability": failure_probability(site, material, slope),
        "failure_draw": draws[2],
        "damage_draw": draws[3],
        "mass_g": mass,
        "stowed": stowed,
    }
