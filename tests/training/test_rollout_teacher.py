"""The rollout teacher: branches that follow their batch exactly, a search that never loses to
the policy it improves, its distillation in a real run, and the configs it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from phobos.agents.team_spec import TeamSpec, build_team
from phobos.envs import make, make_batch
from phobos.training import sb3_batch
from phobos.training.config import TrainConfig
from phobos.training.rollout_teacher import RolloutTeacher
from phobos.training.train import check
from tests.training.conftest import overrides, phobos

HORIZON = 24
LONG = 96
"""Eight hours: long enough for a day's first downlinks, so that choices differ in value."""
SEEDS = [31, 32, 33]


def _fixed_policy(seed: int):
    """A deterministic team policy of the observation: fixed random logits over the mask."""
    weights = np.random.default_rng(seed).normal(size=(93, 7))

    def act(observations, masks):
        logits = observations @ weights
        return np.where(masks > 0, logits, -np.inf).argmax(axis=-1)

    return act


def _core(n: int = len(SEEDS)):
    return make_batch("orbit-scheduling-v1", n, horizon_steps=HORIZON)


def test_a_branch_follows_its_batch_exactly_and_each_copy_can_act_on_its_own():
    core = _core()
    policy = _fixed_policy(0)
    observations, masks = core.reset(SEEDS)
    for _ in range(5):
        observations, masks, _, _, _ = core.step(policy(observations, masks))
    branch = core.branch(2)
    assert branch.num_envs == 2 * len(SEEDS)
    np.testing.assert_array_equal(branch._observe()[0], np.repeat(observations, 2, axis=0))
    # Copy 0 of each episode does what the batch does, copy 1 idles: copy 0 stays identical.
    for _ in range(6):
        actions = policy(observations, masks)
        pair = np.repeat(actions, 2, axis=0)
        pair[1::2] = 0
        seen, _, reward, _, _ = branch.step(pair)
        observations, masks, core_reward, _, _ = core.step(actions)
        np.testing.assert_array_equal(seen[0::2], observations)
        np.testing.assert_array_equal(reward[0::2], core_reward)
    assert not np.array_equal(branch.storage[1::2], core.storage)  # the idle copies diverged
    branch.sync(core)  # back to the batch's state, the divergence forgotten
    np.testing.assert_array_equal(branch.storage, np.repeat(core.storage, 2, axis=0))
    np.testing.assert_array_equal(branch._observe()[0], np.repeat(core._observe()[0], 2, axis=0))
    assert branch.step_index == core.step_index
    with pytest.raises(RuntimeError, match="reset the parent"):
        branch.reset()
    with pytest.raises(ValueError, match="the batch this one was branched from"):
        branch.sync(_core())
    with pytest.raises(ValueError, match="copies must be at least 1"):
        core.branch(0)


def test_the_full_horizon_search_never_does_worse_than_the_policy_it_improves():
    core = make_batch("orbit-scheduling-v1", len(SEEDS), horizon_steps=LONG)
    improved_better = 0
    for policy_seed in (0, 1):
        policy = _fixed_policy(policy_seed)
        base = sb3_batch.fly(core, policy, SEEDS)
        flown = RolloutTeacher(core, policy, horizon=LONG).fly(SEEDS)
        teacher = flown.rewards.sum(axis=0)
        # Multiagent rollout over a deterministic episode: never worse than its base policy.
        assert (teacher >= base - 1e-9).all(), (teacher, base)
        improved_better += int((teacher > base + 1e-6).sum())
        assert 0 < flown.changed < 1
        assert flown.actions.shape == (LONG, len(SEEDS), 5)
        # What the teacher chose is what it was allowed to choose.
        chosen = np.take_along_axis(flown.masks, flown.actions[..., None], axis=-1)
        assert (chosen == 1).all()
    assert improved_better >= 3  # it is a real improvement, not a copy of the policy


def test_min_gain_leaves_the_policy_its_choices_unless_an_alternative_gains_that_much():
    core = make_batch("orbit-scheduling-v1", len(SEEDS), horizon_steps=LONG)
    policy = _fixed_policy(1)
    changes = [
        RolloutTeacher(core, policy, 12, min_gain=gain).fly(SEEDS).changed
        for gain in (0, 0.05, 1e9)
    ]
    assert changes[0] > changes[1] > 0
    assert changes[2] == 0.0


