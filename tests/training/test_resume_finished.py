"""``phobos train --resume`` of a run that already reached its budget: says so, trains nothing."""

from __future__ import annotations

import json
import subprocess
import sys

from phobos.training.config import TrainConfig
from phobos.training.run_dir import RunDir


def test_resuming_a_finished_run_says_so_and_exits_0(tmp_path):
    config = TrainConfig()
    folder = RunDir(tmp_path / "run", config)
    folder.start(resume=False)
    steps = config.total_env_steps
    record = {"iteration": 3, "env_steps": steps, "elapsed_s": 1.0}
    for where in (folder.checkpoint_path(3), folder.policy):
        where.mkdir(parents=True)
        (where / "phobos.json").write_text(json.dumps(record))
    done = subprocess.run(
        [sys.executable, "-m", "phobos.cli", "train", "--out", "run", "--resume"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "already finished" in done.stdout and f"{steps:,} of {steps:,}" in done.stdout
    assert "Traceback" not in done.stderr and "Ray" not in done.stderr
