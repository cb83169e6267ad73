"""Fixtures of the demo tests: a whole demo (world thread, agent processes, dashboard)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from phobos.demo.launcher import Demo, DemoOptions
from phobos.live.world import WorldSettings


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)  # polling interval; the deadline bounds the wait
    return value


class RunningDemo:
    """A :class:`Demo` whose world runs in a thread; :meth:`finish` joins it."""

    def __init__(self, demo: Demo, **bounds: Any) -> None:
        self.demo = demo
        self.result: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, kwargs=bounds, daemon=True)
        self.thread.start()

    def _run(self, **bounds: Any) -> None:
        try:
            self.result["stats"] = self.demo.run(**bounds)
        except BaseException as exc:  # reported by finish()
            self.result["error"] = exc

    def finish(self, timeout: float) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the demo did not finish in time"
        if "error" in self.result:
            raise self.result["error"]
        return self.result["stats"]


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[Callable[..., RunningDemo]]:
    started: list[RunningDemo] = []

    def start(
        settings: WorldSettings,
        config: Any = None,
        env_id: str = "orbit-scheduling-v0",
        policy: str | None = "greedy",
        local_agents: tuple[str, ...] | None = None,
        **bounds,
    ) -> RunningDemo:
        options = DemoOptions(
            env_id=env_id, policy=policy, run_dir=tmp_path / "run", local_agents=local_agents
        )
        running = RunningDemo(Demo(options, settings, config), **bounds)
        started.append(running)
        return running

    yield start
    for running in started:
        running.demo.stop()
        running.thread.join(10)
        running.demo.close()
