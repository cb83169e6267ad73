"""Both observers' beliefs over every cell of many sampling episodes, in numpy arrays.

The array form of :class:`~phobos.envs.sampling.belief.Belief`, indexed ``[env, observer,
cell, ...]`` (observer 0 the lander, 1 the science team). It applies the same rule with the
same floating-point operations, so that a batch of one equals the ``ParallelEnv`` bit for bit:

- an image's features are recomputed over its cells as one ``[9, ...]`` chunk (a batch of
  images is a stack of such chunks, which numpy multiplies chunk by chunk as ``Belief`` does),
  a spectrum's composition over its one cell;
- log-likelihoods are summed in the order the observer received the labels: features are a
  function of the summed log-likelihoods only, so they are written once per batch of updates,
  by the rule of each cell's last update (image chunk or single spectrum).
"""

from __future__ import annotations

import numpy as np

from phobos.envs.sampling.belief import Belief, posterior, slope_and_failure
from phobos.envs.sampling.config import MATERIALS, SiteConfig
from phobos.envs.sampling.layout import (
    HAZARD,
    IMAGED,
    PROBABLE_VALUE,
    SLOPE,
    SLOPE_SCALE_DEG,
    SPECTRUM,
    SamplingLayout,
)


class BeliefBatch:
    """Log-likelihoods and features of two observers in ``n`` episodes.

    Args:
        site: The site's priors.
        layout: The observation layout.
        blocks: ``[n, 2, cells, cell_size]`` view of the observations' cell blocks, which
            this object keeps current.

    """

    def __init__(self, site: SiteConfig, layout: SamplingLayout, blocks: np.ndarray) -> None:
        n, observers, cells, _ = blocks.shape
        reference = Belief(site, layout, np.zeros((cells, layout.cell_size)))
        self.site = site
        self.blocks = blocks
        self.value_scale = reference.value_scale
        self._material_prior = reference.material_prior
        self._composition_prior = reference.composition_prior
        self._unit_value = reference.class_value / reference.value_scale
        self._failure_base = np.asarray(site.failure_base)
        self._slope_mean = np.asarray(site.slope_mean_deg)
        self._mixture0 = reference.mixture[0].copy()
        self.classes = classes = reference.classes
        self._extra = classes + len(MATERIALS)
        shape = (n, observers, cells)
        self.material_loglik = np.zeros(shape + (len(MATERIALS),))
        self.class_loglik = np.zeros(shape + (classes,))
        self.slope_sum = np.zeros(shape)
        self.slope_count = np.zeros(shape)
        self.mixture = np.zeros(shape + (classes,))

    def reset(self, envs: np.ndarray) -> None:
        """Back to the prior for episodes ``envs`` (their blocks are reset by the caller)."""
        for array in (self.material_loglik, self.class_loglik, self.slope_sum, self.slope_count):
            array[envs] = 0.0
        self.mixture[envs] = self._mixture0

    # -------------------------------------------------------------------------- updates
    def add_images(
        self,
        envs: np.ndarray,
        observer: int,
        cells: np.ndarray,
        material_log: np.ndarray,
        class_log: np.ndarray,
        slope: np.ndarray,
    ) -> None:
        """Fold in images ``[m, 9]`` in order (an episode may appear more than once)."""
        index = (envs[:, None], observer, cells)
        np.add.at(self.material_loglik, index, material_log)
        np.add.at(self.class_loglik, index, class_log)
        np.add.at(self.slope_sum, index, slope)
        np.add.at(self.slope_count, index, 1.0)
        self.blocks[envs[:, None], observer, cells, self._extra + IMAGED] = 1.0

    def add_spectra(
        self, envs: np.ndarray, observer: int, cells: np.ndarray, class_log: np.ndarray
    ) -> None:
        """Fold in spectra ``[m]`` in order, after the images received before them."""
        np.add.at(self.class_loglik, (envs, observer, cells), class_log)
        self.blocks[envs, observer, cells, self._extra + SPECTRUM] = 1.0

    # ------------------------------------------------------------------------- features
    def refresh_images(self, envs: np.ndarray, observer: int, cells: np.ndarray) -> None:
        """Recompute the features of image chunks ``[m, 9]`` (``Belief.refresh``)."""
        index = (envs[:, None], observer, cells)
        material = posterior(self._material_prior, self.material_loglik[index])
        self.mixture[index] = material @ self._composition_prior
        slope, failure = slope_and_failure(
            material,
            self.slope_sum[index],
            self.slope_count[index],
            self._slope_mean,
            self._failure_base,
            self.site,
        )
        block, extra = self.blocks, self._extra
        block[index + (slice(self.classes, extra),)] = material
        block[index + (extra + HAZARD,)] = (material * failure).sum(axis=2)
        block[index + (extra + SLOPE,)] = np.clip(slope / SLOPE_SCALE_DEG, 0.0, 1.0)
        composition = posterior(self.mixture[index], self.class_loglik[index])
        block[index + (slice(0, self.classes),)] = composition
        block[index + (extra + PROBABLE_VALUE,)] = composition @ self._unit_value

    def refresh_spectra(self, envs: np.ndarray, observer: int, cells: np.ndarray) -> None:
        """Recompute the composition of single cells ``[m]`` (``Belief._composition``)."""
        index = (envs, observer, cells)
        composition = posterior(self.mixture[index], self.class_loglik[index])
        self.blocks[index + (slice(0, self.classes),)] = composition
        # A stack of [1, K] @ [K, 1] products: numpy's vector dot, as for one cell's [K] @ [K].
        value = composition[:, None, :] @ self._unit_value[:, None]
        self.blocks[index + (self._extra + PROBABLE_VALUE,)] = value[:, 0, 0]

    def expected_value(self, envs: np.ndarray, observer: int) -> np.ndarray:
        """``[m, cells]`` expected science value of full samples (``Belief.expected_value``)."""
        return self.blocks[envs, observer, :, self._extra + PROBABLE_VALUE] * self.value_scale

    def hazard(self, envs: np.ndarray, observer: int) -> np.ndarray:
        """``[m, cells]`` expected failure probability."""
        return self.blocks[envs, observer, :, self._extra + HAZARD]
