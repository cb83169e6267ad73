"""A sampling worker killed mid-training is restarted by RLlib, and the run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.training.conftest import TINY_ORBIT, env_runner_pids, overrides


def test_a_killed_env_runner_is_restarted_and_training_completes(run_folder):
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    settings = [*TINY_ORBIT, "total_env_steps=960", "num_env_runners=1"]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phobos.cli",
            "train",
            "--out",
            str(run_folder),
            *overrides(settings),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    killed = []
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("iter    2") and not killed:  # the runner has sampled twice
                killed = env_runner_pids(process.pid, b"MultiAgentEnvRunner")
                assert killed, "no env runner process found in the training session"
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
        assert process.wait(timeout=240) == 0, "".join(lines)[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    if not killed:
        pytest.fail("training finished before an env runner could be killed")
    # Iterations while the runner restarts sample nothing; the restarted one samples the rest.
    assert any("| 960/960 env steps |" in line for line in lines), "".join(lines)[-3000:]
    assert (run_folder / "policy" / "phobos.json").exists()
