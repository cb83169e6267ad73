"""Every role module's rows are seen ``num_epochs`` times per update, however many it has."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

from phobos.training.config import TrainConfig
from phobos.training.rllib_learner import EpochMinibatches, EpochPPOTorchLearner
from tests.training.test_rllib_batch import TINY


def _batch(rows: dict[str, int]) -> MultiAgentBatch:
    return MultiAgentBatch(
        {m: SampleBatch({"row": np.arange(n)}) for m, n in rows.items()}, max(rows.values())
    )


@pytest.mark.parametrize("shuffle", [False, True])
def test_each_module_sees_each_row_once_per_epoch(shuffle):
    batch = _batch({"ground": 30, "phobos_grunt": 10, "yinghuo1": 7})
    minibatches = list(EpochMinibatches(batch, num_epochs=4, minibatch_size=8, shuffle=shuffle))
    assert len(minibatches) == 4 * 4  # ceil(30 / 8) per epoch, set by the largest module
    for module, rows in (("ground", 30), ("phobos_grunt", 10), ("yinghuo1", 7)):
        seen = Counter(
            int(row) for mb in minibatches for row in mb.policy_batches[module]["row"]
        )
        assert seen == {row: 4 for row in range(rows)}, module
    assert max(len(mb.policy_batches["ground"]) for mb in minibatches) == 8


def test_an_empty_module_batch_is_refused():
    with pytest.raises(ValueError, match="'yinghuo1' is empty"):
        EpochMinibatches(
            _batch({"ground": 4, "yinghuo1": 0}), num_epochs=1, minibatch_size=2, shuffle=False
        )


def test_ppo_learns_with_the_epoch_minibatches(ray_local):
    from phobos.training.rllib_ppo import build_algorithm

    algorithm = build_algorithm(TrainConfig(seed=2, **TINY))
    try:
        learner = algorithm.learner_group._learner
        assert isinstance(learner, EpochPPOTorchLearner)
        made = []
        create = learner._create_iterator_if_necessary

        def spy(**kwargs):
            made.append(create(**kwargs))
            return made[-1]

        learner._create_iterator_if_necessary = spy
        result = algorithm.train()
    finally:
        algorithm.stop()
    assert [type(iterator) for iterator in made] == [EpochMinibatches]
    assert np.isfinite(result["learners"]["phobos_grunt"]["policy_loss"])
