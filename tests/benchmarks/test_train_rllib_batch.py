"""The RLlib batch-sampler benchmark runs 0, 1 and 2 env runners and the env path (smoke)."""

from __future__ import annotations

import pytest

from phobos.benchmarks.train_rllib_batch import (
    RUNNERS,
    measure_sampling,
    report,
    rllib_batch_rates,
)
from phobos.ray_cluster import init_ray
from phobos.training.config import TrainConfig

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


def test_the_sampling_phase_alone_counts_every_agent_step_the_runner_hands_over():
    import ray

    started = init_ray(2)
    try:
        row = measure_sampling(TrainConfig(**SMALL, sampler="batch", num_env_runners=2), 0.0)
    finally:
        if started:
            ray.shutdown()
    # 96 env steps per round (each runner's 4 episodes x 12 steps), 5 agents each: both
    # runners' chunks, as PPO's training step keeps them.
    assert row["rounds"] >= 2 and row["agent_steps"] == row["rounds"] * 96 * 5
    assert row["agent_steps_per_s"] > 0
