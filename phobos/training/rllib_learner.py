"""RLlib's PPO learner with minibatches that give every role module the epochs asked for.

RLlib 2.60's ``MiniBatchCyclicIterator`` hands each module ``minibatch_size`` rows per SGD
step and steps until the module with the fewest passes has done ``num_epochs``. Modules hold
different row counts (``ground`` has three stations' rows, each spacecraft one), so the
smaller modules are cycled: in the orbit team each spacecraft did 12 passes over its rows
where 4 were asked, which tripled their gradient work and over-fitted them to the batch.
:class:`EpochMinibatches` cuts every module's shuffled rows into the same number of
minibatches per epoch (set by the largest module), so each row is seen ``num_epochs`` times.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.policy.sample_batch import MultiAgentBatch
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator


class EpochMinibatches:
    """``num_epochs`` passes over every module's rows, in equal-count minibatches per module.

    Each epoch has ``ceil(largest module's rows / minibatch_size)`` minibatches; a module's
    rows (shuffled each epoch when asked) are split into that many contiguous runs, so the
    largest module's minibatches are ``minibatch_size`` rows and a smaller one's are
    proportionally smaller.
    """

    def __init__(
        self, batch: MultiAgentBatch, *, num_epochs: int, minibatch_size: int, shuffle: bool
    ) -> None:
        for module_id, rows in batch.policy_batches.items():
            if len(rows) == 0:
                raise ValueError(f"the batch for module {module_id!r} is empty")
            if rows._slice_seq_lens_in_B:
                raise ValueError(f"module {module_id!r}: sequence batches are not supported")
        self._batch = batch
        self._num_epochs = num_epochs
        self._shuffle = shuffle
        largest = max(len(rows) for rows in batch.policy_batches.values())
        self.minibatches_per_epoch = max(1, math.ceil(largest / minibatch_size))

    def __iter__(self) -> Iterator[MultiAgentBatch]:
        parts = self.minibatches_per_epoch
        for _ in range(self._num_epochs):
            bounds = {}
            for module_id, rows in self._batch.policy_batches.items():
                if self._shuffle:
                    rows.shuffle()
                count = len(rows)
                bounds[module_id] = [count * i // parts for i in range(parts + 1)]
            for i in range(parts):
                minibatch = {
                    module_id: rows[bounds[module_id][i] : bounds[module_id][i + 1]]
                    for module_id, rows in self._batch.policy_batches.items()
                    if bounds[module_id][i + 1] > bounds[module_id][i]
                }
                yield MultiAgentBatch(minibatch, len(self._batch))


TORCH_THREADS = "torch_threads"
"""``learner_config_dict`` key: the learner's torch threads (``TrainConfig.learner_threads``)."""


class EpochPPOTorchLearner(PPOTorchLearner):
    """PPO's torch learner iterating :class:`EpochMinibatches` instead of RLlib's cycling.

    It also sets its process's torch threads to ``learner_config_dict[TORCH_THREADS]`` (1 when
    absent): RLlib leaves torch's default, every core, which on a small machine fights the env
    runners.
    """

    def build(self) -> None:
        """Set the torch threads, then build as PPO's torch learner does."""
        torch.set_num_threads(int(self.config.learner_config_dict.get(TORCH_THREADS, 1)))
        super().build()

    def _create_iterator_if_necessary(self, **kwargs: Any) -> Any:
        iterator = super()._create_iterator_if_necessary(**kwargs)
        if not isinstance(iterator, MiniBatchCyclicIterator):
            return iterator  # a data iterator, or one batch without minibatches
        return EpochMinibatches(
            iterator._batch,
            num_epochs=iterator._num_epochs,
            minibatch_size=iterator._minibatch_size,
            shuffle=iterator._shuffle_batch_per_epoch,
        )
