"""Bad requests fail with a clear error before any episode runs."""

from __future__ import annotations

import sys

import pytest

from phobos.agents.team_spec import TeamSpec
from phobos.cli import main
from phobos.envs import make_config
from phobos.evaluation import runner
from phobos.evaluation.runner import make_request, parse_seeds
from phobos.ray_cluster import check_ray_address


@pytest.fixture
def no_episodes(monkeypatch):
    """Any episode that starts fails the test: checks must come first."""

    def forbidden(spec):
        raise AssertionError(f"an episode ran: {spec}")

    monkeypatch.setattr(runner, "run_episode", forbidden)


@pytest.mark.parametrize(
    ("teams", "message"),
    [
        (["nope"], "unknown policy 'nope'"),
        (["greedy,yinghuo1=nope"], "unknown policy 'nope'"),
        (["greedy,nobody=random"], "unknown agent 'nobody'"),
        (["cautious"], "no 'cautious' policies"),
        (["greedy,phobos_grunt=sb3:/no/such.zip"], "does not exist"),
        (["greedy,phobos_grunt=rllib:/no/such/ckpt"], "does not exist"),
        ([], "no policies"),
        (["greedy", "greedy"], "repeat"),
    ],
)
def test_bad_teams(no_episodes, teams, message):
    with pytest.raises(ValueError, match=message):
        make_request("orbit-scheduling-v0", teams, [1, 2])


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("1,x,3", "'x' is not an integer"),
        ("", "no seeds"),
        ([], "no seeds"),
        ([1.5], "not an integer"),
        ([True], "not an integer"),
        ("2,2", "repeat"),
        ("1,,2", "empty item between commas"),
        ("5-1", "'5-1' is reversed: write it low-high, 1-5"),
    ],
)
def test_bad_seeds(no_episodes, seeds, message):
    with pytest.raises(ValueError, match=message):
        make_request("orbit-scheduling-v0", ["greedy"], seeds)


def test_seed_ranges_parse():
    assert parse_seeds("0-3,7") == (0, 1, 2, 3, 7)
    assert parse_seeds(range(3)) == (0, 1, 2)


def test_a_checkpoint_for_another_environment_is_refused(tmp_path, no_episodes):
    from stable_baselines3 import PPO

    path = tmp_path / "cartpole.zip"
    PPO("MlpPolicy", "CartPole-v1", n_steps=8, batch_size=8, device="cpu").save(path)
    with pytest.raises(ValueError, match="does not match phobos_grunt"):
        make_request(
            "orbit-scheduling-v0",
            [TeamSpec.parse(f"greedy,phobos_grunt=sb3:{path}", trust=True)],
            [1],
        )


def test_a_matching_sb3_checkpoint_flies_its_agent(tmp_path):
    import gymnasium
    from stable_baselines3 import PPO

    import phobos  # noqa: F401 - registers the Gymnasium views

    path = tmp_path / "pg.zip"
    env = gymnasium.make("OrbitScheduling-v0", disable_env_checker=True)
    PPO("MultiInputPolicy", env, n_steps=8, batch_size=8, device="cpu").save(path)
    request = make_request(
        "orbit-scheduling-v0",
        [TeamSpec.parse(f"greedy,phobos_grunt=sb3:{path}", trust=True)],
        [1],
        make_config("orbit-scheduling-v0", horizon_steps=12),
    )
    (result,) = runner.evaluate(request, progress=False).results
    assert result.status == "ok", result.error


def test_unreachable_ray_address_fails_fast():
    with pytest.raises(ValueError, match="no Ray cluster reachable"):
        check_ray_address("127.0.0.1:1", timeout_s=1.0)
    with pytest.raises(ValueError, match="HOST:PORT"):
        check_ray_address("nonsense")


@pytest.mark.parametrize(
    "argv",
    [
        ["--policy", "nope", "--episodes", "2"],
        ["--policy", "greedy", "--episodes", "0"],
        ["--policy", "greedy", "--seeds", "1,b"],
        ["--policy", "greedy", "--seeds", ","],
        ["--policy", "greedy", "--episodes", "2", "--ray-address", "127.0.0.1:1"],
        ["--policy", "greedy", "--episodes", "2", "--env", "phobos-sampling-v0", "--oracle"],
        ["--policy", "greedy", "--episodes", "2", "--set", "horizon_stepz=3"],
        ["--policy", "greedy", "--episodes", "2", "--training-log", "/no/such.csv"],
    ],
)
def test_cli_rejects_bad_input_before_writing_anything(tmp_path, no_episodes, capsys, argv):
    out = tmp_path / "out"
    assert main(["evaluate", *argv, "--out", str(out), "--no-progress"]) == 2
    assert "phobos evaluate: error:" in capsys.readouterr().err
    assert not out.exists()


def test_an_rllib_module_for_another_environment_is_refused(tmp_path, no_episodes):
    import gymnasium
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
        DefaultPPOTorchRLModule,
    )
    from ray.rllib.core.rl_module.rl_module import RLModule, RLModuleSpec

    from phobos.agents.loaders import RLlibPolicy

    box = gymnasium.spaces.Box(-1.0, 1.0, (4,))
    module = RLModuleSpec(
        module_class=DefaultPPOTorchRLModule,
        observation_space=box,
        action_space=gymnasium.spaces.Discrete(2),
        model_config={"fcnet_hiddens": [8]},
    ).build()
    module.save_to_path(tmp_path / "module")
    with pytest.raises(ValueError, match="does not match yinghuo1"):
        spec = TeamSpec.parse(f"greedy,yinghuo1=rllib:{tmp_path / 'module'}", trust=True)
        make_request("orbit-scheduling-v0", [spec], [1])
    # The loader's policy itself acts: the module's greedy action.
    policy = RLlibPolicy(RLModule.from_checkpoint(tmp_path / "module"))
    assert policy.act(box.sample()) in (0, 1)


def _phobos(*argv, cwd):
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "phobos.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["--policy", "greedy", "--oracle", "--oracle-seconds", "-1"], "--oracle-seconds"),
        (["--policy", "greedy", "--oracle", "--oracle-seconds", "0"], "--oracle-seconds"),
        (["--policy", "greedy", "--oracle", "--oracle-seconds", "nan"], "--oracle-seconds"),
        (["--policy", "planner", "--oracle-workers", "0"], "--oracle-workers"),
        (["--policy", "planner", "--env", "phobos-sampling-v0"], "planner"),
        (["--policy", "planner,yinghuo1=random"], "planner flies every agent"),
        (["--policy", "greedy", "--env", "phobos-sampling-v0", "--oracle"], "--oracle"),
        (["--policy", "greedy", "--seeds=-3,1", "--oracle"], "seed -3"),
        (["--policy", "planner", "--set", "energy_violation_penalty=-1"], "energy_violation"),
    ],
)
def test_cli_oracle_and_planner_bad_input_exits_2_naming_the_culprit(tmp_path, argv, culprit):
    out = tmp_path / "out"
    episodes = [] if any(a.startswith("--seeds") for a in argv) else ["--episodes", "2"]
    done = _phobos("evaluate", *argv, *episodes, "--out", str(out), "--no-progress", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phobos evaluate: error:"), done.stderr
    assert culprit in lines[0] and "Traceback" not in done.stderr
    assert not out.exists()
