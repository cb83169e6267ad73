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
from tests.training.conftest import TINY_ORBIT, env_runner_pids, overrides, phobos

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


def _reference(env_id, env_config, modules, seed, steps):
    """ParallelEnv episodes in a row (seeded once), greedy, until ``steps`` steps were taken."""
    env = make(env_id, **env_config)
    runs = []
    observations, _ = env.reset(seed=seed)
    while steps > 0:
        if runs:
            observations, _ = env.reset()
        run = defaultdict(lambda: defaultdict(list))
        terminated = False
        while env.agents and steps > 0:
            actions = {}
            for agent in env.agents:
                action, logits = _greedy(modules[module_id(agent)], observations[agent])
                actions[agent] = action
                run[agent]["obs"].append(observations[agent]["observations"])
                run[agent]["mask"].append(observations[agent]["action_mask"])
                run[agent]["logits"].append(logits)
            observations, rewards, terminations, _, _ = env.step(actions)
            terminated = all(terminations.values())
            for agent, action in actions.items():
                run[agent]["actions"].append(action)
                run[agent]["rewards"].append(rewards[agent])
            steps -= 1
        for agent in run:
            run[agent]["obs"].append(observations[agent]["observations"])
            run[agent]["mask"].append(observations[agent]["action_mask"])
            run[agent]["ended"] = not env.agents
            run[agent]["terminated"] = terminated
        runs.append(run)
    return runs


def _joined(chunks):
    """Chunks of the same (episode, agent) joined in time order: ``{episode: {agent: data}}``."""
    pieces = defaultdict(list)
    for chunk in chunks:
        episode = chunk.multi_agent_episode_id.split("@")[0]
        pieces[(episode, chunk.agent_id)].append(chunk)
    joined = defaultdict(dict)
    for (episode, agent), parts in pieces.items():
        parts.sort(key=lambda c: c.t_started)
        for before, after in zip(parts, parts[1:], strict=False):  # chunks follow on
            assert after.t_started == before.t_started + len(before)
            np.testing.assert_array_equal(
                after.get_observations(0)["observations"],
                before.get_observations(-1)["observations"],
            )
        observations = [p.get_observations(slice(0, len(p))) for p in parts]
        last = parts[-1].get_observations(-1)
        joined[episode][agent] = {
            "obs": np.concatenate(
                [o["observations"] for o in observations] + [last["observations"][None]]
            ),
            "mask": np.concatenate(
                [o["action_mask"] for o in observations] + [last["action_mask"][None]]
            ),
            "actions": np.concatenate([p.get_actions() for p in parts]),
            "rewards": np.concatenate([p.get_rewards() for p in parts]),
            "logits": np.concatenate(
                [p.get_extra_model_outputs("action_dist_inputs") for p in parts]
            ),
            "starts": [p.t_started for p in parts],
            "ended": parts[-1].is_done,
            "terminated": parts[-1].is_terminated,
        }
    return joined


TASKS = [
    ("orbit-scheduling-v0", {"horizon_steps": HORIZON}),  # every episode ends at once
    # A 20 g container seals after a few samples: episodes end apart, by termination.
    ("phobos-sampling-v0", {"lander": {"container_g": 20.0}}),
]


@pytest.mark.parametrize(("env_id", "env_config"), TASKS)
def test_runner_samples_the_parallel_env_trajectories_for_the_same_seeds_and_weights(
    ray_local, env_id, env_config
):
    """Greedy on both paths, in fragments of 7 steps cut across episodes."""
    from phobos.training.rllib_ppo import build_algorithm

    settings = {**TINY, "env": env_id, "env_config": env_config, "seed": 3}
    algorithm = build_algorithm(TrainConfig(**settings))
    try:
        runner = algorithm.env_runner
        with torch.no_grad():  # a sharper untrained policy: greedy actions vary with the state
            for module in runner.module.values():
                for name, parameter in module.named_parameters():
                    if name.startswith("pi.") or "actor" in name:
                        parameter.mul_(30.0)
        num_envs = TINY["num_envs"]
        chunks = []
        for _ in range(7):  # 49 steps: orbit's two whole episodes and one step of a third
            chunks += runner.sample(num_timesteps=7 * num_envs, explore=False)
        joined = _joined(chunks)
        modules = dict(runner.module.items())
        matched = 0
        for i in range(num_envs):
            # Episode i of the driver's runner is seeded 3 + i; then it continues its rng.
            for expected_run in _reference(env_id, env_config, modules, 3 + i, 49):
                agent0 = next(iter(expected_run))
                first = expected_run[agent0]["obs"][0]
                found = [e for e in joined.values() if np.array_equal(e[agent0]["obs"][0], first)]
                assert len(found) == 1, f"episode {i}: {len(found)} sampled episodes match"
                matched += 1
                for agent, expected in expected_run.items():
                    got = found[0][agent]
                    np.testing.assert_array_equal(got["actions"], expected["actions"])
                    np.testing.assert_array_equal(got["rewards"], np.float32(expected["rewards"]))
                    np.testing.assert_array_equal(got["obs"], np.stack(expected["obs"]))
                    np.testing.assert_array_equal(got["mask"], np.stack(expected["mask"]))
                    np.testing.assert_allclose(
                        got["logits"], np.stack(expected["logits"]), rtol=1e-5, atol=1e-4
                    )
                    assert got["ended"] == expected["ended"]
                    assert got["terminated"] == (expected["ended"] and expected["terminated"])
        assert matched == len(joined)
        if env_id.startswith("phobos-sampling"):  # some ended early, by termination
            assert len(joined) > num_envs
            assert any(e["phobos_grunt"]["terminated"] for e in joined.values())
        if env_id.startswith("orbit"):  # cut every 7 steps: 21 + 3 end the first episode
            starts = sorted(e["phobos_grunt"]["starts"] for e in joined.values())
            expected = [[0]] + [[0, 4, 11, 18]] + [[0, 7, 14, 21]]
            assert starts == sorted(expected * num_envs)
    finally:
        algorithm.stop()


