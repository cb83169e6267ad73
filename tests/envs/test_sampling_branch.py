"""Branches of the sampling batch core: copies that follow their batch exactly, and imagined
sites drawn from what the lander believes (the belief rollout teacher's worlds)."""

from __future__ import annotations

import numpy as np
import pytest

from phobos.agents.sampling_policies import GreedyTeamArrays
from phobos.envs import make_batch
from phobos.envs.sampling.layout import SAMPLED

SEEDS = [41, 42, 43]


def _core(n: int = len(SEEDS)):
    return make_batch("phobos-sampling-v0", n)


def _random_policy(seed: int):
    rng = np.random.default_rng(seed)

    def act(observations, masks):
        scores = rng.random(masks.shape)
        return np.where(masks > 0, scores, -1.0).argmax(axis=-1)

    return act


def test_a_branch_follows_its_batch_exactly_until_a_copy_acts_on_its_own():
    core = _core()
    policy = _random_policy(0)
    observations, masks = core.reset(SEEDS)
    for _ in range(6):
        observations, masks, _, _, _ = core.step(policy(observations, masks))
    branch = core.branch(2)
    assert branch.num_envs == 2 * len(SEEDS) and branch.run_on and not core.run_on
    np.testing.assert_array_equal(branch._observe()[0], np.repeat(observations, 2, axis=0))
    # Copy 0 of each episode does what the batch does, copy 1 only waits: copy 0 keeps step
    # with the batch, labels and all (its generator is a copy of the episode's).
    for _ in range(20):
        actions = policy(observations, masks)
        pair = np.repeat(actions, 2, axis=0)
        pair[1::2] = 0
        seen, seen_masks, reward, done, _ = branch.step(pair)
        observations, masks, core_reward, core_done, _ = core.step(actions)
        np.testing.assert_array_equal(seen[0::2], observations)
        np.testing.assert_array_equal(seen_masks[0::2], masks)
        np.testing.assert_array_equal(reward[0::2], core_reward)
        if core_done.any():
            break
    for name, total in core.totals.items():
        np.testing.assert_array_equal(branch.totals[name][0::2], total, err_msg=name)
    assert not np.array_equal(branch.battery[1::2], core.battery)  # the idle copies diverged
    branch.sync(core)
    np.testing.assert_array_equal(branch.battery, np.repeat(core.battery, 2, axis=0))
    np.testing.assert_array_equal(branch._observe()[0], np.repeat(core._observe()[0], 2, axis=0))
    with pytest.raises(ValueError, match="the batch this one was branched from"):
        branch.sync(_core())
    with pytest.raises(ValueError, match="copies must be a positive integer"):
        core.branch(0)
    with pytest.raises(ValueError, match="episodes must lie in"):
        core.branch(1, [len(SEEDS)])


def test_a_branch_of_some_episodes_holds_only_those():
    core = _core()
    observations, masks = core.reset(SEEDS)
    branch = core.branch(3, [2, 0])
    np.testing.assert_array_equal(branch._observe()[0], observations[[2, 2, 2, 0, 0, 0]])
    np.testing.assert_array_equal(branch.site["value"], core.site["value"][[2, 2, 2, 0, 0, 0]])


def test_ended_episodes_of_a_branch_run_on_while_the_batch_itself_refuses():
    core = _core(1)
    policy = GreedyTeamArrays(core.config)
    observations, masks = core.reset([SEEDS[0]])
    branch = core.branch(1)
    done = np.zeros(1, dtype=bool)
    while not done.any():
        observations, masks, _, done, _ = branch.step(policy(observations, masks))
    branch.step(policy(observations, masks))  # an ended copy steps on (its reward ignored)
    while not core.done.any():
        core.step(policy(*core._observe()))
    with pytest.raises(RuntimeError, match="restart them"):
        core.step(np.zeros((1, 2), dtype=np.int64))


def _informed_core():
    """Episodes in which the greedy lander has imaged, confirmed and sampled some cells."""
    core = _core()
    policy = GreedyTeamArrays(core.config)
    observations, masks = core.reset(SEEDS)
    for _ in range(16):
        observations, masks, _, _, _ = core.step(policy(observations, masks))
    return core


def test_imagined_compositions_follow_the_lander_s_belief_cell_by_cell():
    core = _informed_core()
    draws = 3000
    branch = core.branch(draws, [0])
    sites = branch.believed_sites([np.random.default_rng([7, i]) for i in range(draws)])
    layout = core.layout
    believed = core.blocks[0, 0, :, : layout.classes]  # the lander's class probabilities
    drawn = np.stack(
        [(sites["composition"] == c).mean(axis=0) for c in range(layout.classes)], axis=1
    )
    spread = np.sqrt(believed * (1 - believed) / draws)
    assert (np.abs(drawn - believed) <= 5 * spread + 1e-9).all()
    # The lander's measurements matter: imaged and confirmed cells differ from the prior.
    assert np.abs(believed - believed[-1]).max() > 0.3
    # Materials follow the joint posterior: the composition labels say something of the
    # material too (through the prior of compositions given materials).
    site = core.config.site
    joint = np.einsum(
        "m,mc,nm,nc->nmc",
        np.asarray(site.material_prior),
        np.asarray(site.composition_prior),
        np.exp(core.belief.material_loglik[0, 0]),
        np.exp(core.belief.class_loglik[0, 0]),
    )
    material = joint.sum(axis=2) / joint.sum(axis=(1, 2))[:, None]
    drawn_material = np.stack(
        [(sites["material"] == m).mean(axis=0) for m in range(layout.materials)], axis=1
    )
    spread = np.sqrt(material * (1 - material) / draws)
    assert (np.abs(drawn_material - material) <= 5 * spread + 1e-9).all()


def test_imagined_sites_hide_the_true_one_and_keep_what_the_lander_knows():
    core = _informed_core()
    attempted = core.blocks[:, 0, :, core.layout.classes + core.layout.materials + SAMPLED] > 0
    assert attempted.any()
    branch = core.branch(1)
    rngs = [np.random.default_rng(i) for i in range(branch.num_envs)]
    before = branch.believed_sites(rngs)
    # Garbage where the lander cannot see: the imagined sites must not change.
    for name in ("value", "composition", "material", "slope_deg", "mass_g"):
        core.site[name][:] = core.site[name][:, ::-1]
    branch = core.branch(1)
    after = branch.believed_sites([np.random.default_rng(i) for i in range(branch.num_envs)])
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    # The container holds the imagined classes of the cells sampled without failure.
    failed = core.site["failure_draw"] < core.site["failure_probability"]
    stowed = attempted & ~failed
    for i in range(core.num_envs):
        classes = np.unique(after["composition"][i][stowed[i]])
        assert set(np.flatnonzero(after["stowed"][i])) == set(classes.tolist())
    branch.imagine(after, [np.random.default_rng(0) for _ in range(branch.num_envs)])
    np.testing.assert_array_equal(branch.site["value"], after["value"])
    np.testing.assert_array_equal(branch.stowed, after["stowed"])


def test_imagining_needs_a_branch_and_a_generator_per_episode():
    core = _informed_core()
    rngs = [np.random.default_rng(0)] * core.num_envs
    with pytest.raises(RuntimeError, match="for a branch"):
        core.imagine(core.believed_sites(rngs), rngs)
    with pytest.raises(ValueError, match="got 1 generators for 3 episodes"):
        core.believed_sites(rngs[:1])
