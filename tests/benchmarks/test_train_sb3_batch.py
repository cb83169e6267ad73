"""The learner's arithmetic in the training benchmark: FLOPs per sample counted right."""

from __future__ import annotations

import pytest
import torch

from phobos.benchmarks.train_sb3_batch import matmul_gflops, sample_flops
from phobos.envs.sampling.task import ID_V0 as SAMPLING
from phobos.training import sb3_batch
from phobos.training.config import TrainConfig

SMALL = {
    "framework": "sb3",
    "sampler": "batch",
    "num_envs": 4,
    "train_batch_size": 32,
    "minibatch_size": 64,
    "num_epochs": 3,
    "hidden": (16,),
}


@pytest.fixture(scope="module")
def trained() -> tuple:
    torch.set_num_threads(1)
    config = TrainConfig(env=SAMPLING, **SMALL)
    env = sb3_batch.make_env(config, 0)
    model = sb3_batch.new_model(config, env, 0, config.lr)
    model.learn(config.train_batch_size * len(env.agents))
    return model, config


def test_flops_per_sample_are_the_epochs_forward_and_backward_and_the_rollouts_forward(trained):
    model, config = trained
    policy = model.policy
    first_pi, first_vf = policy.mlp_extractor.policy_net[0], policy.mlp_extractor.value_net[0]
    observation, hidden = first_pi.in_features, first_pi.out_features
    actions = policy.action_net.out_features
    assert first_vf.in_features == observation and first_vf.out_features == hidden
    # Multiply-adds of one forward: each network's hidden layer, then its head.
    heads = hidden * actions + hidden * 1
    forward = 2 * observation * hidden + heads
    # PPO's pass: forward, every weight's gradient, and the input gradient of the heads only
    # (the observation needs none); 2 FLOPs a multiply-add.
    update = 2 * (forward + forward + heads)
    expected = config.num_epochs * update + 2 * forward
    assert sample_flops(model, config) == pytest.approx(expected, rel=1e-9)


def test_the_counted_pass_leaves_no_gradient_behind(trained):
    model, config = trained
    sample_flops(model, config)
    assert all(p.grad is None or not p.grad.any() for p in model.policy.parameters())


def test_the_matmul_rate_is_measured_on_the_widest_layer(trained):
    model, _ = trained
    rate = matmul_gflops(model, 256, 0.0)
    assert 0.01 < rate < 1e4  # GFLOPS of one core: a wrong unit is off by 1e3 or more
