"""Bad training input fails before any work starts, naming the culprit."""

from __future__ import annotations

import time

import pytest

from phobos import config as config_tools
from phobos.training.config import TrainConfig
from phobos.training.train import TrainRequest, check, run


def test_unknown_key_names_it_and_the_valid_ones():
    with pytest.raises(config_tools.ConfigError, match="unknown key 'learning_rate'.*valid keys"):
        config_tools.load(TrainConfig, None, ["learning_rate=0.1"])


def test_wrong_type_names_the_key():
    with pytest.raises(config_tools.ConfigError, match="total_env_steps: expected an integer"):
        config_tools.load(TrainConfig, None, ["total_env_steps=many"])
    with pytest.raises(config_tools.ConfigError, match="framework"):
        config_tools.load(TrainConfig, None, ["framework=tf"])


def test_yaml_file_and_overrides(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("env: phobos-sampling-v0\nframework: sb3\nhidden: [32, 32]\n")
    config = config_tools.load(TrainConfig, path, ["lr=0.001", "env_config={horizon_steps: 24}"])
    assert config.env == "phobos-sampling-v0" and config.hidden == (32, 32)
    assert config.lr == 0.001 and config.env_config == {"horizon_steps": 24}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env": "mars-rover-v9"}, "mars-rover-v9"),
        ({"env_config": {"horizon": 5}}, "unknown key 'horizon'"),
        ({"minibatch_size": 9000}, "minibatch_size 9000 exceeds"),
        ({"num_env_runners": -1}, "num_env_runners"),
        ({"total_env_steps": 0}, "total_env_steps must be at least 1"),
        ({"framework": "sb3", "learner": "ground_goldstone"}, "learner 'ground_goldstone'"),
        (
            {"env": "phobos-sampling-v0", "imitation_episodes": 2, "imitation_team": "trained"},
            "imitation_team 'trained' is not a scripted team of phobos-sampling-v0; choose from "
            "cautious, greedy, informed, oracle",
        ),
    ],
)
def test_bad_values_are_refused_before_ray_starts(changes, message):
    import ray

    config = config_tools.from_mapping(TrainConfig, changes)
    with pytest.raises((ValueError, KeyError), match=message):
        check(config)
    assert not ray.is_initialized()


def test_unreachable_cluster_is_a_clear_error_before_any_work(tmp_path):
    import ray

    began = time.monotonic()
    request = TrainRequest(TrainConfig(), tmp_path / "run", ray_address="127.0.0.1:1", quiet=True)
    with pytest.raises(ValueError, match="no Ray cluster reachable at '127.0.0.1:1'"):
        run(request)
    assert time.monotonic() - began < 10
    assert not (tmp_path / "run").exists()
    assert not ray.is_initialized()
