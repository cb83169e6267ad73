"""On-policy cloning: the policy's own states labelled by the scripted team's array twin, a
policy that moves to that team, and the configs it refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phobos.agents.sampling_informed import InformedTeamArrays
from phobos.agents.sampling_policies import GreedyTeamArrays
from phobos.envs import make_batch
from phobos.training import sb3_batch
from phobos.training.config import TrainConfig
from phobos.training.dagger import _fly_labelled, _returns_to_go, imitate_on_policy
from phobos.training.train import check

HORIZON = 24
SEEDS = [41, 42, 43]


def _random_team(seed: int):
    rng = np.random.default_rng(seed)

    def act(observations, masks):
        scores = rng.random(masks.shape)
        return np.where(masks > 0, scores, -np.inf).argmax(axis=-1)

    return act


def test_the_rows_are_the_policy_s_states_labelled_by_the_expert():
    core = make_batch("phobos-sampling-v0", len(SEEDS), horizon_steps=HORIZON)
    expert = GreedyTeamArrays(core.config)
    observations, masks, labels, acted, rewards, alive = _fly_labelled(
        core, _random_team(0), expert, SEEDS
    )
    # The policy drove: replaying its actions from the reset gives the same states...
    replay, _ = core.reset(SEEDS)
    core.run_on = True
    for step in range(len(acted)):
        np.testing.assert_array_equal(replay, observations[step])
        np.testing.assert_array_equal(labels[step], expert(observations[step], masks[step]))
        replay, _, _, _, _ = core.step(acted[step])
    # ...and the expert would have chosen otherwise in some of them.
    assert (labels[alive] != acted[alive]).any()
    assert alive[0].all() and rewards.shape == alive.shape


def test_returns_to_go_are_discounted_and_stop_where_an_episode_ended():
    rewards = np.array([[1.0, 1.0], [2.0, 5.0], [4.0, 7.0]])
    alive = np.array([[True, True], [True, False], [True, False]])
    returns = _returns_to_go(rewards, alive, 0.5)
    np.testing.assert_allclose(returns[:, 0], [1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4])
    np.testing.assert_allclose(returns[:, 1], [1.0, 0.0, 0.0])


def test_each_round_clones_on_all_rounds_rows_labelled_by_the_expert(monkeypatch):
    import phobos.training.imitation as imitation

    torch.set_num_threads(1)
    config = TrainConfig(
        env="phobos-sampling-v0",
        framework="sb3",
        sampler="batch",
        num_envs=2,
        train_batch_size=8,
        minibatch_size=8,
        hidden=(16,),
        policy_network="cells",
        env_config={"horizon_steps": HORIZON},
        imitation_episodes=1,
        imitation_team="informed",
        dagger_rounds=2,
        dagger_episodes=3,
        dagger_epochs=2,
    )
    env = sb3_batch.make_env(config, 0)
    model = sb3_batch.new_model(config, env, 0, 3e-4)
    cloned = []
    real_clone = imitation.clone

    def spy(heads, parameters, rows, *args, **kwargs):
        cloned.append(rows)
        return real_clone(heads, parameters, rows, *args, **kwargs)

    monkeypatch.setattr(imitation, "clone", spy)
    rounds = imitate_on_policy(model, env, config, 0, log=lambda line: None)
    assert [r["round"] for r in rounds] == [1, 2] and len(cloned) == 2
    first, both = cloned
    assert len(both.actions) > len(first.actions)  # the second round adds to the first's rows
    np.testing.assert_array_equal(both.actions[: len(first.actions)], first.actions)
    # Every row's label is the informed team's choice in that row's state.
    expert = InformedTeamArrays(make_batch("phobos-sampling-v0", 1, horizon_steps=HORIZON).config)
    width = first.observations.shape[1] - env.role_features.shape[1]  # slots: state, role
    states = first.observations[:, :width].reshape(-1, 2, width)
    masks = first.masks.reshape(-1, 2, first.masks.shape[1])
    np.testing.assert_array_equal(expert(states, masks).reshape(-1), first.actions)


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        ({"dagger_rounds": -1}, "dagger_rounds must be 0 or more"),
        ({"dagger_rounds": 1, "imitation_episodes": 0}, "dagger_rounds needs framework 'sb3'"),
        ({"dagger_rounds": 1, "sampler": "env"}, "dagger_rounds needs framework 'sb3'"),
        ({"dagger_rounds": 1, "dagger_episodes": 0}, "dagger_episodes must be at least 1"),
        (
            {"dagger_rounds": 1, "imitation_team": "cautious"},
            "no array twin of team 'cautious' \\(teams with one: greedy, informed\\)",
        ),
    ],
)
def test_bad_on_policy_cloning_configs_are_refused_before_ray_starts(fields, culprit):
    import ray

    base = dict(env="phobos-sampling-v0", framework="sb3", sampler="batch", imitation_episodes=2)
    with pytest.raises(ValueError, match=culprit):
        check(TrainConfig(**(base | fields)))
    assert not ray.is_initialized()


def test_the_warm_start_collects_the_team_it_is_told_to():
    from phobos.training.imitation import collect

    send = make_batch("phobos-sampling-v0", 1).layout.SEND
    for team, sends in (("greedy", False), ("informed", True)):
        rows = collect("phobos-sampling-v0", {}, 2, 0, 0.99, team)["phobos_grunt"]
        assert bool((rows.actions == send).any()) == sends, team


def test_phobos_train_records_each_on_policy_round_in_the_export(tmp_path):
    import json

    from tests.training.conftest import overrides, phobos

    folder = tmp_path / "run"
    result = phobos(
        "train",
        "--config",
        "configs/train/sampling_lander_informed.yaml",
        "--out",
        str(folder),
        *overrides(
            [
                "num_envs=2",
                f"env_config={{horizon_steps: {HORIZON}}}",
                "train_batch_size=8",
                "minibatch_size=8",
                "hidden=[16]",
                "imitation_episodes=1",
                "imitation_epochs=1",
                "dagger_rounds=2",
                "dagger_episodes=2",
                "dagger_epochs=1",
            ]
        ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((folder / "policy" / "phobos.json").read_text())
    assert record["iteration"] == 0 and record["env_steps"] == 0
    assert [r["round"] for r in record["dagger_rounds"]] == [1, 2]
    assert record["imitation_accuracy"] == record["dagger_rounds"][-1]["accuracy"]
    assert "rollout_rounds" not in record
