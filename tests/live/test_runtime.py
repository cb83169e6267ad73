"""``phobos agent`` as a real process: retries with backoff, gives up, refuses bad input."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phobos.comms.security import generate_keys

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def phobos_agent(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "phobos.cli", "agent", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_unreachable_world_is_retried_with_backoff_then_given_up(tmp_path: Path) -> None:
    for name in ("world", "yinghuo1"):
        generate_keys(tmp_path, name)
    started = time.monotonic()
    result = phobos_agent(
        "--id",
        "yinghuo1",
        "--world",
        f"tcp://127.0.0.1:{free_port()}",
        "--keys",
        str(tmp_path),
        "--connect-timeout",
        "2",
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    retries = [line for line in result.stderr.splitlines() if "retrying" in line]
    assert len(retries) >= 2
    waits = [float(line.rsplit("up to ", 1)[1].split()[0]) for line in retries]
    assert waits[1] == 2 * waits[0]  # the backoff doubles (the last is cut at the deadline)
    assert "did not answer in 2.0 s" in result.stderr and "giving up" in result.stderr
    assert elapsed < 20


def test_missing_key_is_bad_input(tmp_path: Path) -> None:
    generate_keys(tmp_path, "world")
    result = phobos_agent(
        "--id", "yinghuo1", "--world", "tcp://127.0.0.1:1", "--keys", str(tmp_path)
    )
    assert result.returncode == 2
    assert "yinghuo1.key_secret" in result.stderr


def test_a_task_module_the_agent_was_not_told_to_trust_is_not_imported(tmp_path: Path) -> None:
    import sys

    from phobos.live.runtime import AgentRuntime

    for name in ("world", "yinghuo1"):
        generate_keys(tmp_path, name)
    runtime = AgentRuntime("yinghuo1", "tcp://127.0.0.1:1", tmp_path)
    module = "tests.live.never_imported_task"
    welcome = {"env": f"{module}:evil-v0", "config": {}}
    with pytest.raises(ValueError, match=f"not told to trust \\(--task-module {module}\\)"):
        runtime._welcome(welcome)
    assert module not in sys.modules
    trusting = AgentRuntime("yinghuo1", "tcp://127.0.0.1:1", tmp_path, task_modules=[module])
    with pytest.raises(ValueError, match="cannot import"):  # trusted: it is looked for
        trusting._welcome(welcome)
