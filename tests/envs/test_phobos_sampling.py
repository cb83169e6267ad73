from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import phobos  # noqa: F401 - registers the Gymnasium ids
from phobos import config as config_tools
from phobos.agents.sampling_policies import CautiousLander, GreedyLander, ScienceTeam
from phobos.envs import make
from phobos.envs.conformance import rollout
from phobos.envs.sampling import MATERIALS, SamplingConfig, SiteConfig, generate_site
from phobos.envs.sampling.layout import (
    CONTACT,
    DATA_RECEIVED,
    IMAGED,
    REACHABLE,
    SAMPLED,
    SUN,
)
from phobos.envs.sampling.site import reachable_cells

LANDER, TEAM = "phobos_grunt", "science_team"


def cell_field(env, observation, k):
    layout = env.layout
    cells = observation["observations"][layout.header :].reshape(layout.cells, layout.cell_size)
    return cells[:, layout.classes + layout.materials + k]


def class_probabilities(env, observation):
    layout = env.layout
    cells = observation["observations"][layout.header :].reshape(layout.cells, layout.cell_size)
    return cells[:, : layout.classes]


def wait(env):
    return {agent: 0 for agent in env.agents}


# --- sites ------------------------------------------------------------------------------------


def test_same_seed_same_site_and_different_seeds_differ():
    config = SiteConfig()
    a = generate_site(config, np.random.default_rng(5))
    b = generate_site(config, np.random.default_rng(5))
    c = generate_site(config, np.random.default_rng(6))
    for name in ("material", "slope_deg", "composition", "value", "failure_probability"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.composition, c.composition) or not np.array_equal(
        a.material, c.material
    )
    env = make("phobos-sampling-v0")
    env.reset(seed=3)
    first = env.site
    env.reset(seed=3)
    np.testing.assert_array_equal(first.value, env.site.value)
    env.reset(seed=4)
    assert not np.array_equal(first.value, env.site.value)


def test_sites_follow_their_priors():
    """Over 500 sites (18,000 cells): materials follow the prior, compositions the per-material
    rows, values average the class values (the log-normal spread keeps the mean), and the
    hazard follows its formula. Tolerances are about four standard errors."""
    config = SiteConfig()
    rng = np.random.default_rng(2024)
    sites = [generate_site(config, rng) for _ in range(500)]
    material = np.concatenate([s.material for s in sites])
    composition = np.concatenate([s.composition for s in sites])
    value = np.concatenate([s.value for s in sites])
    slope = np.concatenate([s.slope_deg for s in sites])
    failure = np.concatenate([s.failure_probability for s in sites])
    frequencies = np.bincount(material, minlength=3) / len(material)
    # Patches make cells of one site dependent: the error is that of fewer, larger draws.
    np.testing.assert_allclose(frequencies, config.material_prior, atol=0.03)
    for m, row in enumerate(config.composition_prior):
        observed = np.bincount(composition[material == m], minlength=4) / (material == m).sum()
        np.testing.assert_allclose(observed, row, atol=0.03)
    for k, class_value in enumerate(config.composition_value):
        assert value[composition == k].mean() == pytest.approx(class_value, rel=0.03)
    base = np.asarray(config.failure_base)[material]
    steep = np.maximum(slope - config.safe_slope_deg, 0.0) * config.failure_per_deg
    np.testing.assert_allclose(failure, np.minimum(base + steep, config.max_failure))
    assert slope[material == 2].mean() > slope[material == 0].mean() + 10.0


def test_materials_come_in_patches():
    """With patchiness, horizontal neighbours share their material more often than the
    independent-cell rate sum(p^2); without it, at that rate."""
    rng = np.random.default_rng(0)

    def agreement(patchiness):
        config = SiteConfig(patchiness=patchiness)
        same = []
        for _ in range(300):
            grid = generate_site(config, rng).material.reshape(config.rows, config.cols)
            same.append((grid[:, 1:] == grid[:, :-1]).mean())
        return float(np.mean(same))

    independent = float(np.sum(np.square(SiteConfig().material_prior)))
    assert agreement(0.0) == pytest.approx(independent, abs=0.03)
    assert agreement(0.6) > independent + 0.1


