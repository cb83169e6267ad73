"""``orbit-scheduling-v1``: the lookahead block, the conjunction blackout, the rotation angle.

v0 stays as it was (its own tests, unchanged, say so); these check what v1 adds and that its
``ParallelEnv`` and batch core still agree step for step.
"""

from __future__ import annotations

import numpy as np
import pytest

from phobos.agents.orbit_greedy import greedy_team
from phobos.envs import make, make_batch, make_config
from phobos.envs.orbit_scheduling.layout import (
    CONTACT_BEST_RATE,
    CONTACT_FOR,
    CONTACT_IN,
    EARTH_FOR,
    EARTH_IN,
    ECLIPSE_FOR,
    ECLIPSE_IN,
    NO_WINDOW_IN,
    WINDOW_FOR,
    WINDOW_IN,
)
from phobos.envs.orbit_scheduling.lookahead import ECLIPSE_SUNLIT_BELOW

V0, V1 = "orbit-scheduling-v0", "orbit-scheduling-v1"
CONJUNCTION = {"start": "2013-04-17T00:00:00", "start_window_days": 0.0}
"""Mars 0.4 deg from the Sun in Earth's sky (conjunction on 2013-04-18)."""


def _stack(observations, agents):
    return np.stack([observations[a]["observations"] for a in agents])


def _masks(observations, agents):
    return [observations[a]["action_mask"] for a in agents]


@pytest.mark.parametrize("overrides", [{}, {"message_loss": 0.4, "message_buffer": 3}, CONJUNCTION])
@pytest.mark.parametrize("team", ["random", "greedy"])
def test_v1_batch_of_one_equals_parallel_env_step_for_step(overrides, team):
    env = make(V1, **overrides)
    batch = make_batch(V1, 1, **overrides)
    observations, _ = env.reset(seed=4)
    batch_obs, batch_mask = batch.reset([4])
    agents = env.possible_agents
    policies = greedy_team(env.config)
    rng = np.random.default_rng(5)
    while True:
        np.testing.assert_array_equal(_stack(observations, agents), batch_obs[0])
        for i, mask in enumerate(_masks(observations, agents)):
            np.testing.assert_array_equal(mask, batch_mask[0, i, : len(mask)])
        if not env.agents:
            break
        if team == "greedy":
            actions = {a: policies[a](observations[a]) for a in agents}
        else:
            actions = {a: int(rng.integers(env.action_space(a).n)) for a in agents}
        observations, rewards, _, _, infos = env.step(actions)
        batch_obs, batch_mask, reward, _, info = batch.step(
            np.array([[actions[a] for a in agents]])
        )
        assert rewards[agents[0]] == reward[0]
        assert [infos[a]["action_masked"] for a in agents] == info["masked"][0].tolist()


def test_v1_batch_of_n_equals_n_parallel_envs():
    seeds = [3, 8, 21]
    batch = make_batch(V1, len(seeds), horizon_steps=48)
    envs = [make(V1, horizon_steps=48) for _ in seeds]
    batch_obs, _ = batch.reset(seeds)
    observations = [env.reset(seed=seed)[0] for env, seed in zip(envs, seeds, strict=True)]
    agents = envs[0].possible_agents
    rng = np.random.default_rng(0)
    for _ in range(48):
        for i, obs in enumerate(observations):
            np.testing.assert_array_equal(_stack(obs, agents), batch_obs[i])
        actions = rng.integers(0, [envs[0].action_space(a).n for a in agents], (len(seeds), 3 + 2))
        batch_obs, *_ = batch.step(actions)
        observations = [
            env.step(dict(zip(agents, row.tolist(), strict=True)))[0]
            for env, row in zip(envs, actions, strict=True)
        ]
    for i, obs in enumerate(observations):
        np.testing.assert_array_equal(_stack(obs, agents), batch_obs[i])


def _scan(flags, t):
    """The next window of ``flags`` (a list of bools) at or after ``t``: (start, length)."""
    for start in range(t, len(flags)):
        if flags[start]:
            end = start
            while end < len(flags) and flags[end]:
                end += 1
            return start, end - start
    return None, 0


def _expected(flags, t, steps):
    start, length = _scan(flags, t)
    return (NO_WINDOW_IN if start is None else (start - t) / steps), length / steps


