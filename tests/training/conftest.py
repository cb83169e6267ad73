from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A few hundred env steps on a 24-step orbit day: enough for PPO to run its whole loop.
TINY_ORBIT = [
    "env=orbit-scheduling-v0",
    "env_config={horizon_steps: 24}",
    "train_batch_size=96",
    "minibatch_size=48",
    "num_epochs=1",
    "hidden=[16]",
]


def phobos(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run the ``phobos`` CLI of this interpreter's environment."""
    env = kwargs.pop("env", None) or dict(
        os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0"
    )
    return subprocess.run(
        [sys.executable, "-m", "phobos.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=kwargs.pop("timeout", 240),
        **kwargs,
    )


def overrides(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray for the module's tests (left running if something else started it)."""
    import ray
    import torch

    from phobos.ray_cluster import init_ray

    torch.set_num_threads(1)
    started = init_ray(2)
    yield ray
    if started:
        ray.shutdown()


def env_runner_pids(session: int, runner_class: bytes) -> list[int]:
    """Processes of session ``session`` whose command line names ``runner_class``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != session:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ")
        except (OSError, ProcessLookupError):
            continue
        if runner_class in command:
            pids.append(int(entry))
    return pids
