"""One flag for output folders, ``--out``, on every command that writes one; ``--force`` to
overwrite; the demo's old ``--run-dir`` still works with a one-line note."""

from __future__ import annotations

import json

import pytest

from phobos.training.config import TrainConfig
from phobos.training.run_dir import RunDir
from tests.test_cli_errors import _phobos, _refused


@pytest.mark.parametrize("command", ["evaluate", "train", "demo"])
def test_every_folder_writing_command_takes_out(tmp_path, command):
    done = _phobos(command, "--help", cwd=tmp_path)
    assert done.returncode == 0
    assert "--out" in done.stdout and "--run-dir" not in done.stdout


def test_demo_run_dir_is_a_working_alias_of_out(tmp_path):
    done = _phobos(
        "demo", "--run-dir", "old", "--steps", "1", "--no-dashboard", "--policy", "greedy",
        "--speed", "0", cwd=tmp_path, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "deprecated" in line]
    assert notes == ["phobos demo: note: --run-dir is deprecated; use --out"]
    assert (tmp_path / "old" / "keys" / "world.key").exists()
    assert "run folder old" in done.stdout


def test_train_refuses_a_run_folder_unless_forced(tmp_path):
    folder = RunDir(tmp_path / "run", TrainConfig())
    folder.start(resume=False)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    folder.checkpoint_path(1).mkdir(parents=True)
    done = _phobos("train", "--out", "run", "--set", "total_env_steps=1", cwd=tmp_path)
    _refused(done, "train", "--force")
    both = _phobos("train", "--out", "run", "--resume", "--force", cwd=tmp_path)
    _refused(both, "train", "pick one")
    RunDir(tmp_path / "run", TrainConfig(seed=5)).start(resume=False, force=True)
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["seed"] == 5
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
