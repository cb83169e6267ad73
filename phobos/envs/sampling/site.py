"""Seeded procedural landing sites: material, slope, hidden composition, value and hazard.

A site is drawn from the environment's own generator, so the same seed gives the same site.
Materials come in patches: a Gaussian field smoothed over neighbouring cells is mapped through
the normal distribution function to a uniform number per cell, which picks the material by
the prior's cumulative sums, so every cell's material follows the prior exactly while
neighbours tend to agree. Slope, composition, value, mass and failure follow per cell from
the material.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from phobos.envs.sampling.config import SiteConfig


@dataclass(frozen=True)
class Site:
    """One landing site; arrays are per cell, row-major from the lander outwards.

    Visible to the cameras (with noise): ``material`` and ``slope_deg``. Hidden from every
    policy but the oracle: the rest.

    Attributes:
        material: Index into :data:`~phobos.envs.sampling.config.MATERIALS`.
        slope_deg: Local slope.
        composition: Index into ``SiteConfig.compositions``.
        value: Science value of a full sample.
        failure_probability: Chance that sampling the cell fails.
        failure_draw: Uniform number; sampling fails when it is below the probability.
        damage_draw: Uniform number; a failure damages the sampler when it is below
            ``damage_given_failure``.
        mass_g: Mass a scoop of the cell yields.
        reachable: The arm and its spectrometer reach the cell.

    """

    material: np.ndarray
    slope_deg: np.ndarray
    composition: np.ndarray
    value: np.ndarray
    failure_probability: np.ndarray
    failure_draw: np.ndarray
    damage_draw: np.ndarray
    mass_g: np.ndarray
    reachable: np.ndarray


def failure_probability(
    site: SiteConfig, material: np.ndarray, slope_deg: np.ndarray
) -> np.ndarray:
    """The hazard model: a base rate by material plus a slope term, capped."""
    base = np.asarray(site.failure_base)[material]
    steep = np.maximum(np.asarray(slope_deg) - site.safe_slope_deg, 0.0) * site.failure_per_deg
    return np.minimum(base + steep, site.max_failure)


def reachable_cells(site: SiteConfig) -> np.ndarray:
    """Cells whose centre lies within the arm's reach of its base (mid near edge)."""
    row, col = np.divmod(np.arange(site.cells), site.cols)
    along = (row + 0.5) * site.cell_m
    across = (col + 0.5 - site.cols / 2.0) * site.cell_m
    return np.hypot(along, across) <= site.arm_reach_m


def area_cells(site: SiteConfig) -> list[np.ndarray]:
    """Cell indices of each image area, areas in row-major order."""
    k = site.area_cells
    areas = []
    for top in range(0, site.rows, k):
        for left in range(0, site.cols, k):
            rows, cols = np.meshgrid(np.arange(top, top + k), np.arange(left, left + k))
            areas.append(np.sort((rows * site.cols + cols).ravel()))
    return areas


def generate_site(config: SiteConfig, rng: np.random.Generator) -> Site:
    """Draw one site from ``rng`` (the environment's generator; never the global one)."""
    sites = generate_sites(config, [rng])
    return Site(**{f.name: getattr(sites, f.name)[0] for f in fields(Site)})


def generate_sites(config: SiteConfig, rngs: Sequence[np.random.Generator]) -> Site:
    """One site per generator, each drawing what :func:`generate_site` draws, in its order.

    The result's arrays carry a leading site axis: ``generate_sites(config, rngs)`` row ``i``
    equals ``generate_site(config, rngs[i])``.
    """
    rows, cols, cells = config.rows, config.cols, config.cells
    n = len(rngs)
    noise = np.zeros((n, rows + 2, cols + 2))
    slope_z, composition_u, value_z = (
        np.zeros((n, cells)),
        np.zeros((n, cells)),
        np.zeros((n, cells)),
    )
    mass_u, failure_draw, damage_draw = (
        np.zeros((n, cells)),
        np.zeros((n, cells)),
        np.zeros((n, cells)),
    )
    for i, rng in enumerate(rngs):
        noise[i] = rng.standard_normal((rows + 2, cols + 2))
        slope_z[i] = rng.standard_normal(cells)
        composition_u[i] = rng.random(cells)
        value_z[i] = rng.standard_normal(cells)
        mass_u[i] = rng.uniform(-1.0, 1.0, cells)
        failure_draw[i] = rng.random(cells)
        damage_draw[i] = rng.random(cells)
    uniform = _patchy_uniform(config, noise)
    material = np.searchsorted(np.cumsum(config.material_prior)[:-1], uniform, side="right")
    mean = np.asarray(config.slope_mean_deg)[material]
    spread = np.asarray(config.slope_sd_deg)[material]
    slope = np.clip(np.abs(mean + spread * slope_z), 0.0, 45.0)
    prior = np.asarray(config.composition_prior)[material]  # [n, cells, classes]
    composition = (composition_u[..., None] > np.cumsum(prior, axis=-1)[..., :-1]).sum(axis=-1)
    value = np.asarray(config.composition_value)[composition] * np.exp(
        config.value_spread * value_z - 0.5 * config.value_spread**2
    )
    mass = np.asarray(config.sample_mass_g)[material] * (1.0 + config.mass_spread * mass_u)
    return Site(
        material=material,
        slope_deg=slope,
        composition=composition,
        value=value,
        failure_probability=failure_probability(config, material, slope),
        failure_draw=failure_draw,
        damage_draw=damage_draw,
        mass_g=mass,
        reachable=np.repeat(reachable_cells(config)[None], n, axis=0),
    )


def _patchy_uniform(config: SiteConfig, noise: np.ndarray) -> np.ndarray:
    """Uniform numbers per cell, correlated between neighbours by ``patchiness``.

    From normal ``noise`` ``[n, rows + 2, cols + 2]`` to ``[n, cells]``.
    """
    rows, cols = config.rows, config.cols
    w = config.patchiness
    kernel = np.array([[w * w, w, w * w], [w, 1.0, w], [w * w, w, w * w]])
    field = sum(
        kernel[i, j] * noise[:, i : i + rows, j : j + cols] for i in range(3) for j in range(3)
    )
    # Each cell sums nine independent normals: dividing by the kernel's norm keeps N(0, 1).
    standard = (field / math.sqrt(float((kernel**2).sum()))).reshape(len(noise), -1)
    erf = [math.erf(z / math.sqrt(2.0)) for z in standard.ravel().tolist()]
    return 0.5 * (1.0 + np.array(erf).reshape(standard.shape))