def test_far_corners_are_out_of_the_arms_reach():
    reach = reachable_cells(SiteConfig())
    assert reach.sum() == 34
    assert not reach[30] and not reach[35]


# --- environment ------------------------------------------------------------------------------


def test_two_envs_with_one_seed_fly_the_same_episode():
    a, b = make("phobos-sampling-v0"), make("phobos-sampling-v0")
    assert rollout(a, 8, 1, 200) == rollout(b, 8, 1, 200)
    assert rollout(a, 8, 1, 200) != rollout(a, 9, 1, 200)


def test_single_agent_views_pass_check_env():
    for learner in (LANDER, TEAM):
        env = gymnasium.make("PhobosSampling-v0", learner=learner, horizon_steps=24)
        check_env(env.unwrapped, skip_render_check=True)
        observation, _ = env.reset(seed=0)
        assert env.observation_space.contains(observation)
        assert env.unwrapped.action_masks().dtype == bool


def test_out_of_space_actions_raise_naming_agent_and_choices():
    env = make("phobos-sampling-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action 78 of agent 'phobos_grunt'.*Discrete\(78\)"):
        env.step({LANDER: 78, TEAM: 0})
    with pytest.raises(ValueError, match=r"42\.\.77=sample cell 0\.\.35"):
        env.step({LANDER: -1, TEAM: 0})
    with pytest.raises(ValueError, match=r"agent 'science_team'.*1\.\.36=advise cell"):
        env.step({LANDER: 0, TEAM: 37})
    with pytest.raises(ValueError, match="not an integer"):
        env.step({LANDER: 1.5, TEAM: 0})
    with pytest.raises(ValueError, match="unknown agent id 'rover'"):
        env.step({LANDER: 0, TEAM: 0, "rover": 0})
    with pytest.raises(ValueError, match="no action for agent"):
        env.step({LANDER: 0})


def test_masked_actions_run_as_a_flagged_wait():
    """Sampling an out-of-reach cell, resampling a cell, and anything while busy are masked."""
    env = make("phobos-sampling-v0")
    observations, _ = env.reset(seed=1)
    layout = env.layout
    corner = layout.sample(35)
    assert observations[LANDER]["action_mask"][corner] == 0
    assert cell_field(env, observations[LANDER], REACHABLE)[35] == 0
    _, rewards, _, _, infos = env.step({LANDER: corner, TEAM: 0})
    assert infos[LANDER]["action_masked"] is True
    assert infos[LANDER]["executed_action"] == 0
    assert infos[TEAM]["action_masked"] is False

    observations, *_ = env.step({LANDER: layout.sample(0), TEAM: 0})  # starts 3 busy steps
    assert observations[LANDER]["action_mask"].sum() == 1
    _, _, _, _, infos = env.step({LANDER: layout.sample(1), TEAM: 0})
    assert infos[LANDER]["action_masked"] is True
    observations, *_ = env.step(wait(env))
    assert cell_field(env, observations[LANDER], SAMPLED)[0] == 1
    assert observations[LANDER]["action_mask"][layout.sample(0)] == 0
    assert observations[LANDER]["action_mask"][layout.spectrometer(0)] == 0
    # The science team may only advise cells it has data on: none yet.
    _, _, _, _, infos = env.step({LANDER: 0, TEAM: 5})
    assert infos[TEAM]["action_masked"] is True
    assert env.episode_summary()["masked_actions"] == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lander": {"container_g": -200.0}}, "lander.container_g must be positive"),
        ({"site": {"material_prior": [0.5, 0.3, 0.3]}}, "site.material_prior.*sum to one"),
        (
            {"site": {"composition_prior": [[0.5, 0.5, 0, 0], [1, 0, 0, 0], [0.2, 0.2, 0.2, 0.2]]}},
            r"site.composition_prior\[2\] \(rock\).*sum to one",
        ),
        ({"site": {"material_prior": [1.2, -0.1, -0.1]}}, "site.material_prior.*>= 0"),
        ({"site": {"area_cells": 4}}, "site.area_cells"),
        ({"lander": {"onboard_accuracy": 1.5}}, r"lander.onboard_accuracy must lie in \[0, 1\]"),
        ({"site": {"target_compositions": ["gold"]}}, "unknown class 'gold'"),
        ({"stations": ["goldstone"]}, "unknown station 'goldstone'"),
        ({"message_loss": 2.0}, "message_loss"),
    ],
)
def test_invalid_site_and_lander_parameters_are_rejected_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        make("phobos-sampling-v0", **overrides)


