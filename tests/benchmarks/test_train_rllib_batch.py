"""The RLlib batch-sampler benchmark runs 0, 1 and 2 env runners and the env path (smoke)."""

from __future__ import annotations

import pytest

from phobos.benchmarks.train_rllib_batch import RUNNERS, report, rllib_batch_rates

SMALL = {
    "env_config": {"horizon_steps": 24},
    "num_envs": 4,
    "train_batch_size": 96,
    "minibatch_size": 48,
    "num_epochs": 1,
    "hidden": (16,),
}


@pytest.mark.slow  # ~45 s of Ray start-ups; benchmarks/train.py's smoke test covers the path
def test_rllib_batch_benchmark_measures_every_runner_count_beside_the_env_path():
    results = rllib_batch_rates(0.0, SMALL)
    paths = results["paths"]
    for runners in RUNNERS:
        row = paths[("rllib batch", runners)]
        assert row["agent_steps_per_s"] > 0 and row["iterations"] >= 2
        assert row["env_steps_per_iteration"] == 96
        assert 0 < row["learning_share"] < 1
        assert abs(row["sampling_share"] + row["learning_share"] - 1) < 1e-9
    assert paths[("rllib env", 1)]["agent_steps_per_s"] > 0
    assert "rllib env" in report(results)
