"""The belief rollout teacher: candidates the lander may take, a search that never reads the
hidden site, that repeats exactly, and that beats a policy with clearly better choices; and
the true-site teacher, which flies the policy's own states and leaves no action free of regret."""

from __future__ import annotations

import numpy as np
import pytest

from phobos.agents.sampling_policies import GreedyTeamArrays
from phobos.envs import make_batch
from phobos.training import sb3_batch
from phobos.training.belief_teacher import BeliefRolloutTeacher, SiteRolloutTeacher
from phobos.training.rollout_teacher import fly_teacher

SEEDS = [51, 52]
SHORT = 40
"""Steps per episode in these tests (the task's default is 96)."""


def _core(n: int = len(SEEDS)):
    return make_batch("phobos-sampling-v0", n, horizon_steps=SHORT)


def _mid_episode(core, policy, steps: int = 12):
    """Observations and masks after ``steps`` or more, when no lander is busy."""
    observations, masks = core.reset(SEEDS)
    core.run_on = True
    for _ in range(steps):
        observations, masks, _, _, _ = core.step(policy(observations, masks))
    while ((masks[:, 0] == 1).sum(axis=1) <= 1).any():  # on until every lander may choose
        observations, masks, _, _, _ = core.step(policy(observations, masks))
    return observations, masks


def test_candidates_are_allowed_distinct_and_start_with_the_policy_s_own_action():
    core = _core()
    policy = GreedyTeamArrays(core.config)
    observations, masks = _mid_episode(core, policy)
    teacher = BeliefRolloutTeacher(core, policy, samples=2, horizon=8)
    base = policy(observations, masks)
    table = teacher.candidates(observations, masks, base)
    np.testing.assert_array_equal(table[:, 0], base[:, 0])
    for row, mask in zip(table, masks[:, 0], strict=True):
        tried = row[row >= 0]
        assert len(set(tried.tolist())) == len(tried) > 3
        assert (mask[tried] == 1).all()


def test_the_search_never_reads_the_hidden_site():
    core = _core()
    policy = GreedyTeamArrays(core.config)
    observations, masks = _mid_episode(core, policy)
    teacher = BeliefRolloutTeacher(core, policy, samples=3, horizon=SHORT, seed=5)
    teacher._episode_seeds = SEEDS
    base = policy(observations, masks)
    episodes = np.arange(len(SEEDS))
    table = teacher.candidates(observations, masks, base)
    before = teacher._values(episodes, table, base)
    failed = core.site["failure_draw"] < core.site["failure_probability"]
    for name in ("value", "composition", "material", "slope_deg", "mass_g", "damage_draw"):
        core.site[name][:] = core.site[name][:, ::-1]  # what no lander could see, scrambled
    core.site["failure_draw"][:] = np.where(failed, 0.0, 1.0)  # which attempts failed: known
    after = teacher._values(episodes, table, base)
    np.testing.assert_array_equal(before, after)
    assert np.isfinite(before[table >= 0]).all() and before.std() > 0


def test_a_policy_that_only_waits_is_overruled_and_beaten():
    core = _core()
    config = core.config

    def wait(observations, masks):
        return np.zeros(masks.shape[:2], dtype=np.int64)

    base = sb3_batch.fly(core, wait, SEEDS)
    flown = BeliefRolloutTeacher(core, wait, samples=3, horizon=SHORT).fly(SEEDS)
    teacher = flown.rewards.sum(axis=0)
    assert (teacher > base + 3.0).all(), (teacher, base)
    assert flown.changed > 0.05
    chosen = np.take_along_axis(flown.masks, flown.actions[..., None], axis=-1)[..., 0]
    live = flown.masks.any(axis=-1)
    assert (chosen[live] == 1).all()  # what it chose it was allowed to choose
    # Rows after an episode ended teach nothing and earn nothing.
    ended = ~live[:, :, 0]
    assert ended.any() or flown.actions.shape[0] == SHORT
    assert (flown.rewards[ended] == 0).all()
    assert (flown.regrets[~live] == 0).all()
    assert config.horizon_steps == SHORT


