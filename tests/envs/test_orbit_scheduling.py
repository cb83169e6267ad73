from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from phobos import config as config_tools
from phobos.agents.orbit_greedy import greedy_team
from phobos.envs import make
from phobos.envs.orbit_scheduling import OrbitSchedulingBatch, OrbitSchedulingConfig
from phobos.envs.orbit_scheduling.config import ACTIVITIES, DOWNLINK, IDLE, OCCULTATION
from phobos.envs.single_agent import SingleAgentView

SHORT = {"horizon_steps": 96}


def random_actions(env, observations, rng):
    actions = {}
    for agent in env.agents:
        n = env.action_space(agent).n
        actions[agent] = int(rng.integers(n))
    return actions


@pytest.mark.parametrize(
    "overrides",
    [{}, {"message_loss": 0.4, "message_buffer": 3}, {"phobos_grunt_orbit": "quasi_synchronous"}],
)
@pytest.mark.parametrize("seed", [0, 11])
def test_batch_of_one_equals_parallel_env_step_for_step(overrides, seed):
    config = config_tools.replace(OrbitSchedulingConfig(), **overrides)
    env = make("orbit-scheduling-v0", config)
    batch = OrbitSchedulingBatch(config, num_envs=1)
    observations, _ = env.reset(seed=seed)
    batch_obs, batch_mask = batch.reset([seed])
    rng = np.random.default_rng(seed + 1000)
    agents = env.possible_agents
    while True:
        for i, agent in enumerate(agents):
            np.testing.assert_array_equal(observations[agent]["observations"], batch_obs[0, i])
            mask = observations[agent]["action_mask"]
            np.testing.assert_array_equal(mask, batch_mask[0, i, : len(mask)])
        if not env.agents:
            break
        actions = random_actions(env, observations, rng)
        observations, rewards, _, truncations, infos = env.step(actions)
        batch_obs, batch_mask, reward, truncated, info = batch.step(
            np.array([[actions[a] for a in agents]])
        )
        assert rewards[agents[0]] == reward[0]
        assert truncations[agents[0]] == truncated
        assert infos[agents[0]]["science"] == info["science"][0]
        assert [infos[a]["action_masked"] for a in agents] == info["masked"][0].tolist()
    summary = infos[agents[0]]["episode"]
    assert summary["messages_delivered"] == batch.delivered_at[0].sum()
    assert summary["messages_rejected"] == batch.rejected_at[0].sum()
    assert summary["masked_actions"] == batch.totals["masked_actions"][0]


def test_batch_episodes_differ_by_seed_and_match_single_runs():
    config = OrbitSchedulingConfig(horizon_steps=48)
    batch = OrbitSchedulingBatch(config, num_envs=3)
    obs, _ = batch.reset([5, 6, 5])
    np.testing.assert_array_equal(obs[0], obs[2])
    assert not np.array_equal(obs[0], obs[1])
    single = OrbitSchedulingBatch(config, num_envs=1)
    single_obs, _ = single.reset([6])
    np.testing.assert_array_equal(single_obs[0], obs[1])


def test_reward_parts_in_info_add_up_to_the_team_reward():
    env = make("orbit-scheduling-v0")
    team = greedy_team(env.config)
    observations, _ = env.reset(seed=3)
    total = 0.0
    while env.agents:
        actions = {a: team[a](observations[a]) for a in env.agents}
        observations, rewards, _, _, infos = env.step(actions)
        info = infos["yinghuo1"]
        assert rewards["yinghuo1"] == pytest.approx(
            info["science"] + info["occultation"] - info["energy_penalty"]
        )
        assert len(set(rewards.values())) == 1  # one team reward
        total += rewards["yinghuo1"]
    summary = info["episode"]
    assert total == pytest.approx(
        summary["science"]
        + summary["occultation"]
        - summary["energy_violations"] * env.config.energy_violation_penalty
    )
    assert total > 0


