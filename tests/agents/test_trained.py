"""The committed trained policies load as the team ``trained`` and fly whole episodes."""

from __future__ import annotations

import json

import pytest

from phobos.agents import make_team, policy_names
from phobos.agents.teams import TRAINED, trained_policy
from phobos.envs import make

COMMITTED = sorted(p.parent.name for p in TRAINED.glob("*/phobos.json"))
ENV_IDS = {
    "orbit_scheduling_v0": "orbit-scheduling-v0",
    "orbit_scheduling_v1": "orbit-scheduling-v1",
    "phobos_sampling_v0": "phobos-sampling-v0",
}


def test_every_committed_policy_belongs_to_a_registered_env_and_records_its_recipe():
    assert COMMITTED, "no trained policy is committed"
    for name in COMMITTED:
        folder = TRAINED / name
        info = json.loads((folder / "phobos.json").read_text())
        assert ENV_IDS[name] == info["env"]
        assert "phobos train --config" in (folder / "README.md").read_text()
        assert (folder / "train_config.yaml").exists() and (folder / "progress.csv").exists()
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        assert size < 4_000_000, f"{name} is {size:,} bytes; committed policies stay small"


@pytest.mark.parametrize("name", COMMITTED)
def test_trained_team_flies_an_episode_without_masked_actions(name):
    env = make(ENV_IDS[name])
    assert "trained" in policy_names(env) and trained_policy(env) == TRAINED / name
    team = make_team("trained", env)
    observations, _ = env.reset(seed=11)
    while env.agents:
        actions = {agent: team[agent](observations[agent]) for agent in env.agents}
        observations, _, _, _, infos = env.step(actions)
        assert not any(info["action_masked"] for info in infos.values())


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_policies_load_and_fly_without_unpickling_anything(name, monkeypatch):
    import pickle

    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("a committed policy tried to unpickle")

    for module, attribute in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, attribute, refuse)
    folder = TRAINED / name
    assert not [p.name for p in folder.rglob("*") if p.suffix in (".pkl", ".zip", ".pt", ".pth")]
    env = make(name.replace("_", "-"))
    team = make_team("trained", env)
    observations, _ = env.reset(seed=1)
    for _ in range(5):
        actions = {agent: team[agent](observations[agent]) for agent in env.agents}
        observations, _, _, _, _ = env.step(actions)
