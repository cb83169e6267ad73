"""The cell-set actor: torch and the exported numpy actor give the same logits, specs that do
not fit are refused, and configs that cannot use it are refused before Ray starts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from phobos.agents.shared_policy import SPEC_FILE, load_shared_team, read_shared_policy
from phobos.envs import make
from phobos.training import sb3_batch
from phobos.training.config import TrainConfig
from phobos.training.train import check

CONFIG = {
    "env": "phobos-sampling-v0",
    "framework": "sb3",
    "sampler": "batch",
    "num_envs": 3,
    "train_batch_size": 12,
    "minibatch_size": 24,
    "hidden": (16, 16),
    "policy_network": "cells",
}


def _exported(tmp_path, **fields):
    torch.set_num_threads(1)
    config = TrainConfig(**(CONFIG | fields))
    env = sb3_batch.make_env(config, 0)
    model = sb3_batch.new_model(config, env, 0, 1e-3)
    model.learn(2 * config.train_batch_size * len(env.agents))  # weights no longer initial
    sb3_batch.export(model, env, config, tmp_path)
    return config, env, model


@pytest.mark.parametrize(
    ("critic", "network"), [("local", "cells"), ("central", "cells"), ("central", "cells_areas")]
)
def test_the_exported_actor_gives_the_trained_network_s_logits_for_both_roles(
    tmp_path, critic, network
):
    _, env, model = _exported(tmp_path, critic=critic, policy_network=network)
    spec, actors = read_shared_policy(tmp_path)
    assert spec.cells == (14, 36, 16) and set(spec.cell_actions) == set(spec.roles)
    assert (spec.areas is not None) == (network == "cells_areas")
    observations, masks = env.core.reset([5, 6, 7])
    for _ in range(8):  # past the first images: cells differ from the prior
        observations, masks, _, _, _ = env.core.step(np.asarray(model.policy.predict(
            env.slots(observations), deterministic=True, action_masks=masks.reshape(6, -1)
        )[0]).reshape(3, 2))
    slots = env.slots(observations)
    with torch.no_grad():
        trained = model.policy.mlp_extractor.forward_actor(torch.as_tensor(slots)).numpy()
    exported = actors["phobos_grunt"].logits(slots[:, : env.actor_inputs])
    np.testing.assert_allclose(exported, trained, rtol=1e-4, atol=1e-5)
    # The cell actions are scored cell by cell: the lander's spectrometer and sample ranges
    # and the team's advice hold per-cell scores, which differ from cell to cell.
    assert np.ptp(exported[0, 42:78]) > 0 and np.ptp(exported[1, 1:37]) > 0
    if network == "cells_areas":  # the image actions are scored area by area from their cells
        pooled = np.ptp(exported[0, 2:6])
        assert pooled > 0 and spec.area_actions == {"phobos_grunt": 2}
        assert [len(cells) for cells in spec.areas] == [9, 9, 9, 9]


def test_area_specs_that_do_not_fit_are_refused(tmp_path):
    _exported(tmp_path, policy_network="cells_areas")
    env = make("phobos-sampling-v0")
    load_shared_team(str(tmp_path), env)  # as exported, it loads
    spec = json.loads((tmp_path / SPEC_FILE).read_text())
    assert spec["format"] == "phobos-shared-cells/2"
    bad = [
        ({"areas": [[0, 1], [36]]}, "an area names cell 36 of 36"),
        ({"area_actions": {"phobos_grunt": 76}}, "area actions 76..79 .* exceed the 78 actions"),
        ({"area_actions": {"rover": 2}}, "area_actions for unknown role 'rover'"),
        ({"areas": [[]]}, "malformed field"),
        ({"areas": [[0]] * 65}, "malformed field"),
        ({"format": "phobos-shared-cells/1"}, "areas need format phobos-shared-cells/2"),
    ]
    for change, message in bad:
        (tmp_path / SPEC_FILE).write_text(json.dumps(spec | change))
        with pytest.raises(ValueError, match=message):
            load_shared_team(str(tmp_path), env)


def test_cell_specs_that_do_not_fit_are_refused(tmp_path):
    _exported(tmp_path)
    env = make("phobos-sampling-v0")
    load_shared_team(str(tmp_path), env)  # as exported, it loads
    spec = json.loads((tmp_path / SPEC_FILE).read_text())
    bad = [
        ({"cells": [14, 35, 16]}, "do not make an observation of 590"),
        ({"cell_actions": {"phobos_grunt": [[60, 0]]}}, "exceed the 78 actions"),
        ({"cell_actions": {"rover": [[1, 0]]}}, "unknown role 'rover'"),
        ({"per_role": True}, "observations then role, shared"),
        ({"cells": "all"}, "malformed field"),
        ({"cell_actions": {"phobos_grunt": [[6, -1]]}}, "malformed field"),
    ]
    for change, message in bad:
        (tmp_path / SPEC_FILE).write_text(json.dumps(spec | change))
        with pytest.raises(ValueError, match=message):
            load_shared_team(str(tmp_path), env)


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        ({"env": "orbit-scheduling-v1", "minibatch_size": 60}, "has no cell blocks"),
        ({"sampler": "env", "minibatch_size": 12}, "needs framework 'sb3' with sampler 'batch'"),
        (
            {"env": "orbit-scheduling-v1", "minibatch_size": 60, "policy_network": "cells_areas"},
            "has no cell blocks",
        ),
    ],
)
def test_configs_that_cannot_use_the_cell_set_actor_are_refused(fields, culprit):
    with pytest.raises(ValueError, match=culprit):
        check(TrainConfig(**(CONFIG | fields)))
