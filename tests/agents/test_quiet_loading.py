"""Loading and flying a trained policy prints nothing but what the user asked for.

RLlib 2.60 logs an ``RLModuleConfig`` deprecation for every module it builds, and torch warns
about read-only observation arrays (the ones decoded off the wire); neither may reach an agent
log or an evaluation. The warm start's losses are read without their graph (no UserWarning).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np

from phobos.envs import make

AGENT = "yinghuo1"


def _save_module(path):
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from phobos.agents.rl_module import MaskedPPOTorchModule

    env = make("orbit-scheduling-v0", horizon_steps=8)
    RLModuleSpec(
        module_class=MaskedPPOTorchModule,
        observation_space=env.observation_space(AGENT),
        action_space=env.action_space(AGENT),
        model_config={"fcnet_hiddens": [8]},
    ).build().save_to_path(path)


FLY = textwrap.dedent(
    """
    import sys
    import numpy as np
    from phobos.agents.loaders import load_rllib
    from phobos.envs import make

    env = make("orbit-scheduling-v0", horizon_steps=8)
    policy = load_rllib(sys.argv[1], env, "yinghuo1", trust=True)
    observations, _ = env.reset(seed=0)
    observation = {}
    for key, value in observations["yinghuo1"].items():
        value = np.array(value)
        value.flags.writeable = False  # as np.frombuffer gives it off the wire
        observation[key] = value
    print("action", policy.act(observation))
    """
)


def test_an_rllib_policy_loads_and_acts_without_warnings(tmp_path):
    _save_module(tmp_path / "module")
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", FLY, str(tmp_path / "module")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("action "), done.stdout
    assert "Deprecat" not in done.stderr and "Warning" not in done.stderr, done.stderr


def test_only_rllibs_module_config_deprecation_is_dropped(caplog):
    from ray._common.deprecation import deprecation_warning

    from phobos.agents.rl_module import RLMODULE_CONFIG_DEPRECATION

    with caplog.at_level("WARNING", logger="ray._common.deprecation"):
        deprecation_warning(old=RLMODULE_CONFIG_DEPRECATION, new="keywords")
        deprecation_warning(old="some_other_api()", new="another")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1 and "some_other_api()" in messages[0]


def test_the_warm_start_clones_without_warnings():
    import torch

    from phobos.training.imitation import Demonstrations, clone

    rng = np.random.default_rng(0)
    rows = Demonstrations(
        rng.normal(size=(64, 5)).astype(np.float32),
        np.ones((64, 3), dtype=np.int8),
        rng.integers(0, 3, size=64),
        rng.normal(size=64).astype(np.float32),
    )
    policy, value = torch.nn.Linear(5, 3), torch.nn.Linear(5, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = clone(
            lambda obs, mask: (policy(obs), value(obs)),
            [*policy.parameters(), *value.parameters()],
            rows,
            epochs=2,
            seed=0,
            batch_size=16,
        )
    assert set(metrics) == {"accuracy", "policy_loss", "value_loss"}
