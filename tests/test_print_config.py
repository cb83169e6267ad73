"""``--print-config``: the resolved config as YAML that ``--config`` reads back; nothing runs."""

from __future__ import annotations

import pytest

from phobos.config import dump, load
from phobos.envs import make_config
from phobos.envs.registry import registered
from phobos.training.config import TrainConfig
from tests.test_cli_errors import _phobos, _refused

COMMANDS = {
    "run": ["run", "--env", "phobos-sampling-v0", "--seed", "3"],
    "evaluate": ["evaluate", "--policy", "greedy", "--seeds", "0-2", "--out", "report"],
    "demo": ["demo", "--env", "phobos-sampling-v0"],
    "train": ["train", "--out", "trained"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_print_config_round_trips_and_runs_nothing(tmp_path, command):
    argv = COMMANDS[command]
    key = "env_config.horizon_steps" if command == "train" else "horizon_steps"
    first = _phobos(*argv, "--set", f"{key}=7", "--print-config", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert first.stdout.startswith(f"# phobos {command} ")
    assert "horizon_steps: 7" in first.stdout
    (tmp_path / "printed.yaml").write_text(first.stdout)
    again = _phobos(*argv, "--config", "printed.yaml", "--print-config", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    # Nothing ran: no report, run folder or demo folder was made.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["printed.yaml"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_print_config_still_refuses_a_bad_override(tmp_path, command):
    key = "env_config.horizon_steps" if command == "train" else "horizon_steps"  # nested
    done = _phobos(*COMMANDS[command], "--set", f"{key}=many", "--print-config", cwd=tmp_path)
    _refused(done, command, "horizon_steps")
    assert done.stdout == ""


@pytest.mark.parametrize("env_id", registered())
def test_dump_loads_back_to_the_same_config(tmp_path, env_id):
    for config in (make_config(env_id), TrainConfig(env=env_id)):
        (tmp_path / "c.yaml").write_text(dump(config, ["a comment"]))
        assert load(type(config), tmp_path / "c.yaml") == config


def test_print_config_of_a_resume_shows_the_runs_config_with_its_overrides(tmp_path):
    from phobos.training.run_dir import RunDir

    RunDir(tmp_path / "run", TrainConfig(seed=7)).start(resume=False)
    done = _phobos(
        "train", "--out", "run", "--resume", "--set", "total_env_steps=999", "--print-config",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# the config phobos train --out run --resume continues with")
    assert "seed: 7" in done.stdout and "total_env_steps: 999" in done.stdout
    assert not (tmp_path / "run" / "checkpoints").exists()