def test_returns_of_the_teacher_episodes_are_discounted_from_each_step():
    flown = RolloutTeacher(_core(1), _fixed_policy(0), horizon=2).fly(SEEDS[:1])
    returns = flown.returns(0.5)
    rewards = flown.rewards[:, 0]
    assert returns[-1, 0] == pytest.approx(rewards[-1])
    assert returns[0, 0] == pytest.approx(sum(r * 0.5**t for t, r in enumerate(rewards)))


def test_distillation_moves_the_policy_to_the_teacher():
    torch.set_num_threads(1)
    config = TrainConfig(
        env="orbit-scheduling-v1",
        framework="sb3",
        sampler="batch",
        num_envs=2,
        train_batch_size=8,
        minibatch_size=8,
        hidden=(32,),
        env_config={"horizon_steps": HORIZON},
        rollout_rounds=2,
        rollout_episodes=3,
        rollout_horizon=6,
        rollout_epochs=30,
    )
    env = sb3_batch.make_env(config, 0)
    model = sb3_batch.new_model(config, env, 0, 3e-4)
    rounds = sb3_batch.improve_by_rollouts(model, env, config, 0, log=lambda line: None)
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[-1]["accuracy"] > 0.8
    for summary in rounds:
        assert 0 < summary["changed"] <= 1


@pytest.fixture(scope="module")
def distilled_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rollout") / "run"
    result = phobos(
        "train",
        "--config",
        "configs/train/orbit_team_sb3_batch.yaml",
        "--out",
        str(folder),
        *overrides(
            [
                "num_envs=2",
                f"env_config={{horizon_steps: {HORIZON}}}",
                "train_batch_size=8",
                "minibatch_size=8",
                "hidden=[16]",
                "total_env_steps=0",
                "imitation_episodes=2",
                "imitation_epochs=1",
                "rollout_rounds=1",
                "rollout_episodes=2",
                "rollout_workers=2",
                "rollout_horizon=3",
                "rollout_epochs=1",
                "teacher_kl_coeff=0",
            ]
        ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result.stdout + result.stderr


def test_phobos_train_distils_the_teacher_and_exports_a_team_with_no_ppo_update(distilled_run):
    folder, _ = distilled_run
    record = json.loads((folder / "policy" / "phobos.json").read_text())
    assert record["iteration"] == 0 and record["env_steps"] == 0
    (summary,) = record["rollout_rounds"]  # what the round's teacher and policy scored
    assert summary["round"] == 1 and 0 < summary["accuracy"] <= 1
    env = make("orbit-scheduling-v1", horizon_steps=HORIZON)
    team = build_team(TeamSpec.parse(f"shared:{folder / 'policy'}"), env)
    observations, _ = env.reset(seed=3)
    while env.agents:
        actions = {agent: team[agent](observations[agent]) for agent in env.agents}
        observations, _, _, _, _ = env.step(actions)


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        ({"rollout_rounds": -1}, "rollout_rounds must be 0 or more"),
        ({"rollout_rounds": 1, "rollout_horizon": 0}, "rollout_horizon must be at least 1"),
        ({"rollout_rounds": 1, "rollout_episodes": 0}, "rollout_episodes must be at least 1"),
        ({"rollout_rounds": 1, "rollout_workers": 0}, "rollout_workers must be at least 1"),
        ({"rollout_rounds": 1, "rollout_min_gain": -1.0}, "rollout_min_gain must be 0 or more"),
        ({"rollout_rounds": 1, "sampler": "env"}, "rollout_rounds needs framework 'sb3'"),
        ({"rollout_rounds": 1, "env": "phobos-sampling-v0"}, "rollout_samples must be at least 1"),
        ({"rollout_rounds": 1, "rollout_samples": 4}, "rollout_samples must be 0"),
        ({"total_env_steps": 0}, "total_env_steps must be at least 1"),
    ],
)
def test_bad_rollout_configs_are_refused_before_ray_starts(fields, culprit):
    base = {
        "env": "orbit-scheduling-v1",
        "framework": "sb3",
        "sampler": "batch",
        "num_envs": 4,
        "train_batch_size": 64,
        "minibatch_size": 32,
    }
    with pytest.raises(ValueError, match=culprit):
        check(TrainConfig(**(base | fields)))


def test_a_run_that_only_clones_is_accepted():
    check(
        TrainConfig(
            env="orbit-scheduling-v1",
            framework="sb3",
            sampler="batch",
            num_envs=4,
            train_batch_size=64,
            minibatch_size=32,
            total_env_steps=0,
            imitation_episodes=2,
        )
    )


