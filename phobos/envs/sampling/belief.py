"""What an observer believes about each cell: Bayesian updates from noisy labels.

The lander and the science team each hold a :class:`Belief`. An image gives a material label
and a composition label per cell (the lander's onboard classifier and the team's better one
draw separate labels from the same image) and a slope measurement; a spectrum gives one
composition label of high accuracy. A label is right with the instrument's accuracy and
otherwise names another class uniformly, so a belief is the prior times one likelihood row per
label: material labels depend only on the material and composition labels only on the
composition, so the exact posterior over the composition is
``(material_prior * L_material) @ P(composition | material) * L_composition``.
"""

from __future__ import annotations

import numpy as np

from phobos.envs.sampling.config import MATERIALS, SiteConfig
from phobos.envs.sampling.layout import (
    HAZARD,
    IMAGED,
    PROBABLE_VALUE,
    REACHABLE,
    SLOPE,
    SLOPE_SCALE_DEG,
    SPECTRUM,
    SamplingLayout,
)


def label_log_likelihood(accuracy: float, classes: int) -> np.ndarray:
    """``[label, truth]`` log-likelihood of a label from an instrument of this accuracy."""
    wrong = (1.0 - accuracy) / (classes - 1)
    table = np.full((classes, classes), wrong)
    np.fill_diagonal(table, accuracy)
    return np.log(np.maximum(table, 1e-12))


def draw_labels(
    truth: np.ndarray, accuracy: float, classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Labels of ``truth``: right with ``accuracy``, else another class uniformly."""
    wrong = rng.random(truth.shape) >= accuracy
    shift = rng.integers(1, classes, truth.shape)
    return np.where(wrong, (truth + shift) % classes, truth)


def posterior(prior: np.ndarray, log_likelihood: np.ndarray) -> np.ndarray:
    """Normalised ``prior * likelihood`` along the last axis (stable in the log domain).

    One rule for the ``ParallelEnv``'s beliefs and the batch core's, which hold more axes.
    """
    weights = prior * np.exp(log_likelihood - log_likelihood.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights


def slope_and_failure(
    material: np.ndarray,
    slope_sum: np.ndarray,
    slope_count: np.ndarray,
    slope_mean: np.ndarray,
    failure_base: np.ndarray,
    site: SiteConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Believed slope and, per material, the failure probability at that slope.

    The slope is the measured mean where there are measurements, else the expected slope of
    the believed materials.
    """
    slope = np.where(
        slope_count > 0, slope_sum / np.maximum(slope_count, 1.0), material @ slope_mean
    )
    steep = np.maximum(slope - site.safe_slope_deg, 0.0) * site.failure_per_deg
    return slope, np.minimum(failure_base + steep[..., None], site.max_failure)


class Belief:
    """One observer's beliefs over every cell, kept as log-likelihoods and written as features.

    Args:
        site: The site's priors (known to every observer: they are published).
        layout: The observation layout whose cell blocks this belief writes.
        cell_block: ``[cells, cell_size]`` view of the observer's observation to keep current.
        fresh: Whether ``cell_block`` already holds the prior's features (a copy of another
            fresh belief's block), which spares recomputing them.

    """

    def __init__(
        self,
        site: SiteConfig,
        layout: SamplingLayout,
        cell_block: np.ndarray,
        fresh: bool = False,
    ) -> None:
        cells, classes = site.cells, len(site.compositions)
        self.material_prior = np.asarray(site.material_prior)
        self.composition_prior = np.asarray(site.composition_prior)  # [materials, classes]
        self.class_value = np.asarray(site.composition_value)
        self.value_scale = max(float(self.class_value.max()), 1e-9)
        self._unit_value = self.class_value / self.value_scale
        self._failure_base = np.asarray(site.failure_base)
        self._slope_mean = np.asarray(site.slope_mean_deg)
        self.site = site
        self.classes = classes
        self.block = cell_block
        self.material_loglik = np.zeros((cells, len(MATERIALS)))
        self.class_loglik = np.zeros((cells, classes))
        self.slope_sum = np.zeros(cells)
        self.slope_count = np.zeros(cells)
        # The composition prior of each cell given what its images say of its material.
        self.mixture = np.repeat((self.material_prior @ self.composition_prior)[None], cells, 0)
        self._material_cols = slice(classes, classes + len(MATERIALS))
        self._extra = classes + len(MATERIALS)
        if not fresh:
            self.refresh(np.arange(cells))

    def add_image(
        self, cells: np.ndarray, material_log: np.ndarray, class_log: np.ndarray, slope: np.ndarray
    ) -> None:
        """Fold in one image's likelihood rows (``[len(cells), ...]``) and slope readings."""
        self.material_loglik[cells] += material_log
        self.class_loglik[cells] += class_log
        self.slope_sum[cells] += slope
        self.slope_count[cells] += 1.0
        self.block[cells, self._extra + IMAGED] = 1.0
        self.refresh(cells)

    def add_spectrum(self, cell: int, class_log: np.ndarray) -> None:
        """Fold in one spectrum's likelihood row (only the composition changes)."""
        self.class_loglik[cell] += class_log
        self.block[cell, self._extra + SPECTRUM] = 1.0
        self._composition(cell)

    def refresh(self, cells: np.ndarray) -> None:
        """Recompute the features of ``cells`` from their likelihoods."""
        material = posterior(self.material_prior, self.material_loglik[cells])
        self.mixture[cells] = material @ self.composition_prior
        slope, failure = slope_and_failure(
            material,
            self.slope_sum[cells],
            self.slope_count[cells],
            self._slope_mean,
            self._failure_base,
            self.site,
        )
        block, extra = self.block, self._extra
        block[cells, self._material_cols] = material
        block[cells, extra + HAZARD] = (material * failure).sum(axis=1)
        block[cells, extra + SLOPE] = np.clip(slope / SLOPE_SCALE_DEG, 0.0, 1.0)
        self._composition(cells)

    def _composition(self, cells: np.ndarray | int) -> None:
        composition = posterior(self.mixture[cells], self.class_loglik[cells])
        self.block[cells, : self.classes] = composition
        self.block[cells, self._extra + PROBABLE_VALUE] = composition @ self._unit_value

    def expected_value(self, cells: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Expected science value of full samples of ``cells`` under this belief."""
        return self.block[cells, self._extra + PROBABLE_VALUE] * self.value_scale

    def hazard(self, cells: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Expected failure probability of ``cells``."""
        return self.block[cells, self._extra + HAZARD]


def prior_features(site: SiteConfig, layout: SamplingLayout, reachable: np.ndarray) -> np.ndarray:
    """``[cells, cell_size]`` features of the prior belief, the block every episode starts from.

    Args:
        site: The site's priors.
        layout: The observation layout of the cell blocks.
        reachable: ``[cells]`` whether the arm reaches each cell (written as a feature).

    """
    block = np.zeros((site.cells, layout.cell_size))
    block[:, layout.classes + layout.materials + REACHABLE] = reachable
    return Belief(site, layout, block).block