def test_masked_action_runs_as_idle_and_is_flagged():
    env = make("orbit-scheduling-v0", **SHORT)
    observations, _ = env.reset(seed=1)
    for _ in range(96):
        mask = observations["phobos_grunt"]["action_mask"]
        if not mask[OCCULTATION]:
            break
        observations, *_ = env.step({a: 0 for a in env.agents})
    assert not mask[OCCULTATION]
    actions = {a: IDLE for a in env.agents}
    actions["phobos_grunt"] = OCCULTATION
    _, _, _, _, infos = env.step(actions)
    assert infos["phobos_grunt"]["action_masked"] is True
    assert infos["phobos_grunt"]["executed_action"] == IDLE
    assert infos["yinghuo1"]["action_masked"] is False


def test_science_counts_only_after_light_time():
    """Downlinked value reaches Earth ceil(light time / step) + 1 steps later, not before."""
    env = make("orbit-scheduling-v0")
    team = greedy_team(env.config)
    observations, _ = env.reset(seed=2)
    first_downlink = first_science = None
    step = 0
    while env.agents:
        actions = {a: team[a](observations[a]) for a in env.agents}
        observations, _, _, _, infos = env.step(actions)
        tracked = any(infos[s]["executed_action"] == 1 for s in env.possible_agents[2:])
        if first_downlink is None and actions["phobos_grunt"] == DOWNLINK and tracked:
            first_downlink = step
            lag = int(np.ceil(env.plan.light_time_s[0, step] / env.config.step_seconds))
        if first_science is None and infos["phobos_grunt"]["science"] > 0:
            first_science = step
        step += 1
    assert first_downlink is not None and first_science is not None
    assert first_science >= first_downlink + lag


def test_intents_arrive_late_and_only_over_open_links():
    env = make("orbit-scheduling-v0")
    layout = env.layout
    observations, _ = env.reset(seed=0)
    plan = env.plan
    link = plan.link_open[0, :, 0, 2]  # Phobos-Grunt -> Bear Lakes
    assert link.any() and not link[0], "seed 0 must start with the link closed"
    first_contact = int(np.argmax(link))
    lag = int(np.ceil(plan.light_time_s[0, first_contact] / env.config.step_seconds))
    received_at = None
    for step in range(env.config.horizon_steps):
        if observations["ground_bear_lakes"]["observations"][layout.intent(0)][-1] > 0:
            received_at = step
            break
        observations, *_ = env.step({a: 0 for a in env.agents})
    # The first intents waited for the first contact, then travelled one light time.
    assert received_at is not None
    assert received_at >= first_contact + lag
    assert received_at <= first_contact + lag + 1


@pytest.mark.parametrize("learner", ["phobos_grunt", "yinghuo1", "ground_ussuriysk"])
def test_single_agent_view_passes_gymnasium_check_env(learner):
    env = make("orbit-scheduling-v0", **SHORT)
    team = greedy_team(env.config)
    view = SingleAgentView(env, learner, {a: p for a, p in team.items() if a != learner})
    check_env(view, skip_render_check=True)
    obs, _ = view.reset(seed=0)
    assert view.action_masks().dtype == bool


def test_gymnasium_registry_builds_the_single_agent_view():
    import gymnasium

    import phobos  # noqa: F401  (registers the Gymnasium ids)

    view = gymnasium.make("OrbitScheduling-v0", horizon_steps=48)
    obs, _ = view.reset(seed=0)
    assert view.observation_space.contains(obs)


# ----------------------------------------------------------------------------- bad input
def test_action_outside_space_names_agent_and_choices():
    env = make("orbit-scheduling-v0", **SHORT)
    env.reset(seed=0)
    actions = {a: 0 for a in env.agents}
    actions["ground_miyun"] = 5
    with pytest.raises(ValueError, match=r"ground_miyun.*Discrete\(3\).*track_yinghuo1"):
        env.step(actions)
    actions["ground_miyun"] = 1.5
    with pytest.raises(ValueError, match="not an integer"):
        env.step(actions)
    # The episode goes on after a refused step.
    env.step({a: 0 for a in env.agents})


