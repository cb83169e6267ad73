from __future__ import annotations

from pathlib import Path

from phobos.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "orbit_scheduling.yaml"


def test_run_prints_a_readable_episode_summary(capsys):
    assert main(["run", "--config", str(CONFIG), "--set", "horizon_steps=48", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "orbit-scheduling-v0 | greedy team | seed 2 | team return" in out
    assert "light time" in out and "ground_bear_lakes" in out and "messages_delivered" in out


def test_run_refuses_unknown_keys_and_policies_with_exit_code_2(capsys):
    assert main(["run", "--set", "horizon=3"]) == 2
    assert "unknown key 'horizon'" in capsys.readouterr().err
    assert main(["run", "--policy", "clever", "--set", "horizon_steps=4"]) == 2
    assert "unknown policy 'clever'" in capsys.readouterr().err


def test_keys_command_creates_key_pairs(tmp_path, capsys):
    assert main(["keys", str(tmp_path), "world", "yinghuo1"]) == 0
    assert (tmp_path / "world.key").exists() and (tmp_path / "yinghuo1.key_secret").exists()
    assert "yinghuo1: public key" in capsys.readouterr().out


def test_run_flies_the_sampling_task_with_any_of_its_teams(capsys):
    for policy in ("cautious", "oracle"):
        argv = ["run", "--env", "phobos-sampling-v0", "--policy", policy, "--seed", "1"]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert f"phobos-sampling-v0 | {policy} team | seed 1" in out
        assert "sample_mass_g" in out and "phobos_grunt:" in out
