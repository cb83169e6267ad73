"""RLlib multi-agent PPO end to end: train, checkpoint, kill, resume, export, load without Ray."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from phobos.agents.loaders import load_rllib
from phobos.agents.team_spec import TeamSpec, build_team
from phobos.envs import make
from tests.training.conftest import TINY_ORBIT, overrides, phobos


def _rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_killed_run_resumes_from_its_checkpoint_with_its_step_count(run_folder):
    """A training process killed with SIGKILL after a checkpoint continues where it stood."""
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    command = [sys.executable, "-m", "phobos.cli", "train", "--out", str(run_folder)]
    settings = [*TINY_ORBIT, "total_env_steps=960", "checkpoint_every=2"]
    process = subprocess.Popen(
        command + overrides(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,  # its Ray processes die with it
    )
    try:
        for line in process.stdout:  # wait for the first sealed checkpoint, then kill
            if line.startswith("checkpoint"):
                break
        else:
            pytest.fail("training ended without announcing a checkpoint")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    saved = json.loads(next(run_folder.glob("checkpoints/*/phobos.json")).read_text())
    assert saved["iteration"] == 2 and saved["env_steps"] == 192
    assert not (run_folder / "policy").exists()  # it never finished

    resumed = phobos("train", "--out", str(run_folder), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout and "from iteration 2 at 192 env steps" in resumed.stdout
    first = next(line for line in resumed.stdout.splitlines() if line.startswith("iter"))
    assert first.split("|")[0].split()[1] == "3"  # the count goes on from the checkpoint
    rows = _rows(run_folder / "progress.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(1, 11))
    assert [int(r["env_steps"]) for r in rows] == [96 * i for i in range(1, 11)]
    info = json.loads((run_folder / "policy" / "phobos.json").read_text())
    assert info["iteration"] == 10 and info["env_steps"] == 960
    assert list((run_folder / "tensorboard").glob("events.out.tfevents.*"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rllib") / "run"
    result = phobos("train", "--out", str(folder), *overrides([*TINY_ORBIT, "total_env_steps=192"]))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def test_export_flies_every_agent_behind_the_policy_protocol_without_ray(trained):
    import ray

    assert not ray.is_initialized()
    env = make("orbit-scheduling-v0", horizon_steps=24)
    team = build_team(TeamSpec.parse(f"rllib:{trained / 'policy'}"), env, trust=True)
    observations, _ = env.reset(seed=7)
    while env.agents:
        actions = {agent: team[agent](observations[agent]) for agent in env.agents}
        for agent, action in actions.items():  # the module never picks a masked action
            assert observations[agent]["action_mask"][action] == 1
        observations, _, _, _, infos = env.step(actions)
        assert not any(info["action_masked"] for info in infos.values())
    # Stations share one module; each spacecraft has its own.
    assert team["ground_miyun"].module is team["ground_bear_lakes"].module
    assert team["phobos_grunt"].module is not team["yinghuo1"].module


def test_export_is_refused_by_another_environment(trained):
    sampling = make("phobos-sampling-v0")
    with pytest.raises(ValueError, match="trained on orbit-scheduling-v0"):
        load_rllib(str(trained / "policy"), sampling, "phobos_grunt", trust=True)


def test_resume_refuses_a_run_of_another_environment(trained):
    record = json.loads((trained / "run.json").read_text())
    record["env"] = "phobos-sampling-v0"
    (trained / "run.json").write_text(json.dumps(record))
    result = phobos("train", "--out", str(trained), "--resume")
    assert result.returncode == 2
    assert "was made for env='phobos-sampling-v0'" in result.stderr


def test_a_fresh_run_refuses_to_overwrite_a_run_folder(trained):
    result = phobos("train", "--out", str(trained), *overrides(TINY_ORBIT))
    assert result.returncode == 2 and "already holds a run" in result.stderr


def test_trained_module_acts_deterministically(trained):
    env = make("orbit-scheduling-v0", horizon_steps=24)
    policy = load_rllib(str(trained / "policy"), env, "yinghuo1", trust=True)
    observations, _ = env.reset(seed=3)
    observation = observations["yinghuo1"]
    assert len({policy(observation) for _ in range(5)}) == 1
    assert isinstance(policy(observation), int) and 0 <= policy(observation) < 7
    assert np.asarray(observation["action_mask"])[policy(observation)] == 1


def test_a_relative_checkpoint_path_loads(trained, monkeypatch):
    monkeypatch.chdir(trained.parent)
    env = make("orbit-scheduling-v0", horizon_steps=24)
    policy = load_rllib("run/policy", env, "phobos_grunt", trust=True)
    observations, _ = env.reset(seed=1)
    assert observations["phobos_grunt"]["action_mask"][policy(observations["phobos_grunt"])] == 1
