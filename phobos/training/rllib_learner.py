"""RLlib's PPO learner with minibatches that give every role module the epochs asked for.

RLlib 2.60's ``MiniBatchCyclicIterator`` hands each module ``minibatch_size`` rows per SGD
step and steps until the module with the fewest passes has done ``num_epochs``. Modules hold
different row counts (``ground`` has three stations' rows, each spacecraft one), so the
smaller modules are cycled: in the orbit team each spacecraft did 12 passes over its rows
where 4 were asked, which tripled their gradient work and over-fitted them to the batch.
:class:`EpochMinibatches` cuts every module's shuffled rows into the same number of
minibatches per epoch (set by the largest module), so each row is seen ``num_epochs`` times.

With ``num_learners`` of 2 or more the learners average their gradients themselves, in one
all-reduce over every module's parameters per SGD step (:class:`EpochPPOTorchLearner`).
RLlib 2.60 instead wraps each role module in a ``DistributedDataParallel`` of its own over one
process group; measured here, the two spacecraft modules (the same shapes) then came out of
one update different on the two learners (the hazard of ray-project/ray#63819), and the
wrapper hides ``compute_values``, which the batch path's learner connector calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
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
        self,
        batch: MultiAgentBatch,
        *,
        num_epochs: int,
        minibatch_size: int,
        shuffle: bool,
        minibatches_per_epoch: int | None = None,
    ) -> None:
        for module_id, rows in batch.policy_batches.items():
            if len(rows) == 0:
                raise ValueError(f"the batch for module {module_id!r} is empty")
            if rows._slice_seq_lens_in_B:
                raise ValueError(f"module {module_id!r}: sequence batches are not supported")
        self._batch = batch
        self._num_epochs = num_epochs
        self._shuffle = shuffle
        self.minibatches_per_epoch = minibatches_per_epoch or minibatches_for(
            batch, minibatch_size
        )

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


def minibatches_for(batch: MultiAgentBatch, minibatch_size: int) -> int:
    """Minibatches per epoch of ``batch``: its largest module's rows over ``minibatch_size``."""
    largest = max(len(rows) for rows in batch.policy_batches.values())
    return max(1, math.ceil(largest / minibatch_size))


TORCH_THREADS = "torch_threads"
"""``learner_config_dict`` key: the learner's torch threads (``TrainConfig.learner_threads``)."""


class EpochPPOTorchLearner(PPOTorchLearner):
    """PPO's torch learner iterating :class:`EpochMinibatches` instead of RLlib's cycling.

    It also sets its process's torch threads to ``learner_config_dict[TORCH_THREADS]`` (1 when
    absent): RLlib leaves torch's default, every core, which on a small machine fights the env
    runners.

    With several learners (``num_learners`` >= 2, one process group) each holds the whole
    policy and learns on its shard of the batch: they start from learner 0's weights, cut
    their shards into the same number of minibatches (the most any learner needs), and every
    SGD step averages all their gradients in one all-reduce, in parameter order, before the
    optimisers step. So every learner applies the same update and holds the same policy.
    """

    def build(self) -> None:
        """Set the torch threads, build as PPO's torch learner does, then agree on weights."""
        torch.set_num_threads(int(self.config.learner_config_dict.get(TORCH_THREADS, 1)))
        super().build()
        self.agree_on_weights()

    def agree_on_weights(self) -> None:
        """With several learners, every learner takes learner 0's weights (a collective call)."""
        if self._distributed:
            with torch.no_grad():
                for param in self._params.values():
                    dist.broadcast(param.data, src=0)

    @property
    def _distributed(self) -> bool:
        if self.config.num_learners < 2:
            return False
        if not dist.is_initialized():
            raise RuntimeError(
                f"num_learners {self.config.num_learners}: no torch process group in this learner"
            )
        return True

    def _make_modules_ddp_if_necessary(self) -> None:
        """Leave the modules unwrapped: :meth:`compute_gradients` averages across learners."""

    def compute_gradients(self, loss_per_module: dict, **kwargs: Any) -> dict:
        """PPO's gradients; with several learners, every learner's average."""
        gradients = super().compute_gradients(loss_per_module, **kwargs)
        if not self._distributed:
            return gradients
        # Every parameter, in the same order on every learner, zeros where this learner's
        # minibatch gave it none: each learner makes exactly one all-reduce of one shape.
        params = list(self._params.items())
        flat = torch.cat(
            [
                (gradients.get(pid) if gradients.get(pid) is not None else torch.zeros_like(p))
                .detach()
                .reshape(-1)
                for pid, p in params
            ]
        )
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        averaged, offset = {}, 0
        for pid, param in params:
            averaged[pid] = flat[offset : offset + param.numel()].view_as(param)
            offset += param.numel()
        return averaged

    def _uncompiled_update(self, batch: dict, **kwargs: Any) -> tuple:
        """One SGD step (TorchLearner's, without the DDP wrappers' ``no_sync``)."""
        self._compute_off_policyness(batch)
        fwd_out = self.module.forward_train(batch)
        loss_per_module = self.compute_losses(fwd_out=fwd_out, batch=batch)
        gradients = self.compute_gradients(loss_per_module)
        self.apply_gradients(self.postprocess_gradients(gradients))
        return fwd_out, loss_per_module, {}

    def _create_iterator_if_necessary(self, **kwargs: Any) -> Any:
        iterator = super()._create_iterator_if_necessary(**kwargs)
        if not isinstance(iterator, MiniBatchCyclicIterator):
            return iterator  # a data iterator, or one batch without minibatches
        parts = minibatches_for(iterator._batch, iterator._minibatch_size)
        if self._distributed:  # every learner must make as many all-reduces
            agreed = torch.tensor([parts])
            dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
            parts = int(agreed.item())
        return EpochMinibatches(
            iterator._batch,
            num_epochs=iterator._num_epochs,
            minibatch_size=iterator._minibatch_size,
            shuffle=iterator._shuffle_batch_per_epoch,
            minibatches_per_epoch=parts,
        )
