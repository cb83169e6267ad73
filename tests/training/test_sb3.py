"""Stable-Baselines3 MaskablePPO under Ray Tune: trials in parallel, a warm start, an export."""

from __future__ import annotations

import csv
import json

import pytest

from phobos.agents.team_spec import TeamSpec, build_team
from phobos.envs import make
from tests.training.conftest import overrides, phobos

TINY_LANDER = [
    "env=phobos-sampling-v0",
    "framework=sb3",
    "env_config={horizon_steps: 24}",
    "train_batch_size=64",
    "minibatch_size=32",
    "num_epochs=1",
    "hidden=[16]",
    "total_env_steps=128",
    "checkpoint_every=1",
    "trial_seeds=[0, 1]",
    "imitation_episodes=2",
    "imitation_epochs=1",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sb3") / "run"
    result = phobos("train", "--out", str(folder), *overrides(TINY_LANDER))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result.stdout


def test_each_seed_is_a_tune_trial_with_its_own_curve(trained):
    folder, stdout = trained
    with (folder / "progress.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["seed"] for row in rows} == {"0", "1"}
    for seed in ("0", "1"):
        steps = [int(r["env_steps"]) for r in rows if r["seed"] == seed]
        assert steps == [64, 128]
    assert "seed 0 lr 0.0003 | iter    2 | 128/128 env steps" in stdout
    assert (folder / "tune").is_dir()


def test_the_exported_trial_is_named_with_its_folder(trained):
    folder, stdout = trained
    line = next(line for line in stdout.splitlines() if line.startswith("best trial "))
    name = line.split()[2]
    assert name in ("seed0_lr0.0003", "seed1_lr0.0003"), line
    path = line.rpartition("): ")[2]
    assert path.endswith(name) and (folder / "tune" / name).is_dir(), line
    assert "best of 2 trials" in line


def test_export_flies_the_lander_among_scripted_teammates(trained):
    folder, _ = trained
    info = json.loads((folder / "policy" / "phobos.json").read_text())
    assert info["env"] == "phobos-sampling-v0" and info["learner"] == "phobos_grunt"
    assert info["seed"] in (0, 1) and info["env_steps"] == 128
    env = make("phobos-sampling-v0", horizon_steps=24)
    spec = TeamSpec.parse(f"greedy,phobos_grunt=sb3:{folder / 'policy' / 'model.zip'}", trust=True)
    team = build_team(spec, env)
    assert type(team["phobos_grunt"].model).__name__ == "MaskablePPO"
    observations, _ = env.reset(seed=5)
    while env.agents:
        actions = {agent: team[agent](observations[agent]) for agent in env.agents}
        assert observations["phobos_grunt"]["action_mask"][actions["phobos_grunt"]] == 1
        observations, _, _, _, _ = env.step(actions)


def test_export_is_refused_by_the_other_environment(trained):
    folder, _ = trained
    orbit = make("orbit-scheduling-v0")
    with pytest.raises(ValueError, match="trained on phobos-sampling-v0"):
        build_team(
            TeamSpec.parse(
                f"greedy,phobos_grunt=sb3:{folder / 'policy' / 'model.zip'}", trust=True
            ),
            orbit,
        )