def test_unknown_and_missing_agents_are_errors():
    env = make("orbit-scheduling-v0", **SHORT)
    env.reset(seed=0)
    actions = {a: 0 for a in env.agents}
    with pytest.raises(ValueError, match="unknown agent id 'mars_express'.*phobos_grunt"):
        env.step({**actions, "mars_express": 0})
    del actions["yinghuo1"]
    with pytest.raises(ValueError, match="no action for agent.*yinghuo1"):
        env.step(actions)
    with pytest.raises(ValueError, match="unknown agent id 'x'"):
        env.observation_space("x")


def test_bad_configuration_is_refused_with_the_culprit_named():
    with pytest.raises(ValueError, match="unknown key 'horizon'.*horizon_steps"):
        make("orbit-scheduling-v0", horizon=10)
    with pytest.raises(ValueError, match="stations: unknown station 'goldstone'.*bear_lakes"):
        make("orbit-scheduling-v0", stations=("goldstone",))
    with pytest.raises(ValueError, match="horizon_steps.*expected an integer"):
        make("orbit-scheduling-v0", horizon_steps="long")
    with pytest.raises(ValueError, match="message_loss"):
        make("orbit-scheduling-v0", message_loss=1.5)
    with pytest.raises(ValueError, match="unknown environment id 'orbit-v9'.*orbit-scheduling-v0"):
        make("orbit-v9")


def test_date_outside_the_ephemeris_support_is_an_error():
    env = make("orbit-scheduling-v0", start="2031-06-01T00:00:00", **SHORT)
    with pytest.raises(ValueError, match="2031-06-01.*supported range"):
        env.reset(seed=0)


def test_stepping_after_the_episode_ends_is_an_error():
    env = make("orbit-scheduling-v0", horizon_steps=2)
    env.reset(seed=0)
    env.step({a: 0 for a in env.agents})
    _, _, _, truncations, infos = env.step({a: 0 for a in env.agents})
    assert all(truncations.values()) and env.agents == []
    assert "episode" in infos["phobos_grunt"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


def test_one_step_quasi_synchronous_episode_runs():
    env = make("orbit-scheduling-v0", horizon_steps=1, phobos_grunt_orbit="quasi_synchronous")
    env.reset(seed=0)
    *_, truncations, _ = env.step({a: 0 for a in env.agents})
    assert all(truncations.values())


def _plasma_run(activities):
    """Yinghuo-1 runs its plasma instrument inside a magnetosphere that covers its orbit."""
    config = config_tools.replace(
        OrbitSchedulingConfig(),
        horizon_steps=24,
        magnetosphere_radius=1e4,
        magnetosphere_activities=activities,
    )
    env = make("orbit-scheduling-v0", config)
    batch = OrbitSchedulingBatch(config, num_envs=1)
    observations, _ = env.reset(seed=3)
    batch_obs, _ = batch.reset([3])
    agents = env.possible_agents
    plasma = ACTIVITIES["yinghuo1"].index("plasma")
    actions = {agent: plasma if agent == "yinghuo1" else IDLE for agent in agents}
    while env.agents:
        observations, rewards, *_ = env.step(actions)
        batch_obs, _, reward, *_ = batch.step(np.array([[actions[a] for a in agents]]))
        assert rewards[agents[0]] == reward[0]
        for i, agent in enumerate(agents):
            np.testing.assert_array_equal(observations[agent]["observations"], batch_obs[0, i])
    return float(batch.stored_value[0, 1].sum() + batch.pending[0].sum())


def test_the_magnetosphere_activities_of_the_config_are_boosted_alike_in_env_and_batch():
    default = _plasma_run(("plasma", "magnetometer"))
    none = _plasma_run(())
    assert default > none > 0.0  # plasma data were taken, and worth more when boosted
    assert _plasma_run(("camera",)) == none
    with pytest.raises(ValueError, match="magnetosphere_activities: unknown activity 'radar'"):
        OrbitSchedulingConfig(magnetosphere_activities=("radar",)).validate()