def test_min_gain_leaves_the_policy_its_choices_and_the_search_repeats_exactly():
    core = _core()
    policy = GreedyTeamArrays(core.config)
    kept = BeliefRolloutTeacher(core, policy, samples=2, horizon=SHORT, min_gain=1e9).fly(SEEDS)
    assert kept.changed == 0.0
    # Regrets are what each tried action returned less than the best, whatever min_gain is.
    assert (kept.regrets >= 0).all() and kept.regrets.max() > 0
    np.testing.assert_allclose(kept.rewards.sum(axis=0), sb3_batch.fly(core, policy, SEEDS))
    first = BeliefRolloutTeacher(core, policy, samples=2, horizon=SHORT, seed=3).fly(SEEDS)
    again = BeliefRolloutTeacher(core, policy, samples=2, horizon=SHORT, seed=3).fly(SEEDS)
    np.testing.assert_array_equal(first.actions, again.actions)
    np.testing.assert_array_equal(first.regrets, again.regrets)
    other = BeliefRolloutTeacher(core, policy, samples=2, horizon=SHORT, seed=4).fly(SEEDS)
    assert not np.array_equal(first.regrets, other.regrets)  # the seed draws the worlds


def _random_actor(core):
    """A shared actor's spec and random weights for the lander and the science team."""
    from phobos.agents.shared_policy import SharedPolicySpec

    rng = np.random.default_rng(0)
    size, actions = core.layout.size, core.layout.lander_actions
    spec = SharedPolicySpec(
        env="phobos-sampling-v0",
        roles=("phobos_grunt", "science_team"),
        observation_size=size,
        action_count=actions,
        hidden=(8,),
    )
    tensors = {
        "actor.0.weight": rng.normal(size=(8, size + 2)).astype(np.float32),
        "actor.0.bias": np.zeros(8, np.float32),
        "actor.logits.weight": rng.normal(size=(actions, 8)).astype(np.float32),
        "actor.logits.bias": np.zeros(actions, np.float32),
    }
    return spec, tensors


def test_a_worker_s_share_is_the_belief_search_over_the_policy_s_actor():
    from phobos.agents.shared_policy import SharedActor
    from phobos.training.rollout_teacher import actor_policy

    core = _core()
    spec, tensors = _random_actor(core)
    share = fly_teacher(
        "phobos-sampling-v0", {"horizon_steps": SHORT}, spec, tensors, SEEDS, SHORT, 0.0, 2, 9
    )
    policy = actor_policy(SharedActor(spec, tensors, "test"), spec.role_features(core.agents))
    direct = BeliefRolloutTeacher(core, policy, 2, SHORT, seed=9).fly(SEEDS)
    np.testing.assert_array_equal(share.actions, direct.actions)


def test_the_true_site_teacher_flies_the_policy_and_prices_every_allowed_action():
    core = _core()
    policy = GreedyTeamArrays(core.config)
    flown = SiteRolloutTeacher(core, policy, horizon=SHORT).fly(SEEDS)
    # The states are the policy's own: the episodes return what the policy alone returns.
    np.testing.assert_allclose(flown.rewards.sum(axis=0), sb3_batch.fly(core, policy, SEEDS))
    assert 0 < flown.changed < 1  # the search would change some choices, not all
    lander = flown.regrets[:, :, 0]
    allowed = flown.masks[:, :, 0] == 1
    searched = (allowed.sum(axis=-1) > 1) & (lander.max(axis=-1) > 0)
    assert searched.sum() > 10
    assert (lander[~allowed] == 0).all()
    assert (flown.regrets[:, :, 1] == 0).all()  # the science team follows the policy
    # An allowed action the search did not try counts as the worst it tried, not as free.
    observations, masks = _mid_episode(core, policy)
    teacher = SiteRolloutTeacher(core, policy, horizon=SHORT)
    table = teacher.candidates(observations, masks, policy(observations, masks))
    _, _, regrets = teacher.improve(observations, masks)
    for row, tried, regret in zip(masks[:, 0], table, regrets[:, 0], strict=True):
        untried = np.flatnonzero(row == 1)
        untried = untried[~np.isin(untried, tried)]
        assert untried.size > 0 and regret.max() > 0
        np.testing.assert_array_equal(regret[untried], regret.max())