def test_unknown_keys_are_errors():
    with pytest.raises(config_tools.ConfigError, match="unknown key 'site.colour'"):
        make("phobos-sampling-v0", site={"colour": "red"})


def test_reward_parts_add_up_and_the_summary_matches_the_episode():
    env = make("phobos-sampling-v0")
    team = {LANDER: GreedyLander(env.config), TEAM: ScienceTeam(env.config)}
    for seed in range(6):
        observations, _ = env.reset(seed=seed)
        total = 0.0
        while env.agents:
            actions = {agent: team[agent](observations[agent]) for agent in env.agents}
            observations, rewards, terminations, truncations, infos = env.step(actions)
            info = infos[LANDER]
            parts = (
                info["sample_value"]
                + info["diversity_bonus"]
                - info["failure_penalty"]
                - info["energy_penalty"]
            )
            assert rewards[LANDER] == rewards[TEAM] == pytest.approx(parts)
            total += rewards[LANDER]
        summary = infos[LANDER]["episode"]
        assert summary is infos[TEAM]["episode"]
        expected = (
            summary["sample_value"]
            + summary["diversity_bonus"]
            - summary["failure_penalty"]
            - summary["energy_violations"] * env.config.energy_violation_penalty
        )
        assert total == pytest.approx(expected)
        assert summary["sample_mass_g"] <= env.config.lander.container_g + 1e-9
        assert summary["classes_stowed"] == len(set(env.stowed_compositions))
        ended = terminations[LANDER] or truncations[LANDER]
        assert ended and not (terminations[LANDER] and truncations[LANDER])
        if terminations[LANDER]:
            assert summary["container_sealed"] or summary["sampler_damaged"]
        else:
            assert summary["steps"] == env.config.horizon_steps


def test_waiting_lasts_until_the_return_window():
    env = make("phobos-sampling-v0", horizon_steps=30)
    env.reset(seed=0)
    steps = 0
    while env.agents:
        _, rewards, terminations, truncations, infos = env.step(wait(env))
        steps += 1
    assert steps == 30 and truncations[LANDER] and not terminations[LANDER]
    assert infos[LANDER]["episode"]["samples"] == 0
    with pytest.raises(RuntimeError, match="reset"):
        env.step({LANDER: 0, TEAM: 0})


def test_a_damaged_sampler_ends_the_episode():
    """Make every attempt fail and break the arm: the first sample ends the episode."""
    env = make(
        "phobos-sampling-v0",
        site={"failure_base": [1.0, 1.0, 1.0], "damage_given_failure": 1.0, "max_failure": 1.0},
    )
    env.reset(seed=0)
    env.step({LANDER: env.layout.sample(7), TEAM: 0})
    env.step(wait(env))
    _, rewards, terminations, _, infos = env.step(wait(env))
    assert terminations == {LANDER: True, TEAM: True}
    assert rewards[LANDER] == -env.config.failure_penalty
    assert infos[LANDER]["episode"]["sampler_damaged"] is True
    assert env.agents == []


