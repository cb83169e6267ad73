"""RLlib's centralised critic (``critic: central``, batch sampler): the value function reads the
team's joint state, the actor only its own observation, and the export flies a ParallelEnv."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch

from phobos.agents.team_spec import TeamSpec, build_team
from phobos.envs import make
from phobos.training.config import TrainConfig
from phobos.training.train import check
from tests.test_cli_errors import _phobos, _refused
from tests.training.conftest import TINY_ORBIT, overrides, phobos

HORIZON = 24
CENTRAL = {
    "env_config": {"horizon_steps": HORIZON},
    "train_batch_size": 96,
    "minibatch_size": 48,
    "num_epochs": 1,
    "hidden": (16,),
    "sampler": "batch",
    "num_envs": 4,
    "critic": "central",
}


@pytest.fixture(scope="module")
def algorithm(ray_local):
    """A batch-sampled, central-critic PPO algorithm sampling in the driver, seed 3."""
    from phobos.training.rllib_ppo import build_algorithm

    algorithm = build_algorithm(TrainConfig(seed=3, **CENTRAL))
    yield algorithm
    algorithm.stop()


def test_each_agent_s_samples_carry_every_agent_s_observation_of_that_step(algorithm):
    agents = make("orbit-scheduling-v0", horizon_steps=HORIZON).possible_agents
    chunks = algorithm.env_runner.sample(num_timesteps=10 * CENTRAL["num_envs"], explore=True)
    episodes = defaultdict(dict)
    for chunk in chunks:
        episodes[chunk.multi_agent_episode_id][chunk.agent_id] = chunk.get_observations()
    assert len(episodes) == CENTRAL["num_envs"]
    for seen in episodes.values():
        joint = np.concatenate([seen[agent]["observations"] for agent in agents], axis=1)
        assert joint.shape == (11, 71 * len(agents))  # 10 steps and the observation after
        for agent in agents:
            np.testing.assert_array_equal(seen[agent]["joint_state"], joint)


def _learner_outputs(algorithm, module_name, observations):
    """Values and logits (train and inference passes) of the learner's module, as numpy."""
    from ray.rllib.core.columns import Columns

    def run(learner):
        module = learner.module[module_name]
        batch = {Columns.OBS: {k: torch.from_numpy(v) for k, v in observations.items()}}
        with torch.no_grad():
            train = module.forward_train(batch)
            acting = {k: v for k, v in batch[Columns.OBS].items() if k != "joint_state"}
            return {
                "values": module.compute_values(batch).numpy(),
                # How PPO's loss gets them: from the training pass's embeddings.
                "loss_values": module.compute_values(
                    batch, embeddings=train[Columns.EMBEDDINGS]
                ).numpy(),
                "train_logits": train[Columns.ACTION_DIST_INPUTS].numpy(),
                "logits": module.forward_inference({Columns.OBS: acting})[
                    Columns.ACTION_DIST_INPUTS
                ].numpy(),
            }

    return next(iter(algorithm.learner_group.foreach_learner(run))).get()


def test_the_critic_reads_other_agents_observations_and_the_actor_does_not(algorithm):
    chunk = next(
        c for c in algorithm.env_runner.sample(num_timesteps=32) if c.agent_id == "phobos_grunt"
    )
    observations = {k: np.array(v) for k, v in chunk.get_observations().items()}
    other = slice(71, 142)  # yinghuo1's part of the joint state (agents in the env's order)
    changed = {k: v.copy() for k, v in observations.items()}
    changed["joint_state"][:, other] = np.random.default_rng(0).random(
        (len(chunk) + 1, 71), dtype=np.float32
    )
    before = _learner_outputs(algorithm, "phobos_grunt", observations)
    after = _learner_outputs(algorithm, "phobos_grunt", changed)
    assert np.abs(after["values"] - before["values"]).min() > 0
    np.testing.assert_array_equal(after["loss_values"], after["values"])
    np.testing.assert_array_equal(before["loss_values"], before["values"])
    np.testing.assert_array_equal(after["train_logits"], before["train_logits"])
    np.testing.assert_array_equal(after["logits"], before["logits"])
    np.testing.assert_array_equal(before["logits"], before["train_logits"])
    # And PPO trains the pair: both losses finite for every module.
    result = algorithm.train()
    for module in ("phobos_grunt", "yinghuo1", "ground"):
        stats = result["learners"][module]
        assert np.isfinite(stats["vf_loss"]) and np.isfinite(stats["policy_loss"])


def test_a_central_critic_export_flies_the_parallel_env_and_phobos_evaluate(tmp_path):
    folder = tmp_path / "run"
    settings = [
        *TINY_ORBIT,
        "sampler=batch",
        "num_envs=4",
        "critic=central",
        "total_env_steps=96",
        "imitation_episodes=1",  # the warm start fits the value head on the joint state too
        "imitation_epochs=1",
    ]
    result = phobos("train", "--out", str(folder), *overrides(settings))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "imitation ground:" in result.stdout
    env = make("orbit-scheduling-v0", horizon_steps=HORIZON)
    team = build_team(TeamSpec.parse(f"rllib:{folder / 'policy'}"), env, trust=True)
    assert team["phobos_grunt"].module.central  # it is the central-critic module that flies
    observations, _ = env.reset(seed=11)
    steps = 0
    while env.agents:  # plain observations: no joint state anywhere
        assert "joint_state" not in observations["phobos_grunt"]
        actions = {agent: team[agent](observations[agent]) for agent in env.agents}
        observations, _, _, _, infos = env.step(actions)
        assert not any(info["action_masked"] for info in infos.values())
        steps += 1
    assert steps == HORIZON
    done = _phobos(
        "evaluate", "--policy", f"rllib:{folder / 'policy'}", "--trust-checkpoint",
        "--seeds", "1", "--set", f"horizon_steps={HORIZON}", "--workers", "0",
        "--no-progress", "--out", "out", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_central_critic_needs_the_batch_sampler_and_says_so_before_ray(tmp_path):
    check(TrainConfig(framework="rllib", **CENTRAL))  # allowed with the batch sampler
    with pytest.raises(ValueError, match="critic 'central' needs sampler 'batch'") as refused:
        check(TrainConfig(framework="rllib", **{**CENTRAL, "sampler": "env"}))
    assert "\n" not in str(refused.value) and "sampler 'env'" in str(refused.value)
    done = _phobos(
        "train", "--out", "run", "--set", "framework=rllib", "--set", "critic=central",
        cwd=tmp_path,
    )  # fmt: skip
    _refused(done, "train", "critic 'central' needs sampler 'batch'")
    assert not (tmp_path / "run").exists()
