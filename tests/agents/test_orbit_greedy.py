from __future__ import annotations

import numpy as np
import pytest

from phobos.agents import RandomPolicy, make_team, policy_names
from phobos.envs import make


def team_returns(name: str, seeds: range) -> list[float]:
    env = make("orbit-scheduling-v0")
    returns = []
    for seed in seeds:
        team = make_team(name, env, seed=seed)
        observations, _ = env.reset(seed=seed)
        total = 0.0
        while env.agents:
            actions = {agent: team[agent](observations[agent]) for agent in env.agents}
            observations, rewards, *_ = env.step(actions)
            total += rewards["phobos_grunt"]
        returns.append(total)
    return returns


def test_greedy_team_beats_random_team_by_a_clear_margin():
    seeds = range(100, 108)
    greedy = np.array(team_returns("greedy", seeds))
    random = np.array(team_returns("random", seeds))
    # Means over seeded episodes: greedy must at least triple random's science, and win
    # the large majority of the paired episodes (same date and orbits for both).
    assert greedy.mean() > 3.0 * random.mean()
    assert (greedy > random).mean() >= 0.75


def test_greedy_team_completes_joint_occultations():
    env = make("orbit-scheduling-v0")
    team = make_team("greedy", env)
    completed = 0
    for seed in range(4):
        observations, _ = env.reset(seed=seed)
        while env.agents:
            observations, _, _, _, infos = env.step(
                {agent: team[agent](observations[agent]) for agent in env.agents}
            )
        completed += infos["phobos_grunt"]["episode"]["occultations"]
    assert completed > 0


def test_random_policy_respects_the_mask_and_its_own_seed():
    env = make("orbit-scheduling-v0", horizon_steps=24)
    observations, _ = env.reset(seed=0)
    space = env.action_space("phobos_grunt")
    a, b = RandomPolicy(space, seed=5), RandomPolicy(space, seed=5)
    draws_a = [a(observations["phobos_grunt"]) for _ in range(50)]
    draws_b = [b(observations["phobos_grunt"]) for _ in range(50)]
    assert draws_a == draws_b
    mask = observations["phobos_grunt"]["action_mask"]
    assert all(mask[d] for d in draws_a)


def test_unknown_team_name_lists_the_choices():
    env = make("orbit-scheduling-v0", horizon_steps=4)
    with pytest.raises(ValueError, match="unknown policy 'smart'.*greedy.*random"):
        make_team("smart", env)
    assert policy_names() == ["greedy", "random"]
