"""RLlib PPO sampled by the batch core: same trajectories as the ParallelEnv, trains, exports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
import torch

from phobos.agents.roles import module_id
from phobos.agents.team_spec import TeamSpec, build_team
from phobos.envs import make
from phobos.training.config import TrainConfig
from phobos.training.train import check
from tests.training.conftest import TINY_ORBIT, overrides, phobos

HORIZON = 24
TINY = {
    "env_config": {"horizon_steps": HORIZON},
    "train_batch_size": 96,
    "minibatch_size": 48,
    "num_epochs": 1,
    "hidden": (16,),
    "sampler": "batch",
    "num_envs": 4,
}


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from phobos.ray_cluster import init_ray

    torch.set_num_threads(1)
    started = init_ray(2)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def algorithm(ray_local):
    """A batch-sampled PPO algorithm sampling in the driver (0 env runners), seed 3."""
    from phobos.training.rllib_ppo import build_algorithm

    algorithm = build_algorithm(TrainConfig(seed=3, **TINY))
    yield algorithm
    algorithm.stop()


def _greedy(module, observation):
    """The module's greedy action for one agent's observation, as the ParallelEnv path runs it."""
    from ray.rllib.core.columns import Columns

    batch = {
        Columns.OBS: {
            "observations": torch.from_numpy(observation["observations"][None]),
            "action_mask": torch.from_numpy(observation["action_mask"][None]),
        }
    }
    with torch.no_grad():
        logits = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS][0]
    return int(torch.argmax(logits)), logits.numpy()


def _reference(modules, seed, episodes):
    """``episodes`` ParallelEnv episodes in a row (seeded once), greedy, one agent at a time."""
    env = make("orbit-scheduling-v0", horizon_steps=HORIZON)
    runs = []
    observations, _ = env.reset(seed=seed)
    for episode in range(episodes):
        if episode:
            observations, _ = env.reset()
        run = defaultdict(lambda: defaultdict(list))
        while env.agents:
            actions = {}
            for agent in env.agents:
                action, logits = _greedy(modules[module_id(agent)], observations[agent])
                actions[agent] = action
                run[agent]["obs"].append(observations[agent]["observations"])
                run[agent]["mask"].append(observations[agent]["action_mask"])
                run[agent]["logits"].append(logits)
            observations, rewards, _, _, _ = env.step(actions)
            for agent, action in actions.items():
                run[agent]["actions"].append(action)
                run[agent]["rewards"].append(rewards[agent])
        for agent in run:
            run[agent]["obs"].append(observations[agent]["observations"])
            run[agent]["mask"].append(observations[agent]["action_mask"])
        runs.append(run)
    return runs


def _joined(chunks):
    """Chunks of the same (episode, agent) joined in time order: ``{(episode, agent): data}``."""
    pieces = defaultdict(list)
    for chunk in chunks:
        episode = chunk.multi_agent_episode_id.split("@")[0]
        pieces[(episode, chunk.agent_id)].append(chunk)
    joined = {}
    for key, parts in pieces.items():
        parts.sort(key=lambda c: c.t_started)
        observations = [parts[0].get_observations(0)] + [
            p.get_observations(slice(1, None)) for p in parts
        ]
        joined[key] = {
            "obs": np.concatenate(
                [observations[0]["observations"][None]]
                + [o["observations"] for o in observations[1:]]
            ),
            "mask": np.concatenate(
                [observations[0]["action_mask"][None]]
                + [o["action_mask"] for o in observations[1:]]
            ),
            "actions": np.concatenate([p.get_actions() for p in parts]),
            "rewards": np.concatenate([p.get_rewards() for p in parts]),
            "logits": np.concatenate(
                [p.get_extra_model_outputs("action_dist_inputs") for p in parts]
            ),
            "starts": [p.t_started for p in parts],
            "done": parts[-1].is_truncated,
        }
    return joined


def test_runner_samples_the_parallel_env_trajectories_for_the_same_seeds_and_weights(algorithm):
    """Greedy on both paths, in fragments of 7 steps cut across two episodes of 24 steps."""
    runner = algorithm.env_runner
    num_envs = TINY["num_envs"]
    chunks = []
    for _ in range(7):  # 7 * 7 = 49 steps: two whole episodes and one step of a third
        chunks += runner.sample(num_timesteps=7 * num_envs, explore=False)
    joined = _joined(chunks)
    order = list(dict.fromkeys(episode for episode, _ in joined))
    assert len(order) == 3 * num_envs
    modules = {m: runner.module[m] for m in ("phobos_grunt", "yinghuo1", "ground")}
    for i in range(num_envs):
        # Episode i of the driver's runner is seeded 3 + i; its next episode continues its rng.
        reference = _reference(modules, 3 + i, 2)
        for round_, run in enumerate(reference):
            episode = order[round_ * num_envs + i]
            for agent, expected in run.items():
                got = joined[(episode, agent)]
                # Cut every 7 steps: 21 + 3 ends the first episode, the second runs 4 + 7 + 7 + 6.
                assert got["starts"] == [[0, 7, 14, 21], [0, 4, 11, 18]][round_]
                np.testing.assert_array_equal(got["actions"], expected["actions"])
                np.testing.assert_array_equal(got["rewards"], np.float32(expected["rewards"]))
                np.testing.assert_array_equal(got["obs"], np.stack(expected["obs"]))
                np.testing.assert_array_equal(got["mask"], np.stack(expected["mask"]))
                np.testing.assert_allclose(got["logits"], np.stack(expected["logits"]), atol=1e-5)
                assert got["done"]


def test_runner_samples_whole_episodes_on_request(algorithm):
    chunks = algorithm.env_runner.sample(num_episodes=TINY["num_envs"], explore=False)
    assert len(chunks) == TINY["num_envs"] * 5
    assert all(c.is_truncated and c.t_started == 0 and len(c) == HORIZON for c in chunks)
    assert len({c.multi_agent_episode_id for c in chunks}) == TINY["num_envs"]
    assert {c.module_id for c in chunks} == {"phobos_grunt", "yinghuo1", "ground"}


def test_metrics_count_env_steps_and_report_team_returns(algorithm):
    from phobos.training.rllib_ppo import _row

    algorithm.env_runner.get_metrics()  # flush what earlier tests sampled outside train()
    results = [algorithm.train() for _ in range(2)]  # 96 env steps each: 4 episodes x 24 steps
    for result in results:
        runners = result["env_runners"]
        assert runners["num_env_steps_sampled"] == 96
        assert sum(runners["num_agent_steps_sampled"].values()) == 96 * 5
    row = _row(2, 192, 1.0, 96, 1.0, results[-1])
    assert np.isfinite(row["team_return_mean"]) and row["episode_len_mean"] == HORIZON
    assert results[-1]["env_runners"]["num_episodes"] == 4


@pytest.mark.parametrize("runners", [0, 1])
def test_ppo_trains_on_the_batch_runner_and_syncs_weights(ray_local, runners):
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE

    from phobos.training.rllib_ppo import build_algorithm

    algorithm = build_algorithm(TrainConfig(seed=1, num_env_runners=runners, **TINY))
    try:
        before = algorithm.learner_group.get_weights()
        for _ in range(3):
            result = algorithm.train()
            assert result["env_runners"]["num_env_steps_sampled"] == 96
            assert np.isfinite(result["learners"]["phobos_grunt"]["policy_loss"])
        after = algorithm.learner_group.get_weights()
        changed = [
            not np.allclose(before["ground"][k], after["ground"][k]) for k in before["ground"]
        ]
        assert any(changed)
        # What the samplers fly: the policy half (the critic stays with the learner).
        acting = algorithm.learner_group.get_state(
            components=f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}", inference_only=True
        )[COMPONENT_LEARNER][COMPONENT_RL_MODULE]
        assert any(key.startswith("pi.") for key in acting["ground"])
        sampler_states = algorithm.env_runner_group.foreach_env_runner(
            lambda runner: runner.get_state(components=COMPONENT_RL_MODULE)[COMPONENT_RL_MODULE],
            local_env_runner=runners == 0,
        )
        for state in sampler_states:  # every sampler flies the learner's latest weights
            for module, weights in acting.items():
                for key, value in weights.items():
                    np.testing.assert_allclose(state[module][key], value, atol=1e-6)
    finally:
        algorithm.stop()


def _acting_weights(algorithm):
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE

    return algorithm.learner_group.get_state(
        components=f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}", inference_only=True
    )[COMPONENT_LEARNER][COMPONENT_RL_MODULE]


def test_a_restored_checkpoint_puts_its_weights_in_the_batch_runner(ray_local, tmp_path):
    from ray.rllib.core import COMPONENT_RL_MODULE

    from phobos.training.rllib_ppo import build_algorithm

    config = TrainConfig(seed=5, **TINY)
    first = build_algorithm(config)
    try:
        first.train()
        first.save_to_path(str(tmp_path))
        saved = _acting_weights(first)
    finally:
        first.stop()
    second = build_algorithm(config)
    try:
        fresh = second.env_runner.get_state(components=COMPONENT_RL_MODULE)[COMPONENT_RL_MODULE]
        assert not np.array_equal(
            fresh["ground"]["pi.net.mlp.0.weight"], saved["ground"]["pi.net.mlp.0.weight"]
        )
        second.restore_from_path(str(tmp_path))
        flown = second.env_runner.get_state(components=COMPONENT_RL_MODULE)[COMPONENT_RL_MODULE]
        for module, weights in saved.items():
            for key, value in weights.items():
                np.testing.assert_array_equal(flown[module][key], value)
        assert second.train()["env_runners"]["num_env_steps_sampled"] == 96
    finally:
        second.stop()


def test_check_refuses_bad_batch_settings_before_ray():
    with pytest.raises(ValueError, match="num_envs"):
        check(TrainConfig(**{**TINY, "num_envs": 0}))
    with pytest.raises(ValueError, match="phobos-sampling-v0"):
        check(TrainConfig(env="phobos-sampling-v0", sampler="batch"))


BATCH = [*TINY_ORBIT, "sampler=batch", "num_envs=4"]


def test_exported_batch_trained_policy_flies_the_parallel_env(tmp_path):
    folder = tmp_path / "run"
    result = phobos("train", "--out", str(folder), *overrides([*BATCH, "total_env_steps=192"]))
    assert result.returncode == 0, result.stderr[-3000:]
    env = make("orbit-scheduling-v0", horizon_steps=HORIZON)
    team = build_team(TeamSpec.parse(f"rllib:{folder / 'policy'}"), env, trust=True)
    observations, _ = env.reset(seed=11)
    steps = 0
    while env.agents:
        actions = {agent: team[agent](observations[agent]) for agent in env.agents}
        for agent, action in actions.items():
            assert observations[agent]["action_mask"][action] == 1
        observations, _, _, _, infos = env.step(actions)
        assert not any(info["action_masked"] for info in infos.values())
        steps += 1
    assert steps == HORIZON
    assert team["ground_miyun"].module is team["ground_bear_lakes"].module


def _batch_runner_pids(session: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != session:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ")
        except (OSError, ProcessLookupError):
            continue
        if b"BatchEnvRunner" in command:
            pids.append(int(entry))
    return pids


@pytest.mark.slow
def test_a_killed_batch_runner_is_restarted_and_training_completes(run_folder):
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    settings = [*BATCH, "total_env_steps=960", "num_env_runners=1"]
    command = [sys.executable, "-m", "phobos.cli", "train", "--out", str(run_folder)]
    process = subprocess.Popen(
        command + overrides(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    killed = []
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("iter    2") and not killed:
                killed = _batch_runner_pids(process.pid)
                assert killed, "no batch env runner process found in the training session"
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
        assert process.wait(timeout=60) == 0, "".join(lines[-40:])
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    assert killed
    assert (run_folder / "policy" / "phobos.json").exists()