@pytest.mark.parametrize("seed", [0, 7])
def test_lookahead_block_equals_a_step_by_step_scan_of_the_plan(seed):
    env = make(V1)
    observations, _ = env.reset(seed=seed)
    plan, layout, steps = env.plan, env.layout, env.config.horizon_steps
    peaks = [env.config.phobos_grunt.downlink_kbps, env.config.yinghuo1.downlink_kbps]
    static = env._static_obs  # every observation's static part, [T + 1, A, D]
    for k in range(steps + 1):
        t = min(k, steps - 1)
        row = static[k, 0]
        block = static[k, :, layout.lookahead_block]
        np.testing.assert_array_equal(block, np.broadcast_to(block[0], block.shape))
        for c in (0, 1):
            rate = (
                plan.downlink_bits[0, :, :, c].max(axis=1) / (peaks[c] * 1000.0 * 300.0)
            ).tolist()
            windows = {
                ECLIPSE_IN: (plan.sunlit[0, :, c] < ECLIPSE_SUNLIT_BELOW).tolist(),
                EARTH_IN: plan.earth_visible[0, :, c].tolist(),
                CONTACT_IN: [r > 0 for r in rate],
            }
            for offset, flags in windows.items():
                want = _expected(flags, t, steps)
                got = (
                    row[layout.lookahead_craft(c, offset)],
                    row[layout.lookahead_craft(c, offset + 1)],
                )
                assert got == pytest.approx(want, abs=1e-12), (k, c, offset)
            start, length = _scan(windows[CONTACT_IN], t)
            best = max(rate[start : start + length]) if start is not None else 0.0
            assert row[layout.lookahead_craft(c, CONTACT_BEST_RATE)] == pytest.approx(
                min(best, 1.0)
            )
        for s in range(len(env.config.stations)):
            want = _expected(plan.station_sees_mars[0, :, s].tolist(), t, steps)
            got = (
                row[layout.lookahead_station(s, WINDOW_IN)],
                row[layout.lookahead_station(s, WINDOW_FOR)],
            )
            assert got == pytest.approx(want, abs=1e-12)
        want = _expected(plan.occultation[0].tolist(), t, steps)
        got = (
            row[layout.lookahead_occultation(WINDOW_IN)],
            row[layout.lookahead_occultation(WINDOW_FOR)],
        )
        assert got == pytest.approx(want, abs=1e-12)
    # The float32 observation holds the same block.
    np.testing.assert_allclose(
        observations["phobos_grunt"]["observations"][layout.lookahead_block],
        static[0, 0, layout.lookahead_block],
        rtol=1e-6,
    )


def test_lookahead_values_lie_in_the_unit_interval_and_windows_do_occur():
    env = make(V1)
    env.reset(seed=1)
    block = env._static_obs[:, :, env.layout.lookahead_block]
    assert block.min() >= 0.0 and block.max() <= 1.0
    starts = block[
        ...,
        [
            env.layout.lookahead_station(s, WINDOW_IN) - env.layout.lookahead_block.start
            for s in range(3)
        ],
    ]
    assert (starts == 0.0).any() and ((starts > 0.0) & (starts < 1.0)).any()


def test_conjunction_closes_every_earth_link_in_v1_and_not_in_v0():
    v0, v1 = make(V0, **CONJUNCTION), make(V1, **CONJUNCTION)
    v0.reset(seed=0)
    v1_obs, _ = v1.reset(seed=0)
    # v0 as before: the downlink open in 214 of 288 steps with the Sun 0.4 deg from Mars.
    assert int((v0.plan.downlink_bits[0].max(axis=(1, 2)) > 0).sum()) == 214
    plan = v1.plan
    assert not plan.downlink_bits.any()
    assert not plan.station_sees_mars.any()
    assert not plan.link_open[0][:, :2, 2:].any() and not plan.link_open[0][:, 2:, :2].any()
    assert plan.link_open[0][:, 0, 1].any()  # the spacecraft still hear each other
    layout = v1.layout
    vector = v1_obs["phobos_grunt"]["observations"]
    assert vector[layout.lookahead_craft(0, CONTACT_IN)] == NO_WINDOW_IN
    assert vector[layout.lookahead_craft(0, CONTACT_FOR)] == 0.0
    assert not v1_obs["phobos_grunt"]["action_mask"][2]  # no downlink
    assert not v1_obs["ground_bear_lakes"]["action_mask"][1:].any()  # no tracking


def test_conjunction_threshold_is_an_argument_of_v1_only():
    assert make_config(V1, solar_conjunction_deg=0.0).solar_conjunction_deg == 0.0
    with pytest.raises(ValueError, match="solar_conjunction_deg"):
        make_config(V0, solar_conjunction_deg=2.0)
    with pytest.raises(ValueError, match="solar_conjunction_deg"):
        make(V1, solar_conjunction_deg=-1.0)
    # No blackout at 0 deg: the links of v0 come back (geometry apart, the same steps).
    env = make(V1, solar_conjunction_deg=0.0, **CONJUNCTION)
    env.reset(seed=0)
    assert int((env.plan.downlink_bits[0].max(axis=(1, 2)) > 0).sum()) == 214


def test_v1_extends_v0_observation_and_keeps_its_offsets():
    v0, v1 = make(V0), make(V1)
    obs0, _ = v0.reset(seed=2)
    obs1, _ = v1.reset(seed=2)
    assert v1.layout.lookahead_block.start == v0.layout.size
    assert (
        v1.metadata["name"] == "orbit_scheduling_v1"
        and v0.metadata["name"] == "orbit_scheduling_v0"
    )
    for agent in v0.possible_agents:
        np.testing.assert_array_equal(
            obs1[agent]["observations"][: v0.layout.size], obs0[agent]["observations"]
        )
    with pytest.raises(ValueError, match="no lookahead block"):
        v0.layout.lookahead_craft(0, ECLIPSE_IN)
    assert (ECLIPSE_FOR, EARTH_FOR, CONTACT_FOR) == (ECLIPSE_IN + 1, EARTH_IN + 1, CONTACT_IN + 1)
    assert WINDOW_FOR == WINDOW_IN + 1