def test_delivered_by_horizon_is_the_science_still_to_arrive_from_what_was_downlinked():
    core = make_batch("orbit-scheduling-v1", len(SEEDS), horizon_steps=LONG)
    policy = _fixed_policy(1)
    observations, masks = core.reset(SEEDS)
    for _ in range(LONG - 2):
        observations, masks, _, _, _ = core.step(policy(observations, masks))
    promised = core.delivered_by_horizon()
    before = core.totals["science"] + core.totals["occultation"]
    done = False
    while not done:  # idle: nothing more is downlinked, only what is in flight lands
        _, _, _, done, _ = core.step(np.zeros((len(SEEDS), 5), dtype=np.int64))
    arrived = core.totals["science"] + core.totals["occultation"] - before
    np.testing.assert_allclose(arrived, promised)
    assert promised.sum() > 0


def test_shares_of_the_teacher_s_episodes_label_them_as_one_batch_does(tmp_path):
    from phobos.agents.shared_policy import SharedPolicySpec
    from phobos.training.rollout_teacher import TeacherEpisodes, fly_teacher

    spec = SharedPolicySpec(
        env="orbit-scheduling-v1",
        roles=("phobos_grunt", "yinghuo1", "ground"),
        observation_size=93,
        action_count=7,
        hidden=(16,),
    )
    generator = np.random.default_rng(5)
    actor = {
        "actor.0.weight": generator.normal(size=(16, 96)).astype(np.float32),
        "actor.0.bias": np.zeros(16, dtype=np.float32),
        "actor.logits.weight": generator.normal(size=(7, 16)).astype(np.float32),
        "actor.logits.bias": np.zeros(7, dtype=np.float32),
    }
    config = {"horizon_steps": LONG}
    whole = fly_teacher("orbit-scheduling-v1", config, spec, actor, SEEDS, 24, 0.0)
    shares = TeacherEpisodes.concatenate(
        [
            fly_teacher("orbit-scheduling-v1", config, spec, actor, SEEDS[:1], 24, 0.0),
            fly_teacher("orbit-scheduling-v1", config, spec, actor, SEEDS[1:], 24, 0.0),
        ]
    )
    np.testing.assert_array_equal(shares.actions, whole.actions)
    np.testing.assert_array_equal(shares.rewards, whole.rewards)
    assert shares.changed == pytest.approx(whole.changed) and whole.changed > 0


def test_regrets_are_zero_for_the_best_and_the_forbidden_actions_and_positive_elsewhere():
    core = make_batch("orbit-scheduling-v1", len(SEEDS), horizon_steps=LONG)
    flown = RolloutTeacher(core, _fixed_policy(1), 12).fly(SEEDS)
    chosen = np.take_along_axis(flown.regrets, flown.actions[..., None], axis=-1)
    assert (chosen <= 1e-6).all()  # with no min_gain the teacher takes a best action
    assert (flown.regrets[flown.masks == 0] == 0).all()
    assert (flown.regrets >= 0).all() and flown.regrets.max() > 0


def test_the_regret_term_picks_the_action_best_on_average_where_observations_alias():
    from phobos.training.imitation import Demonstrations, clone

    torch.manual_seed(0)
    # One observation, two states behind it: half the rows' best action is 0 (1 loses 0.1),
    # half's is 1 (0 loses 2.0). Copying labels alone splits evenly; the regret term picks 1.
    rows = 400
    observations = np.ones((rows, 3), dtype=np.float32)
    masks = np.ones((rows, 2), dtype=np.int8)
    actions = np.array([0, 1] * (rows // 2))
    regrets = np.where(actions[:, None] == 0, [0.0, 0.1], [2.0, 0.0]).astype(np.float32)
    network = torch.nn.Linear(3, 3)

    def heads(x, m):
        out = network(x)
        return out[:, :2].masked_fill(m <= 0, -1e8), out[:, 2:]

    def share_of_action_1(weight):
        for p in network.parameters():
            torch.nn.init.zeros_(p)
        data = Demonstrations(observations, masks, actions, np.zeros(rows, np.float32), regrets)
        clone(heads, network.parameters(), data, 50, seed=0, lr=0.05, regret_weight=weight)
        with torch.no_grad():
            return float(torch.softmax(heads(torch.ones(1, 3), torch.ones(1, 2))[0], 1)[0, 1])

    assert share_of_action_1(0.0) == pytest.approx(0.5, abs=0.05)
    assert share_of_action_1(5.0) > 0.75  # (the optimum of both terms together: 0.87)
