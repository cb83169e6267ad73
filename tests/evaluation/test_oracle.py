from __future__ import annotations

import pytest

from phobos.agents.team_spec import TeamSpec
from phobos.evaluation.oracle import solve_episode
from phobos.evaluation.rollout import EpisodeSpec, run_episode


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_oracle_is_never_below_any_policy(short_orbit, seed):
    bound = solve_episode(short_orbit, seed, time_limit_s=1.5)
    assert bound.status in ("OPTIMAL", "FEASIBLE")
    for team in ("random", "greedy", "random,yinghuo1=greedy"):
        result = run_episode(
            EpisodeSpec("orbit-scheduling-v0", short_orbit, TeamSpec.parse(team), seed)
        )
        assert result.status == "ok"
        assert bound.upper_bound >= result.metrics["team_return"] - 1e-9, (team, bound)
    # The schedule it found is itself no better than its proven bound.
    assert bound.objective <= bound.upper_bound + 1e-6


def test_oracle_bound_holds_with_tight_batteries_and_lossy_links():
    from dataclasses import replace

    from phobos.envs import make_config
    from phobos.envs.orbit_scheduling.config import YINGHUO1

    config = make_config(
        "orbit-scheduling-v0",
        horizon_steps=36,
        message_loss=0.3,
        yinghuo1=replace(YINGHUO1, battery_wh=60.0, storage_mbit=4.0),
    )
    for seed in (3, 4):
        bound = solve_episode(config, seed, time_limit_s=1.5)
        for team in ("random", "greedy"):
            spec = EpisodeSpec("orbit-scheduling-v0", config, TeamSpec.parse(team), seed)
            assert bound.upper_bound >= run_episode(spec).metrics["team_return"] - 1e-9


def _flat_batteries():
    from dataclasses import replace

    from phobos.envs import make_config
    from phobos.envs.orbit_scheduling.config import PHOBOS_GRUNT, YINGHUO1

    # A bus heavier than the array: random teams run Yinghuo-1 flat again and again.
    return make_config(
        "orbit-scheduling-v0",
        horizon_steps=48,
        yinghuo1=replace(YINGHUO1, battery_wh=20.0, bus_load_w=170.0),
        phobos_grunt=replace(PHOBOS_GRUNT, battery_wh=80.0),
    )


@pytest.mark.parametrize("team", ["random", "greedy", "random,yinghuo1=greedy"])
@pytest.mark.parametrize("seed", [0, 5])
def test_every_real_trajectory_is_feasible_in_the_model(short_orbit, team, seed):
    """The relaxations cut off nothing: pinned to an episode's actions, the model accepts
    them with an objective of at least the episode's return (flat batteries included)."""
    for config in (short_orbit, _flat_batteries()):
        spec = EpisodeSpec("orbit-scheduling-v0", config, TeamSpec.parse(team), seed, trace=True)
        result = run_episode(spec)
        pinned = solve_episode(config, seed, time_limit_s=5.0, pin=result.trace)
        assert pinned.status in ("OPTIMAL", "FEASIBLE"), pinned
        assert pinned.objective >= result.metrics["team_return"] - 1e-6, (pinned, result.metrics)
