from __future__ import annotations

import numpy as np
import pytest

from phobos import config as config_tools
from phobos.agents.sampling_policies import sampling_team
from phobos.envs.sampling import AGENTS, SamplingConfig
from phobos.envs.sampling.batch import PhobosSamplingBatch
from phobos.envs.sampling.env import PhobosSamplingEnv

LONG = {"lander": {"container_g": 2000.0}, "site": {"damage_given_failure": 0.0}}
"""Episodes that run to the horizon: more data reports, more advice, full buffers."""
MESSAGES = ("messages_sent", "messages_delivered", "messages_rejected", "messages_lost")


def random_masked(observations, rng):
    """A random allowed action per agent; the lander sends half the time it may."""
    actions = {}
    for agent in AGENTS:
        mask = observations[agent]["action_mask"]
        if agent == AGENTS[0] and mask[1] and rng.random() < 0.5:
            actions[agent] = 1
        else:
            actions[agent] = int(rng.choice(np.flatnonzero(mask)))
    return actions


def assert_same_view(observations, batch_obs, batch_mask, row=0):
    for i, agent in enumerate(AGENTS):
        np.testing.assert_array_equal(observations[agent]["observations"], batch_obs[row, i])
        mask = observations[agent]["action_mask"]
        np.testing.assert_array_equal(mask, batch_mask[row, i, : len(mask)])
        assert not batch_mask[row, i, len(mask) :].any()  # padding: forbidden


@pytest.mark.parametrize(
    ("overrides", "policy"),
    [
        ({}, "random"),
        ({}, "greedy"),
        ({}, "cautious"),
        ({"message_loss": 0.3, "message_buffer": 2, **LONG}, "random"),
        ({"message_loss": 0.3, "message_buffer": 2}, "cautious"),
    ],
)
@pytest.mark.parametrize("seed", [0, 5])
def test_batch_of_one_equals_parallel_env_step_for_step(overrides, policy, seed):
    config = config_tools.replace(SamplingConfig(), **overrides)
    env = PhobosSamplingEnv(config)
    batch = PhobosSamplingBatch(config, num_envs=1)
    team = None if policy == "random" else sampling_team(policy, env)
    observations, _ = env.reset(seed=seed)
    batch_obs, batch_mask = batch.reset([seed])
    rng = np.random.default_rng(seed + 1000)
    while True:
        assert_same_view(observations, batch_obs, batch_mask)
        if not env.agents:
            break
        if team is None:
            actions = random_masked(observations, rng)
        else:
            actions = {agent: int(team[agent].act(observations[agent])) for agent in AGENTS}
        observations, rewards, terminations, truncations, infos = env.step(actions)
        batch_obs, batch_mask, reward, done, info = batch.step(
            np.array([[actions[agent] for agent in AGENTS]])
        )
        lander = AGENTS[0]
        assert rewards[lander] == reward[0]
        assert terminations[lander] == info["terminated"][0]
        assert truncations[lander] == info["truncated"][0]
        assert done[0] == (terminations[lander] or truncations[lander])
        for part in ("sample_value", "diversity_bonus", "failure_penalty", "energy_penalty"):
            assert infos[lander][part] == info[part][0], part
        assert [infos[a]["action_masked"] for a in AGENTS] == info["masked"][0].tolist()
        stats = env.router.stats
        counts = (stats.sent, stats.delivered, stats.rejected, stats.lost)
        assert counts == tuple(batch.totals[key][0] for key in MESSAGES)
    summary, batch_summary = infos[lander]["episode"], info["episode"]
    assert set(summary) == set(batch_summary)
    for key, value in summary.items():
        assert value == batch_summary[key][0], key
    if policy == "cautious" and not overrides:  # the round trip: data went, advice came back
        assert summary["messages_delivered"] >= 2 and summary["samples_with_advice"] >= 1


