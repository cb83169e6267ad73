"""The array-built PPO train batch equals RLlib's episode-by-episode one on the same chunks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from phobos.training.config import TrainConfig
from phobos.training.rllib_train_batch import ChunksToTrainBatch, advantages
from tests.training.test_rllib_batch import TASKS, TINY

GAMMA, LAMBDA = 0.97, 0.9


def test_advantages_match_rllib_chunk_by_chunk():
    rng = np.random.default_rng(5)
    lengths = np.array([5, 1, 9, 3, 9])
    terminated = np.array([False, True, False, True, False])
    rewards = rng.normal(size=lengths.sum())
    values = rng.normal(size=(lengths + 1).sum())
    got = advantages(rewards, values, lengths, terminated, GAMMA, LAMBDA)
    expected, r0, v0 = [], 0, 0
    for n, done in zip(lengths, terminated, strict=True):
        # RLlib's layout (AddOneTsToEpisodesAndTruncate): the chunk's steps, the last one
        # terminated or truncated, then an artificial bootstrap step (reward 0).
        end = np.zeros(n + 1)
        end[n - 1] = 1.0
        v = values[v0 : v0 + n + 1]
        targets = compute_value_targets(
            values=v,
            rewards=np.append(rewards[r0 : r0 + n], 0.0),
            terminateds=end * done,
            truncateds=end * (not done),
            gamma=GAMMA,
            lambda_=LAMBDA,
        )
        expected.append((targets - v)[:n])
        r0, v0 = r0 + n, v0 + n + 1
    np.testing.assert_allclose(got, np.concatenate(expected), rtol=1e-5, atol=1e-5)


def _default_pipeline(algorithm):
    """RLlib's own PPO learner pipeline for this algorithm's modules, as PPOLearner builds it."""
    from ray.rllib.connectors.learner import (
        AddOneTsToEpisodesAndTruncate,
        GeneralAdvantageEstimation,
    )

    config = algorithm.config.copy(copy_frozen=False)
    config.learners(learner_connector=None, add_default_connectors_to_learner_pipeline=True)
    config._learner_connector = None  # learners() ignores None: clear ours by hand
    pipeline = config.build_learner_connector(None, None)
    pipeline.prepend(AddOneTsToEpisodesAndTruncate())
    pipeline.append(GeneralAdvantageEstimation(gamma=GAMMA, lambda_=LAMBDA))
    return pipeline


def _standardised(a):
    return (a - a.mean()) / max(1e-4, a.std())


@pytest.mark.parametrize(("env_id", "env_config"), TASKS)
def test_the_train_batch_equals_rllib_s_on_the_same_chunks(ray_local, env_id, env_config):
    """Fragments cut across episodes: going-on, truncated and (sampling) terminated chunks."""
    from phobos.training.rllib_ppo import build_algorithm

    settings = {**TINY, "env": env_id, "env_config": env_config, "seed": 4}
    algorithm = build_algorithm(TrainConfig(**settings, gamma=GAMMA, gae_lambda=LAMBDA))
    try:
        learner = algorithm.learner_group._learner
        assert isinstance(learner._learner_connector.connectors[0], ChunksToTrainBatch)
        chunks = []
        for _ in range(5):
            chunks += algorithm.env_runner.sample(num_timesteps=7 * TINY["num_envs"])
        ends = "is_terminated" if env_id.startswith("phobos-sampling") else "is_truncated"
        assert any(getattr(c, ends) for c in chunks) and any(not c.is_done for c in chunks)
        module = learner.module
        with torch.no_grad():  # a critic that is not flat, so the values matter
            for m in module.values():
                for name, parameter in m.named_parameters():
                    if name.startswith("vf.") or "critic" in name:
                        parameter.add_(0.3 * torch.randn_like(parameter))
        ours = learner._learner_connector(
            rl_module=module, batch={}, episodes=copy.deepcopy(chunks), shared_data={}
        )
        theirs = _default_pipeline(algorithm)(
            rl_module=module, batch={}, episodes=copy.deepcopy(chunks), shared_data={}
        )
    finally:
        algorithm.stop()
    assert set(ours) == set(theirs) == {c.module_id for c in chunks}
    for module_id, mine in ours.items():
        real = theirs[module_id][Columns.LOSS_MASK].numpy().astype(bool)
        assert Columns.LOSS_MASK not in mine and len(mine[Columns.ACTIONS]) == real.sum()
        for key in ("observations", "action_mask"):
            np.testing.assert_array_equal(
                mine[Columns.OBS][key].numpy(), theirs[module_id][Columns.OBS][key].numpy()[real]
            )
        for column in (Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS):
            np.testing.assert_array_equal(
                mine[column].numpy(), theirs[module_id][column].numpy()[real], err_msg=column
            )
        np.testing.assert_allclose(
            mine[Postprocessing.VALUE_TARGETS].numpy(),
            theirs[module_id][Postprocessing.VALUE_TARGETS].numpy()[real],
            rtol=1e-4,
            atol=1e-4,
        )
        np.testing.assert_allclose(  # RLlib standardises over its artificial steps as well
            mine[Postprocessing.ADVANTAGES].numpy(),
            _standardised(theirs[module_id][Postprocessing.ADVANTAGES].numpy()[real]),
            rtol=1e-3,
            atol=1e-3,
        )
