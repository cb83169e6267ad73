"""The numpy ``tanh``: torch's function and gradient, and in every network this project trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import skip_init

from phobos.agents.activations import Tanh, tanh, use_numpy_tanh
from phobos.envs import make
from phobos.training import sb3_batch
from phobos.training.config import TrainConfig


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_and_gradients_are_torch_s(dtype):
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(40, 30, generator=generator, dtype=dtype) * 4
    inputs = [base, base.T, base[::3, 1::2], base[5, 7]]  # contiguous, transposed, strided, 0-d
    tolerance = 3e-7 if dtype == torch.float32 else 1e-15
    for x in inputs:
        ours = x.clone().requires_grad_(True)
        theirs = x.clone().requires_grad_(True)
        y, expected = tanh(ours), torch.tanh(theirs)
        assert y.shape == expected.shape and y.dtype == expected.dtype
        assert torch.allclose(y, expected, rtol=0, atol=tolerance)
        upstream = torch.randn(expected.shape, generator=generator, dtype=dtype)
        y.backward(upstream)
        expected.backward(upstream)
        assert torch.allclose(ours.grad, theirs.grad, rtol=0, atol=4 * tolerance)


def test_a_tensor_numpy_cannot_view_is_left_to_torch():
    x = torch.linspace(-3, 3, 7, dtype=torch.bfloat16)
    assert torch.equal(tanh(x), torch.tanh(x))
    sparse = torch.linspace(-3, 3, 6).reshape(2, 3).to_sparse()
    assert torch.equal(tanh(sparse).to_dense(), torch.tanh(sparse).to_dense())


def test_the_swap_reaches_nested_tanh_and_leaves_the_state_dict_alone():
    generator = torch.Generator().manual_seed(0)
    first, second = (skip_init(nn.Linear, *shape) for shape in ((3, 4), (4, 2)))
    network = nn.Sequential(first, nn.Tanh(), nn.Sequential(second, nn.Tanh()))
    with torch.no_grad():  # weights from our generator, not the global one
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    x = torch.randn(5, 3, generator=generator)
    before, keys = network(x), set(network.state_dict())
    assert use_numpy_tanh(network) == 2
    assert not any(type(m) is nn.Tanh for m in network.modules())
    assert set(network.state_dict()) == keys
    assert torch.allclose(network(x), before, rtol=0, atol=3e-7)


def _torch_tanh_left(module: nn.Module) -> list[str]:
    return [name for name, m in module.named_modules() if type(m) is nn.Tanh]


@pytest.mark.parametrize("separate_critic", [False, True])
def test_the_rllib_module_runs_on_the_numpy_tanh(separate_critic):
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from phobos.agents.rl_module import MaskedPPOTorchModule

    env = make("orbit-scheduling-v0", horizon_steps=8)
    agent = env.possible_agents[0]
    module = RLModuleSpec(
        module_class=MaskedPPOTorchModule,
        observation_space=env.observation_space(agent),
        action_space=env.action_space(agent),
        model_config={
            "fcnet_hiddens": [8, 8],
            "fcnet_activation": "tanh",
            "vf_share_layers": not separate_critic,
        },
    ).build()
    assert _torch_tanh_left(module) == []
    assert sum(type(m) is Tanh for m in module.modules()) == (4 if separate_critic else 2)


@pytest.mark.parametrize("network", ["mlp", "cells"])
def test_sb3_batch_models_train_on_the_numpy_tanh(network):
    fields = {
        "env": "phobos-sampling-v0",
        "framework": "sb3",
        "sampler": "batch",
        "num_envs": 2,
        "train_batch_size": 8,
        "minibatch_size": 16,
        "hidden": (8, 8),
        "critic": "central",
    }
    if network == "cells":
        fields["policy_network"] = "cells"
    config = TrainConfig(**fields)
    model = sb3_batch.new_model(config, sb3_batch.make_env(config, 0), 0, 1e-3)
    assert _torch_tanh_left(model.policy) == []
    assert any(type(m) is Tanh for m in model.policy.modules())


def test_the_single_agent_view_model_trains_on_the_numpy_tanh():
    from phobos.training.sb3_tune import _view_model, make_view

    config = TrainConfig(
        env="orbit-scheduling-v0", framework="sb3", train_batch_size=8, minibatch_size=8
    )
    model = _view_model(config, make_view(config), 0, 1e-3)
    assert _torch_tanh_left(model.policy) == []
    assert any(type(m) is Tanh for m in model.policy.modules())
