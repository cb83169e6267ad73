"""PPO's train batch from the batch runner's chunks, in arrays: one learner connector piece.

RLlib 2.60's default PPO learner pipeline works episode by episode: it appends one artificial
step to every chunk (``AddOneTsToEpisodesAndTruncate``), gathers the columns chunk by chunk,
and runs GAE as a Python loop over every row of each module. The batch runner hands the
learner one chunk per (episode, agent), 1,280 of them per orbit update, and that pipeline
was about 40% of the learner's time. :class:`ChunksToTrainBatch` builds the same batch from
the chunks' arrays: the columns concatenated per module, one value-function forward over
every observation (each chunk's last one is its bootstrap), and GAE as a reverse scan over
the longest chunk, all chunks at once.

What differs from the default pipeline: the batch holds only the real steps (no artificial
step per chunk, so no ``LOSS_MASK``), and advantages are standardised over those steps
(RLlib standardises over the artificial ones too). Value targets and the un-standardised
advantages are the same: ``tests/training/test_rllib_train_batch.py`` compares the two.

Only for chunks the way :class:`~phobos.training.rllib_batch.BatchEnvRunner` makes them:
finalised numpy buffers, each chunk holding ``len + 1`` observations.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
import tree
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

COLUMNS = (Columns.ACTION_DIST_INPUTS, Columns.ACTION_LOGP, WEIGHTS_SEQ_NO)
"""The extra model outputs the batch runner records and PPO's loss (and metrics) read."""


def _steps(buffer: Any, count: int) -> Any:
    """The first ``count`` items of a finalised buffer after its lookback."""
    if not buffer.finalized:
        raise ValueError("ChunksToTrainBatch needs finalised (numpy) episode chunks")
    start = buffer.lookback
    if start == 0 and isinstance(buffer.data, np.ndarray) and len(buffer.data) == count:
        return buffer.data  # the batch runner's case, without a slice per chunk and column
    return tree.map_structure(lambda a: a[start : start + count], buffer.data)


def advantages(
    rewards: np.ndarray,
    values: np.ndarray,
    lengths: np.ndarray,
    terminated: np.ndarray,
    gamma: float,
    lambda_: float,
) -> np.ndarray:
    """GAE advantages of chunks laid end to end.

    Args:
        rewards: ``[sum(lengths)]``, chunk after chunk.
        values: ``[sum(lengths + 1)]``: each chunk's values, then its bootstrap value.
        lengths: Each chunk's step count (at least 1).
        terminated: Per chunk, whether its last step terminated (no bootstrap).
        gamma: Discount.
        lambda_: GAE's lambda.

    Returns:
        ``[sum(lengths)]`` advantages (float64); none crosses a chunk boundary.

    """
    n, longest = len(lengths), int(lengths.max())
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    t = np.arange(longest)
    valid = t[None, :] < lengths[:, None]  # [chunks, longest]
    rows = (starts[:, None] + t[None, :])[valid]
    value_rows = rows + np.repeat(np.arange(n), lengths)  # each chunk's values sit one further
    next_value = values[value_rows + 1]
    last = np.cumsum(lengths) - 1
    next_value[last[terminated]] = 0.0
    deltas = np.zeros((n, longest + 1), dtype=np.float64)
    deltas[:, :longest][valid] = rewards + gamma * next_value - values[value_rows]
    decay = gamma * lambda_
    for step in range(longest - 1, -1, -1):  # padding is zero, so nothing leaks backwards
        deltas[:, step] += decay * deltas[:, step + 1]
    return deltas[:, :longest][valid]


class ChunksToTrainBatch(ConnectorV2):
    """Learner connector: per module, the train batch PPO's loss reads, with GAE."""

    def __init__(
        self,
        input_observation_space: Any = None,
        input_action_space: Any = None,
        *,
        gamma: float,
        lambda_: float,
    ) -> None:
        super().__init__(input_observation_space, input_action_space)
        self.gamma = gamma
        self.lambda_ = lambda_

    def __call__(
        self,
        *,
        rl_module: Any,
        batch: dict[str, Any],
        episodes: list[Any],
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Add each module's columns to ``batch``, from the single-agent chunks it owns."""
        by_module: dict[str, list[Any]] = defaultdict(list)
        for episode in self.single_agent_episode_iterator(
            episodes, agents_that_stepped_only=False
        ):
            by_module[episode.module_id].append(episode)
        for module_id, chunks in by_module.items():
            batch[module_id] = self._module_batch(rl_module[module_id], chunks)
        return batch

    def _module_batch(self, module: Any, chunks: list[Any]) -> dict[str, Any]:
        lengths = np.array([len(c) for c in chunks], dtype=np.int64)
        if (lengths < 1).any():
            raise ValueError("ChunksToTrainBatch got an episode chunk without steps")

        def column(buffers: list[Any], extra: int = 0) -> Any:
            parts = [_steps(b, int(n) + extra) for b, n in zip(buffers, lengths, strict=True)]
            return tree.map_structure(lambda *a: np.concatenate(a), *parts)

        device = next(module.parameters()).device
        every = column([c.observations for c in chunks], extra=1)  # each chunk's bootstrap too
        with torch.no_grad():
            values = module.compute_values(
                {Columns.OBS: tree.map_structure(lambda a: torch.from_numpy(a).to(device), every)}
            )
        values = values.cpu().numpy().astype(np.float64)
        rewards = column([c.rewards for c in chunks]).astype(np.float64)
        terminated = np.array([c.is_terminated for c in chunks], dtype=bool)
        raw = advantages(rewards, values, lengths, terminated, self.gamma, self.lambda_)
        step_rows = np.ones(len(values), dtype=bool)
        step_rows[np.cumsum(lengths + 1) - 1] = False  # a chunk's last observation has no step
        columns: dict[str, Any] = {
            Columns.OBS: tree.map_structure(lambda a: a[step_rows], every),
            Columns.ACTIONS: column([c.actions for c in chunks]),
            Postprocessing.ADVANTAGES: ((raw - raw.mean()) / max(1e-4, float(raw.std()))),
            Postprocessing.VALUE_TARGETS: raw + values[step_rows],
        }
        for name in COLUMNS:
            columns[name] = column([c.extra_model_outputs[name] for c in chunks])
        for name in (Postprocessing.ADVANTAGES, Postprocessing.VALUE_TARGETS):
            columns[name] = columns[name].astype(np.float32)
        return tree.map_structure(lambda a: torch.from_numpy(np.asarray(a)).to(device), columns)