def test_imaging_needs_daylight_and_sending_needs_a_contact():
    env = make("phobos-sampling-v0")
    seen_night = seen_no_contact = False
    for seed in range(4):
        observations, _ = env.reset(seed=seed)
        while env.agents:
            vector, mask = observations[LANDER]["observations"], observations[LANDER]["action_mask"]
            if mask.sum() > 1:  # not busy
                if vector[SUN] <= np.sin(np.radians(env.config.lander.image_min_sun_deg)) - 1e-6:
                    assert mask[env.layout.image(0)] == 0
                    seen_night = True
                if vector[CONTACT] == 0:
                    assert mask[env.layout.SEND] == 0
                    seen_no_contact = True
            observations, *_ = env.step(wait(env))
    assert seen_night and seen_no_contact


def test_data_reach_the_team_one_light_time_later_and_advice_returns_later_still():
    """The team's beliefs stay at the prior until the data message arrives: at least one
    light time after it left, at a step in a contact window; the advice arrives at least
    one more light time after it was sent."""
    env = make("phobos-sampling-v0")
    cautious, science = CautiousLander(env.config), ScienceTeam(env.config)
    step_s = env.config.step_seconds
    for seed in range(3):
        observations, _ = env.reset(seed=seed)
        sent_at = received_at = advised_at = advice_at = None
        while env.agents:
            k = env._step
            actions = {LANDER: cautious(observations[LANDER]), TEAM: science(observations[TEAM])}
            if actions[LANDER] == env.layout.SEND and sent_at is None:
                sent_at = k
                assert env.sky.surface.contact[k]
            if actions[TEAM] > 0 and advised_at is None:
                advised_at = k
            observations, _, _, _, infos = env.step(actions)
            if (
                received_at is None
                and observations[TEAM]["observations"][env.layout.own_field(DATA_RECEIVED)]
            ):
                received_at = env._step
                assert cell_field(env, observations[TEAM], IMAGED).sum() > 0
            if advice_at is None and env._lander.advice_seq >= 0:
                advice_at = env._step
            if sent_at is None:
                assert cell_field(env, observations[TEAM], IMAGED).sum() == 0
        assert None not in (sent_at, received_at, advised_at, advice_at), seed
        light = env.sky.surface.light_time_s
        assert received_at * step_s >= sent_at * step_s + light[sent_at]
        assert received_at <= sent_at + math.ceil(light[sent_at] / step_s) + 1
        assert advised_at >= received_at
        assert advice_at * step_s >= advised_at * step_s + light[advised_at]
        summary = infos[LANDER]["episode"]
        in_flight = env.router.in_flight()  # the last ones may still travel at the end
        assert summary["messages_delivered"] + in_flight == summary["messages_sent"]


def test_ground_classifies_better_than_the_lander_and_the_spectrometer_best():
    """After one image of every area, the most probable class is right for about the onboard
    classifier's share of cells; the same images, sent down and classified on the ground, get
    it right far more often; one spectrum is right for 95% of cells."""
    env = make("phobos-sampling-v0", lander={"battery_wh": 1.0e5, "image_min_sun_deg": -90.0})
    layout = env.layout
    onboard, ground, spectrum = [], [], []
    for seed in range(12):
        observations, _ = env.reset(seed=seed)
        for area in range(layout.areas):
            observations, *_ = env.step({LANDER: layout.image(area), TEAM: 0})
        truth = env.site.composition
        onboard.append(class_probabilities(env, observations[LANDER]).argmax(1) == truth)
        for cell in range(0, 20, 4):
            observations, *_ = env.step({LANDER: layout.spectrometer(cell), TEAM: 0})
            observations, *_ = env.step(wait(env))
            probabilities = class_probabilities(env, observations[LANDER])[cell]
            spectrum.append(probabilities.argmax() == truth[cell])
        while env.agents and not observations[LANDER]["action_mask"][layout.SEND]:
            observations, *_ = env.step(wait(env))
        if env.agents:
            observations, *_ = env.step({LANDER: layout.SEND, TEAM: 0})
        while (
            env.agents and not observations[TEAM]["observations"][layout.own_field(DATA_RECEIVED)]
        ):
            observations, *_ = env.step(wait(env))
        if env.agents:
            spectral = np.zeros(layout.cells, dtype=bool)
            spectral[0:20:4] = True
            right = class_probabilities(env, observations[TEAM]).argmax(1) == truth
            ground.append(right[~spectral])
    assert len(ground) >= 8
    onboard_rate, ground_rate = np.mean(onboard), np.mean(np.concatenate(ground))
    assert 0.4 < onboard_rate < 0.65
    assert ground_rate > 0.75 and ground_rate > onboard_rate + 0.2
    assert np.mean(spectrum) > 0.9