def test_the_true_site_search_reads_the_site_and_a_worker_s_share_is_the_same_search():
    from phobos.agents.shared_policy import SharedActor
    from phobos.training.rollout_teacher import actor_policy

    core = _core()
    spec, tensors = _random_actor(core)
    share = fly_teacher(
        "phobos-sampling-v0", {"horizon_steps": SHORT}, spec, tensors, SEEDS, SHORT, 0.0, 0, 0, True
    )
    policy = actor_policy(SharedActor(spec, tensors, "test"), spec.role_features(core.agents))
    direct = SiteRolloutTeacher(core, policy, SHORT).fly(SEEDS)
    np.testing.assert_array_equal(share.actions, direct.actions)
    np.testing.assert_array_equal(share.regrets, direct.regrets)
    greedy = GreedyTeamArrays(core.config)
    observations, masks = _mid_episode(core, greedy)
    teacher = SiteRolloutTeacher(core, greedy, horizon=SHORT)
    base = greedy(observations, masks)
    episodes = np.arange(len(SEEDS))
    table = teacher.candidates(observations, masks, base)
    before = teacher._values(episodes, table, base)
    for name in ("value", "composition"):
        core.site[name][:] = core.site[name][:, ::-1]
    assert not np.array_equal(before, teacher._values(episodes, table, base))


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        ({"rollout_samples": 2}, "rollout_samples must be 0, got 2"),
        ({"rollout_regret_weight": 0.0}, "needs rollout_regret_weight above 0"),
        ({"env": "orbit-scheduling-v1"}, "already branches the true episode"),
    ],
)
def test_true_site_settings_that_cannot_work_are_refused_before_ray(fields, culprit):
    from phobos.training.config import TrainConfig
    from phobos.training.train import check

    settings = {
        "env": "phobos-sampling-v0",
        "framework": "sb3",
        "sampler": "batch",
        "num_envs": 4,
        "train_batch_size": 8,
        "minibatch_size": 8,
        "imitation_episodes": 1,
        "rollout_rounds": 1,
        "rollout_true_site": True,
        "rollout_regret_weight": 1.0,
    }
    with pytest.raises(ValueError, match=culprit):
        check(TrainConfig(**(settings | fields)))


@pytest.mark.parametrize("search", ["rollout_samples=2", "rollout_true_site=true"])
def test_phobos_train_distils_the_belief_search_into_a_sampling_team(tmp_path, search):
    import json

    from phobos.agents.team_spec import TeamSpec, build_team
    from phobos.envs import make
    from tests.training.conftest import overrides, phobos

    folder = tmp_path / "lander"
    result = phobos(
        "train",
        "--out",
        str(folder),
        *overrides(
            [
                "env=phobos-sampling-v0",
                "framework=sb3",
                "sampler=batch",
                "critic=central",
                "num_envs=2",
                f"env_config={{horizon_steps: {SHORT}}}",
                "train_batch_size=8",
                "minibatch_size=8",
                "hidden=[16]",
                "total_env_steps=0",
                "imitation_episodes=2",
                "imitation_epochs=1",
                "rollout_rounds=1",
                "rollout_episodes=2",
                search,
                "rollout_regret_weight=1.0",
                f"rollout_horizon={SHORT}",
                "rollout_epochs=1",
                "rollout_workers=2",
            ]
        ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((folder / "policy" / "phobos.json").read_text())
    (summary,) = record["rollout_rounds"]
    assert summary["round"] == 1 and 0 < summary["accuracy"] <= 1
    assert np.isfinite(summary["teacher_return_mean"])
    env = make("phobos-sampling-v0", horizon_steps=SHORT)
    team = build_team(TeamSpec.parse(f"shared:{folder / 'policy'}"), env)
    observations, _ = env.reset(seed=3)
    while env.agents:
        actions = {agent: team[agent](observations[agent]) for agent in env.agents}
        observations, _, _, _, _ = env.step(actions)
