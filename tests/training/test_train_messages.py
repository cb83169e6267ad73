"""``phobos train``'s messages to a newcomer: the warm start that spends the whole time budget
is named at once (not "raise total_env_steps"), and Ray's and RLlib's console noise (INFO
banners, the gputil advice, core-worker advice, the new-API-stack note) stays off stderr."""

from __future__ import annotations

import pytest

from tests.test_cli_errors import _phobos, _refused

TINY = [
    "--set", "env_config.horizon_steps=8",
    "--set", "imitation_episodes=1",
    "--set", "imitation_epochs=1",
    "--set", "time_budget_s=0.001",
    "--set", "train_batch_size=64",
    "--set", "minibatch_size=32",
]


@pytest.mark.parametrize("framework", ["rllib", "sb3"])
def test_a_warm_start_that_spends_the_budget_is_named(tmp_path, framework):
    sampler = ["--set", "sampler=batch", "--set", "num_envs=4"] if framework == "sb3" else []
    done = _phobos(
        "train", "--out", "run", "--set", f"framework={framework}", "--set", "trial_seeds=[0]",
        *sampler, *TINY, cwd=tmp_path, timeout=240,
    )
    _refused(done, "train", "the warm start (imitation_episodes=1")
    assert "raise time_budget_s or shorten the warm start" in done.stderr
    assert "warm start: cloning the greedy team from 1 episodes" in done.stdout
