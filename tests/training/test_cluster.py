"""A real two-node Ray cluster on 127.0.0.1: ``phobos train --ray-address`` runs on it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.training.conftest import TINY_ORBIT, overrides, phobos

RAY = str(Path(sys.executable).with_name("ray"))


def _cluster_env() -> dict[str, str]:
    """Multi-node mode (Ray's Linux default): the single-node switch would refuse a 2nd node."""
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_nodes(address: str, count: int, deadline_s: float) -> int:
    """Poll the cluster's node table (a real query, not a sleep) until ``count`` are alive."""
    script = (
        "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    env = _cluster_env()
    deadline = time.monotonic() + deadline_s
    alive = 0
    while time.monotonic() < deadline:
        result = subprocess.run(
            [sys.executable, "-c", script, address],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if result.returncode == 0:
            alive = int(result.stdout.strip().splitlines()[-1])
            if alive >= count:
                return alive
    return alive


@pytest.fixture
def cluster():
    """``ray start --head`` and a second ``ray start`` joined to it, both blocking children."""
    # Short: Ray's Unix sockets live under it, and their paths are limited to 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = _cluster_env()
    common = ["--block", "--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
            *common,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    nodes = [head]
    try:
        deadline = time.monotonic() + 60
        while True:  # the head's GCS port answers once it can take a second node
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or head.poll() is not None:
                    pytest.fail("the Ray head did not start")
        nodes.append(
            subprocess.Popen(
                [RAY, "start", f"--address={address}", *common],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        )
        assert _wait_for_nodes(address, 2, deadline_s=90) == 2
        yield address
    finally:
        # Each node is its own process group (raylet, GCS, workers): kill it whole, at once,
        # rather than wait for a graceful drain of a throwaway cluster.
        for node in nodes:
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            node.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_training_runs_on_an_existing_two_node_cluster(cluster, tmp_path):
    folder = tmp_path / "run"
    command = ["train", "--out", str(folder), "--ray-address", cluster, "--num-env-runners", "1"]
    settings = overrides([*TINY_ORBIT, "total_env_steps=192"])
    result = phobos(*command, *settings, env=_cluster_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "exported" in result.stdout and "iter    2 |" in result.stdout
    assert (folder / "policy" / "phobos.json").exists()