def test_observations_stay_in_their_spaces_under_message_loss():
    env = make("phobos-sampling-v0", message_loss=0.5, message_buffer=2)
    science = ScienceTeam(env.config)
    cautious = CautiousLander(env.config)
    lost = 0
    for seed in range(3):
        observations, _ = env.reset(seed=seed)
        while env.agents:
            for agent, observation in observations.items():
                assert env.observation_space(agent).contains(observation)
            observations, _, _, _, infos = env.step(
                {LANDER: cautious(observations[LANDER]), TEAM: science(observations[TEAM])}
            )
        lost += infos[LANDER]["episode"]["messages_lost"]
    assert lost > 0


def test_layout_names_every_material():
    env = make("phobos-sampling-v0")
    assert env.layout.materials == len(MATERIALS)
    assert env.layout.size == env.observation_space(LANDER)["observations"].shape[0]
    assert env.layout.decode(env.layout.sample(3)) == ("sample", 3)
    assert env.layout.decode(env.layout.image(2)) == ("image", 2)
    assert isinstance(env.config, SamplingConfig)


def test_a_seeded_episode_is_the_same_over_the_codec_relay():
    """Every message through a relay that encodes it on the wire (plain data payloads only),
    and the episode matches the in-process router's step for step."""
    from phobos.comms.bus import RELAY, RelayedBus
    from phobos.comms.transport import InProcessHub
    from phobos.envs.sampling import PhobosSamplingEnv

    def hub_bus(endpoints, links, limit):
        hub = InProcessHub(codec=True)
        clients = {name: hub.endpoint(name, via=RELAY) for name in endpoints}
        return RelayedBus(endpoints, links, limit, server=hub.endpoint(RELAY), clients=clients)

    config = config_tools.replace(SamplingConfig(), message_loss=0.2)
    trajectories = []
    for bus in (None, hub_bus):
        env = PhobosSamplingEnv(config, message_bus=bus)
        lander, science = CautiousLander(config), ScienceTeam(config)
        observations, _ = env.reset(seed=13)
        steps = []
        while env.agents:
            actions = {LANDER: lander(observations[LANDER]), TEAM: science(observations[TEAM])}
            observations, rewards, *_, infos = env.step(actions)
            steps.append(
                (
                    observations[LANDER]["observations"].tobytes(),
                    observations[TEAM]["observations"].tobytes(),
                    rewards[LANDER],
                )
            )
        env.close()
        trajectories.append((steps, infos[LANDER]["episode"]))
    assert trajectories[0] == trajectories[1]
    assert trajectories[0][1]["messages_delivered"] > 2


@pytest.mark.slow
def test_stable_baselines3_trains_on_the_single_agent_view():
    """A smoke run: PPO's multi-input policy takes the Dict observation and learns a few
    hundred steps (how well it learns is for the training issue's benchmarks)."""
    from stable_baselines3 import PPO

    env = gymnasium.make("PhobosSampling-v0", horizon_steps=48)
    model = PPO("MultiInputPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0)
    model.learn(256)
    observation, _ = env.reset(seed=1)
    action, _ = model.predict(observation, deterministic=True)
    assert env.action_space.contains(int(action))