def test_runner_samples_whole_episodes_on_request(algorithm):
    chunks = algorithm.env_runner.sample(num_episodes=TINY["num_envs"], explore=False)
    assert len(chunks) == TINY["num_envs"] * 5
    assert all(c.is_truncated and c.t_started == 0 and len(c) == HORIZON for c in chunks)
    assert len({c.multi_agent_episode_id for c in chunks}) == TINY["num_envs"]
    assert {c.module_id for c in chunks} == {"phobos_grunt", "yinghuo1", "ground"}


def test_chunks_cross_the_object_store_unchanged(algorithm):
    import ray
    import tree

    chunks = algorithm.env_runner.sample(num_episodes=TINY["num_envs"], explore=True)
    # The runner registered its whole-chunk pickling as it was built (the driver's, here).
    back = ray.get(ray.put(chunks))
    assert len(back) == len(chunks)
    for sent, got in zip(chunks, back, strict=True):
        assert type(got) is type(sent)
        sent_state, got_state = sent.get_state(), got.get_state()
        assert tree.flatten_with_path(sent_state) and got_state.keys() == sent_state.keys()
        for (path, a), (path_b, b) in zip(
            tree.flatten_with_path(sent_state), tree.flatten_with_path(got_state), strict=True
        ):
            assert path == path_b
            np.testing.assert_array_equal(np.asarray(b), np.asarray(a), err_msg=str(path))


def test_exploration_is_seeded_allowed_and_its_logp_is_the_module_s(ray_local):
    from phobos.training.rllib_ppo import build_algorithm

    samples = []
    for _ in range(2):  # the same seed twice: the same exploratory actions
        algorithm = build_algorithm(TrainConfig(seed=9, **TINY))
        try:
            samples.append(algorithm.env_runner.sample(num_timesteps=40, explore=True))
        finally:
            algorithm.stop()
    for one, two in zip(*samples, strict=True):
        np.testing.assert_array_equal(one.get_actions(), two.get_actions())
    actions = np.concatenate([c.get_actions() for c in samples[0]])
    assert len(np.unique(actions)) > 2  # it explores
    for chunk in samples[0]:
        taken = chunk.get_actions()
        masks = chunk.get_observations(slice(0, len(chunk)))["action_mask"]
        assert (masks[np.arange(len(chunk)), taken] == 1).all()
        logits = torch.from_numpy(chunk.get_extra_model_outputs("action_dist_inputs"))
        expected = torch.log_softmax(logits, dim=-1)[np.arange(len(chunk)), taken]
        np.testing.assert_allclose(
            chunk.get_extra_model_outputs("action_logp"), expected.numpy(), rtol=1e-5, atol=1e-6
        )


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


def test_check_refuses_bad_batch_settings_before_ray(monkeypatch):
    from dataclasses import replace

    from phobos.envs import registry

    with pytest.raises(ValueError, match="num_envs"):
        check(TrainConfig(**{**TINY, "num_envs": 0}))
    # A task registered without a batch core (every registered task has one today).
    bare = replace(registry.spec("orbit-scheduling-v0"), batch_entry_point=None)
    monkeypatch.setitem(registry._REGISTRY, "orbit-scheduling-v0", bare)
    with pytest.raises(ValueError, match="orbit-scheduling-v0 has no batch core"):
        check(TrainConfig(**TINY))
    check(TrainConfig(**{**TINY, "sampler": "env"}))


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
                killed = env_runner_pids(process.pid, b"BatchEnvRunner")
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
