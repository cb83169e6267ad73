"""MaskablePPO on the batch core: the same actions as the ParallelEnv, a run, bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from phobos.agents.shared_policy import SPEC_FILE, WEIGHTS_FILE, load_shared_team
from phobos.agents.team_spec import TeamSpec, build_team
from phobos.envs import EnvSpec, make, make_batch, register, registered
from phobos.training import sb3_batch
from phobos.training.batch_vec_env import BatchVecEnv
from phobos.training.config import TrainConfig
from phobos.training.train import check
from tests.training.conftest import overrides, phobos

HORIZON = 24
SEEDS = [11, 12, 13]


NO_BATCH = "orbit-scheduling-nobatch-v0"
if NO_BATCH not in registered():  # a task without a batch core, registered by this test
    register(
        EnvSpec(
            id=NO_BATCH,
            entry_point="phobos.envs.orbit_scheduling.env:OrbitSchedulingEnv",
            config_entry_point="phobos.envs.orbit_scheduling.config:OrbitSchedulingConfig",
        )
    )
ENVS = ["orbit-scheduling-v0", "phobos-sampling-v0"]


def _trained_model(
    env_id: str = "orbit-scheduling-v0",
    seed: int = 0,
    critic: str = "local",
    policy_network: str = "mlp",
):
    """A model after two PPO updates on three 24-step episodes (weights no longer initial)."""
    torch.set_num_threads(1)
    config = TrainConfig(
        env=env_id,
        framework="sb3",
        sampler="batch",
        num_envs=len(SEEDS),
        train_batch_size=3 * 8,
        minibatch_size=60 if env_id.startswith("orbit") else 24,
        num_epochs=2,
        hidden=(32, 32),
        lr=3e-3,
        env_config={"horizon_steps": HORIZON},
        critic=critic,
        policy_network=policy_network,
    )
    core = make_batch(config.env, config.num_envs, **config.env_config)
    env = BatchVecEnv(core, config.env, SEEDS, joint_state=critic == "central")
    model = sb3_batch.new_model(config, env, seed, config.lr)
    model.learn(2 * config.train_batch_size * len(env.agents))
    return config, model


@pytest.mark.parametrize(
    ("env_id", "critic", "network"),
    [(env, critic, "mlp") for env in ENVS for critic in ("local", "central")]
    + [("phobos-sampling-v0", "central", "cells")],
)
def test_a_trained_shared_policy_acts_the_same_on_the_batch_path_and_in_the_parallel_env(
    env_id, critic, network, tmp_path
):
    config, model = _trained_model(env_id, critic=critic, policy_network=network)
    sb3_batch.export(model, model.env, config, tmp_path)
    env = make(config.env, horizon_steps=HORIZON)
    team = load_shared_team(str(tmp_path), env)
    roles = len(team[env.possible_agents[0]].role)

    # The batch path: fresh slots with the same first-episode seeds, SB3's own inference,
    # each slot's first episode recorded until it ends (sampling episodes end apart).
    core = make_batch(config.env, len(SEEDS), horizon_steps=HORIZON)
    slots = BatchVecEnv(core, config.env, SEEDS, joint_state=critic == "central")
    observations = slots.reset()
    agents = len(slots.agents)
    own = slots.actor_inputs
    record = [{"obs": [], "actions": [], "rewards": []} for _ in SEEDS]
    running = np.ones(len(SEEDS), dtype=bool)
    while running.any():
        seen = observations.reshape(len(SEEDS), agents, -1)
        actions, _ = model.predict(
            observations, deterministic=True, action_masks=slots.action_masks()
        )
        observations, rewards, dones, _ = slots.step(actions)
        for e in np.flatnonzero(running):
            record[e]["obs"].append(seen[e])
            record[e]["actions"].append(actions.reshape(len(SEEDS), agents)[e].tolist())
            record[e]["rewards"].append(rewards.reshape(len(SEEDS), agents)[e, 0])
        running &= ~dones.reshape(len(SEEDS), agents)[:, 0]

    used = set()
    for e, seed in enumerate(SEEDS):
        stepped, _ = env.reset(seed=seed)
        for t, (seen, batch_actions, reward) in enumerate(
            zip(record[e]["obs"], record[e]["actions"], record[e]["rewards"], strict=True)
        ):
            for i, agent in enumerate(env.possible_agents):  # what the slot saw, exactly
                vector = stepped[agent]["observations"]
                np.testing.assert_array_equal(seen[i, : own - roles], vector)
                np.testing.assert_array_equal(seen[i, own - roles : own], team[agent].role)
                if critic == "central":  # the joint state: every agent's observation
                    size = len(vector)
                    np.testing.assert_array_equal(
                        seen[i, own + i * size : own + (i + 1) * size], vector
                    )
            joint = dict(zip(env.possible_agents, batch_actions, strict=True))
            for agent in env.agents:
                taken, chosen = joint[agent], team[agent](stepped[agent])
                if chosen != taken:  # only a tie may differ: cells that look alike score alike
                    scores = team[agent].scores(stepped[agent])
                    assert scores[taken] == pytest.approx(scores[chosen], abs=1e-5), (
                        f"{seed} step {t}: {agent} took {taken}, its exported policy {chosen}"
                    )
            used.add(tuple(batch_actions))
            stepped, rewards, _, _, _ = env.step({agent: joint[agent] for agent in env.agents})
            assert rewards[env.possible_agents[0]] == pytest.approx(reward, rel=1e-5, abs=1e-6)
        assert not env.agents, f"seed {seed}: the ParallelEnv's episode went on"
    assert len(used) > 1  # the policy is not trivial: the team's joint action varied


def test_slots_carry_team_rewards_role_features_and_padded_masks():
    core = make_batch("orbit-scheduling-v0", 2, horizon_steps=4)
    slots = BatchVecEnv(core, "orbit-scheduling-v0", [1, 2])
    observations = slots.reset()
    assert slots.num_envs == 2 * 5 and observations.shape == (10, 71 + 3)
    roles = observations[:, -3:]
    assert roles.tolist()[:5] == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]]
    masks = slots.action_masks()
    assert masks.shape == (10, 7) and not masks[2:5, 3:].any()  # stations have 3 actions
    for _ in range(4):
        actions = np.zeros(10, dtype=np.int64)
        observations, rewards, dones, infos = slots.step(actions)
        assert (rewards.reshape(2, 5) == rewards.reshape(2, 5)[:, :1]).all()
    assert dones.all() and infos[0]["TimeLimit.truncated"]
    assert infos[0]["episode"]["l"] == 4 and "episode" not in infos[1]
    assert infos[3]["terminal_observation"].shape == (74,)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sb3batch") / "run"
    result = phobos(
        "train",
        "--out",
        str(folder),
        *overrides(
            [
                "framework=sb3",
                "sampler=batch",
                "num_envs=4",
                f"env_config={{horizon_steps: {HORIZON}}}",
                "train_batch_size=32",
                "minibatch_size=80",
                "num_epochs=1",
                "hidden=[16]",
                "total_env_steps=96",
                "checkpoint_every=2",
                "imitation_episodes=2",
                "imitation_epochs=1",
                "teacher_kl_coeff=1.0",
            ]
        ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result.stdout + result.stderr


def test_phobos_train_on_the_batch_sampler_exports_a_team_without_pickle(trained_run):
    folder, stdout = trained_run
    with (folder / "progress.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["env_steps"]) for r in rows] == [32, 64, 96]
    assert all(float(r["agent_steps_per_s"]) > 0 for r in rows)
    assert all(float(r["teacher_kl"]) >= 0 for r in rows)  # the KL phase ran every update
    checkpoints = list((folder / "tune").rglob("teacher.safetensors"))
    assert checkpoints, "checkpoints carry the teacher"
    policy = folder / "policy"
    assert sorted(p.name for p in policy.iterdir()) == ["phobos.json", SPEC_FILE, WEIGHTS_FILE]
    record = json.loads((policy / "phobos.json").read_text())
    assert record["env_steps"] == 96 and 0 < record["imitation_accuracy"] <= 1
    env = make("orbit-scheduling-v0", horizon_steps=HORIZON)
    team = build_team(TeamSpec.parse(f"shared:{policy}"), env)
    observations, _ = env.reset(seed=3)
    while env.agents:
        actions = {agent: team[agent](observations[agent]) for agent in env.agents}
        for agent, action in actions.items():
            assert observations[agent]["action_mask"][action] == 1
        observations, _, _, _, _ = env.step(actions)


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        ({"num_envs": 0}, "num_envs must be at least 1"),
        ({"num_envs": 3, "train_batch_size": 100}, "multiple of num_envs 3"),
        ({"num_envs": 4, "train_batch_size": 8, "minibatch_size": 41}, "exceeds the 40 samples"),
        ({"env": NO_BATCH, "num_envs": 4}, "has no batch core"),
        ({"teacher_kl_coeff": 0.5}, "teacher_kl_coeff needs a teacher"),
        ({"teacher_kl_coeff": -1.0}, "teacher_kl_coeff must be 0 or more"),
        ({"critic": "central", "sampler": "env"}, "critic 'central' needs sampler 'batch'"),
        (
            {"critic": "central", "framework": "rllib", "sampler": "env"},
            "critic 'central' needs sampler 'batch'",
        ),
    ],
)
def test_bad_batch_configs_are_refused_before_ray_starts(fields, culprit):
    base = {"framework": "sb3", "sampler": "batch", "train_batch_size": 64, "minibatch_size": 32}
    with pytest.raises(ValueError, match=culprit):
        check(TrainConfig(**(base | fields)))


def test_shared_policies_are_refused_when_they_do_not_fit(tmp_path):
    config, model = _trained_model()
    sb3_batch.export(model, model.env, config, tmp_path)
    with pytest.raises(ValueError, match="trained on orbit-scheduling-v0"):
        load_shared_team(str(tmp_path), make("phobos-sampling-v0"))
    with pytest.raises(ValueError, match="observations of 71"):
        load_shared_team(str(tmp_path), make("orbit-scheduling-v0", stations=("miyun",)))
    spec = json.loads((tmp_path / SPEC_FILE).read_text())
    (tmp_path / SPEC_FILE).write_text(json.dumps(spec | {"hidden": [32, 31]}))
    with pytest.raises(ValueError, match=r"actor.1 has shape"):
        load_shared_team(str(tmp_path), make("orbit-scheduling-v0"))
    (tmp_path / SPEC_FILE).write_text(json.dumps(spec | {"format": "pickle"}))
    with pytest.raises(ValueError, match="not a phobos-shared-mlp/1 spec"):
        load_shared_team(str(tmp_path), make("orbit-scheduling-v0"))
    (tmp_path / SPEC_FILE).write_text(json.dumps(spec))
    (tmp_path / WEIGHTS_FILE).write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_shared_team(str(tmp_path), make("orbit-scheduling-v0"))


def _divergence_after_training(coefficient: float, tmp_path) -> float:
    """KL(teacher || policy) on fixed observations after 3 updates at a large step size."""
    config, model = _trained_model()
    model.freeze_teacher()
    model.teacher_kl_coeff = coefficient
    model.learning_rate = 3e-2
    model._setup_lr_schedule()
    model.learn(3 * config.train_batch_size * 5, reset_num_timesteps=False)
    tmp_path.mkdir(parents=True)
    model.save(tmp_path / "model.zip")
    model.save_teacher(tmp_path)
    reloaded = sb3_batch.load_model(config, model.env, tmp_path)
    observations = torch.as_tensor(model.env.reset())
    masks = torch.as_tensor(model.env.action_masks())
    from phobos.training.teacher_kl import _log_probs

    with torch.no_grad():
        teacher = _log_probs(reloaded.teacher, observations, masks)
        policy = _log_probs(reloaded.policy, observations, masks)
        for a, b in zip(reloaded.teacher.parameters(), model.teacher.parameters(), strict=True):
            assert torch.equal(a, b)  # the teacher survives a checkpoint
    return float((teacher.exp() * (teacher - policy)).where(masks, 0.0).sum(1).mean())


def test_the_teacher_kl_phase_keeps_the_policy_near_its_warm_start(tmp_path):
    free = _divergence_after_training(0.0, tmp_path / "free")
    anchored = _divergence_after_training(5.0, tmp_path / "anchored")
    assert anchored < 0.5 * free, (anchored, free)


def test_potential_shaping_telescopes_to_the_true_return_and_leaves_episode_returns_alone():
    seeds = [4, 5]
    plain = BatchVecEnv(make_batch("orbit-scheduling-v0", 2, horizon_steps=12), "x", seeds)
    shaped = BatchVecEnv(
        make_batch("orbit-scheduling-v0", 2, horizon_steps=12), "x", seeds, shaping_gamma=1.0
    )
    plain.reset()
    shaped.reset()
    start = shaped.core.potential().copy()
    assert (start > 0).all()  # the memories start part full
    rng = np.random.default_rng(0)
    totals = {"plain": np.zeros(2), "shaped": np.zeros(2)}
    for _ in range(12):
        masks = plain.action_masks()
        actions = (rng.random(masks.shape) * masks).argmax(axis=1)
        _, reward, _, plain_infos = plain.step(actions)
        _, shaped_reward, _, shaped_infos = shaped.step(actions)
        totals["plain"] += reward.reshape(2, 5)[:, 0]
        totals["shaped"] += shaped_reward.reshape(2, 5)[:, 0]
    # With gamma = 1 the shaping telescopes: phi ends at 0, so the sum is R - phi(start).
    np.testing.assert_allclose(totals["shaped"], totals["plain"] - start, rtol=1e-5)
    for slot in (0, 5):
        assert shaped_infos[slot]["episode"]["r"] == plain_infos[slot]["episode"]["r"]


def test_reward_shaping_is_refused_where_no_potential_is_defined():
    with pytest.raises(ValueError, match="defines no potential"):
        core = make_batch("phobos-sampling-v0", 1)
        BatchVecEnv(core, "phobos-sampling-v0", [0], shaping_gamma=0.99)
    with pytest.raises(ValueError, match="reward_shaping needs framework 'sb3'"):
        check(TrainConfig(reward_shaping=True))
