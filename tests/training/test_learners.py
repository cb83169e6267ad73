"""``num_learners``: a remote learner trains and feeds the runners; several hold one policy."""

from __future__ import annotations

import numpy as np
import pytest

from phobos.agents.team_spec import TeamSpec, build_team
from phobos.envs import make
from phobos.training.config import TrainConfig
from phobos.training.train import check
from tests.training.conftest import TINY_ORBIT, overrides, phobos
from tests.training.test_rllib_batch import HORIZON, TINY


def _weights(holder, inference_only: bool = True) -> dict[str, np.ndarray]:
    """A learner's or an env runner's module weights, by module and parameter."""
    state = holder.module.get_state(inference_only=inference_only)
    return {f"{m}/{k}": np.asarray(v) for m, params in state.items() for k, v in params.items()}


def test_a_remote_learner_updates_the_policy_and_the_runners_fly_it(ray_local):
    from phobos.training.rllib_ppo import build_algorithm

    algorithm = build_algorithm(TrainConfig(seed=5, num_learners=1, **TINY))
    try:
        group = algorithm.learner_group
        assert group.is_remote and len(group._workers) == 1
        before = next(iter(group.foreach_learner(_weights))).get()
        algorithm.train()
        learned = next(iter(group.foreach_learner(_weights))).get()
        flown = algorithm.env_runner_group.foreach_env_runner(
            _weights, local_env_runner=True
        )[0]
    finally:
        algorithm.stop()
    assert any(not np.array_equal(learned[k], before[k]) for k in learned)
    assert learned.keys() == flown.keys()
    for name in learned:  # the sampling runner holds what the remote learner learned
        np.testing.assert_allclose(flown[name], learned[name], err_msg=name)


def _full_weights(learner) -> dict[str, np.ndarray]:
    return _weights(learner, inference_only=False)  # the critics too


def _nudge_the_second_learner(learner) -> None:
    import torch

    if torch.distributed.get_rank() == 1:
        with torch.no_grad():
            for param in (p for module in learner.module.values() for p in module.parameters()):
                param.add_(1.0)


def test_two_learners_hold_one_policy_through_imitation_and_updates(ray_local):
    from phobos.training.rllib_ppo import build_algorithm, warm_start

    config = TrainConfig(seed=5, num_learners=2, imitation_episodes=2, imitation_epochs=1, **TINY)
    algorithm = build_algorithm(config)
    try:
        group = algorithm.learner_group
        assert group.is_remote and len(group._workers) == 2
        [r.get() for r in group.foreach_learner(_nudge_the_second_learner)]
        [r.get() for r in group.foreach_learner(lambda learner: learner.agree_on_weights())]
        built = [r.get() for r in group.foreach_learner(_full_weights)]  # learner 0's again
        warm_start(algorithm, config, lambda line: None)
        cloned = [r.get() for r in group.foreach_learner(_full_weights)]
        algorithm.train()
        algorithm.train()
        learned = [r.get() for r in group.foreach_learner(_full_weights)]
        flown = algorithm.env_runner_group.foreach_env_runner(
            _weights, local_env_runner=True
        )[0]
    finally:
        algorithm.stop()
    for name in learned[0]:
        # Bit for bit: one policy, though each learner saw only its half of the batch.
        np.testing.assert_array_equal(built[1][name], built[0][name], err_msg=name)
        np.testing.assert_array_equal(cloned[1][name], cloned[0][name], err_msg=name)
        np.testing.assert_array_equal(learned[1][name], learned[0][name], err_msg=name)
    assert any(not np.array_equal(cloned[0][k], built[0][k]) for k in built[0])
    assert any(not np.array_equal(learned[0][k], cloned[0][k]) for k in cloned[0])
    for name in flown:  # the sampling runner flies what the learners learned
        np.testing.assert_allclose(flown[name], learned[0][name], err_msg=name)


def test_the_driver_learner_runs_on_the_threads_asked_for(ray_local):
    import torch

    from phobos.training.rllib_ppo import build_algorithm

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        algorithm = build_algorithm(TrainConfig(seed=5, learner_threads=2, **TINY))
        try:
            assert not algorithm.learner_group.is_remote
            assert torch.get_num_threads() == 2
        finally:
            algorithm.stop()
    finally:
        torch.set_num_threads(before)


def test_an_sb3_trial_learns_on_the_threads_asked_for(tmp_path):
    import json

    folder = tmp_path / "run"
    settings = [
        *TINY_ORBIT,
        "framework=sb3",
        "sampler=batch",
        "num_envs=4",
        "train_batch_size=32",
        "minibatch_size=64",
        "total_env_steps=32",
        "learner_threads=2",
    ]
    result = phobos("train", "--out", str(folder), *overrides(settings))
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((folder / "policy" / "phobos.json").read_text())
    assert record["torch_threads"] == 2  # as the trial ran, recorded by the trial


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        ({"num_learners": -1}, "num_learners must be 0 or more"),
        ({"num_learners": 1, "framework": "sb3"}, "needs framework 'rllib'"),
        (
            {"num_learners": 3, "num_envs": 4, "sampler": "batch"},
            "num_learners 3 must divide the 4 episodes",
        ),
        (
            {"num_learners": 2, "num_envs": 3, "num_env_runners": 3, "sampler": "batch"},
            r"the 9 episodes stepped at once \(num_envs 3 x 3 env runner\(s\)\)",
        ),
        ({"learner_threads": 0}, "learner_threads must be at least 1, got 0"),
    ],
)
def test_learner_counts_that_do_not_fit_are_refused_before_ray(fields, culprit):
    with pytest.raises(ValueError, match=culprit):
        check(TrainConfig(**fields))


def test_a_run_with_a_remote_learner_warm_starts_and_exports_a_policy_that_flies(tmp_path):
    folder = tmp_path / "run"
    settings = [
        *TINY_ORBIT,
        "sampler=batch",
        "num_envs=4",
        "total_env_steps=192",
        "imitation_episodes=2",
        "imitation_epochs=1",
    ]
    command = ["train", "--out", str(folder), "--num-learners", "1"]
    result = phobos(*command, *overrides(settings))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "imitation phobos_grunt" in result.stdout
    env = make("orbit-scheduling-v0", horizon_steps=HORIZON)
    team = build_team(TeamSpec.parse(f"rllib:{folder / 'policy'}"), env, trust=True)
    observations, _ = env.reset(seed=7)
    while env.agents:
        actions = {agent: team[agent](observations[agent]) for agent in env.agents}
        for agent, action in actions.items():
            assert observations[agent]["action_mask"][action] == 1
        observations, _, _, _, _ = env.step(actions)