def test_batch_of_n_equals_n_envs_with_episodes_ending_and_restarting_apart():
    config = SamplingConfig()
    seeds = [3, 4, 5, 6]
    batch = PhobosSamplingBatch(config, num_envs=len(seeds))
    envs = [PhobosSamplingEnv(config) for _ in seeds]
    views = [env.reset(seed=seed)[0] for env, seed in zip(envs, seeds, strict=True)]
    batch_obs, batch_mask = batch.reset(seeds)
    rngs = [np.random.default_rng(100 + seed) for seed in seeds]
    ended_at, restarts, next_seed = [], 0, 50
    for step in range(150):
        actions = [random_masked(view, rng) for view, rng in zip(views, rngs, strict=True)]
        batch_obs, batch_mask, reward, done, _ = batch.step(
            np.array([[a[agent] for agent in AGENTS] for a in actions])
        )
        for i, env in enumerate(envs):
            views[i], rewards, *_ = env.step(actions[i])
            assert rewards[AGENTS[0]] == reward[i]
            assert_same_view(views[i], batch_obs, batch_mask, row=i)
            assert done[i] == (not env.agents)
        if done.any():
            finished = np.flatnonzero(done)
            ended_at.append((step, finished.tolist()))
            # Restart only the finished episodes: one with a new seed, the rest continuing
            # their generators; the others carry on untouched.
            new_seeds = [next_seed] + [None] * (len(finished) - 1)
            batch_obs, batch_mask = batch.reset(new_seeds, indices=finished)
            for i, seed in zip(finished, new_seeds, strict=True):
                views[i], _ = envs[i].reset(seed=seed)
            next_seed += 1
            restarts += len(finished)
            for i in range(len(envs)):
                assert_same_view(views[i], batch_obs, batch_mask, row=i)
    # Episodes ended at different steps, and some ended while others were mid-episode.
    assert restarts >= 4
    assert len({step for step, _ in ended_at}) >= 3
    assert any(len(finished) < len(seeds) for _, finished in ended_at)


def test_stepping_a_finished_episode_raises_until_it_is_restarted():
    batch = PhobosSamplingBatch(num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        batch.step(np.zeros((2, 2), dtype=np.int64))
    _, masks = batch.reset([1, 2])
    rng = np.random.default_rng(0)
    done = np.zeros(2, dtype=bool)
    while not done.any():
        actions = (rng.random(masks.shape) * masks).argmax(axis=2)
        _, masks, _, done, info = batch.step(actions)
    assert "episode" in info
    with pytest.raises(RuntimeError, match=r"episodes \[.*\] are over"):
        batch.step(np.zeros((2, 2), dtype=np.int64))
    batch.reset(indices=np.flatnonzero(done))
    batch.step(np.zeros((2, 2), dtype=np.int64))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: PhobosSamplingBatch(num_envs=0), "num_envs"),
        (lambda: PhobosSamplingBatch(num_envs=2.0), "num_envs"),
        (lambda: PhobosSamplingBatch(num_envs=2).reset([1, 2, 3]), "3 seeds for 2"),
        (lambda: PhobosSamplingBatch(num_envs=2).reset(indices=[0]), "first reset"),
        (lambda: _started(2).reset([1], indices=[0, 1]), "1 seeds for 2"),
        (lambda: _started(2).reset(indices=[2]), "indices"),
        (lambda: _started(2).reset(indices=[1, 1]), "indices"),
        (lambda: _started(2).step(np.zeros((2,), dtype=np.int64)), "shape"),
        (lambda: _started(2).step(np.zeros((2, 2))), "integers"),
        (lambda: _started(2).step(np.array([[0, 0], [200, 0]])), "action 200 of agent 'phob"),
        (lambda: _started(2).step(np.array([[0, -1], [0, 0]])), "agent 'science_team'"),
        (lambda: _started(1).step(np.array([[0, 37]])), r"outside Discrete\(37\)"),
    ],
)
def test_bad_input_is_a_value_error_naming_it(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _started(n):
    batch = PhobosSamplingBatch(num_envs=n)
    batch.reset(list(range(n)))
    return batch
