"""The live system's supervisor: starts one process per agent and restarts one that dies.

One thread per agent waits on its process (``Popen.wait``: no polling, no sleep as
synchronisation) and, when it exits while the demo runs, starts it again after a backoff that
doubles up to ``backoff_max`` (and resets once a run lasted ``stable_after`` seconds). The new
process uses the same id and keys and announces itself to the world with a new incarnation, so
the world counts a restart and resumes sending it observations. Exit codes 0 (the world ended
the run) and 2 (refused: unknown id, bad key or policy) are final and not restarted.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

FINAL_EXIT_CODES = (0, 2)
"""Exit codes after which an agent is not restarted."""


@dataclass
class ProcessRecord:
    """One supervised agent: its current process and counters."""

    starts: int = 0
    restarts: int = 0
    last_exit: int | None = None
    process: subprocess.Popen | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain data for the dashboard."""
        running = self.process is not None and self.process.poll() is None
        return {
            "starts": self.starts,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "pid": self.process.pid if self.process is not None else None,
            "running": running,
        }


class Supervisor:
    """Runs and restarts agent processes.

    Args:
        commands: ``{agent id: argv}`` of each agent's process.
        log_dir: Folder for each agent's output (``<id>.log``); None discards it.
        backoff_initial: Seconds before the first restart.
        backoff_max: Longest wait between restarts.
        stable_after: A run this long resets the backoff.
        on_event: Called with ``(agent, event)`` on starts, exits and restarts.

    """

    def __init__(
        self,
        commands: Mapping[str, Sequence[str]],
        *,
        log_dir: str | Path | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        stable_after: float = 10.0,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self.commands = {name: list(argv) for name, argv in commands.items()}
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.on_event = on_event or (lambda agent, event: None)
        self.records = {name: ProcessRecord() for name in self.commands}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> Supervisor:
        """Start every agent process; return self."""
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in self.commands:
            thread = threading.Thread(target=self._watch, args=(name,), daemon=True)
            thread.name = f"supervise-{name}"
            thread.start()
            self._threads.append(thread)
        return self

    def process(self, name: str) -> subprocess.Popen | None:
        """The current process of agent ``name`` (None before its first start)."""
        with self._lock:
            return self.records[name].process

    def status(self) -> dict[str, dict[str, object]]:
        """Counters of every agent."""
        with self._lock:
            return {name: record.as_dict() for name, record in self.records.items()}

    def wait_exited(self, names: Sequence[str], timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the processes of ``names`` to exit by themselves."""
        deadline = time.monotonic() + timeout
        for name in names:
            process = self.process(name) if name in self.records else None
            if process is None:
                continue
            try:
                process.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                return False
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Stop restarting; terminate the processes (kill after ``timeout``); join threads."""
        self._stop.set()
        with self._lock:
            processes = [r.process for r in self.records.values() if r.process is not None]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in processes:
            try:
                process.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for thread in self._threads:
            thread.join(timeout)

    def _watch(self, name: str) -> None:
        record = self.records[name]
        delay = self.backoff_initial
        while not self._stop.is_set():
            started = time.monotonic()
            sink = self._sink(name)
            try:
                with self._lock:
                    if self._stop.is_set():
                        return
                    process = subprocess.Popen(
                        self.commands[name], stdout=sink, stderr=subprocess.STDOUT
                    )
                    record.process = process
                    record.starts += 1
            finally:
                if sink is not subprocess.DEVNULL:
                    sink.close()
            self.on_event(name, "started" if record.starts == 1 else "restarted")
            code = process.wait()
            record.last_exit = code
            if self._stop.is_set():
                return
            if code in FINAL_EXIT_CODES:
                log.info("supervisor: agent %s exited with code %d; not restarting", name, code)
                self.on_event(name, f"exited ({code})")
                return
            if time.monotonic() - started >= self.stable_after:
                delay = self.backoff_initial
            log.warning(
                "supervisor: agent %s died (exit code %d); restarting in %.1f s", name, code, delay
            )
            self.on_event(name, f"died ({code})")
            if self._stop.wait(delay):
                return
            record.restarts += 1
            delay = min(delay * 2, self.backoff_max)

    def _sink(self, name: str) -> IO[bytes] | int:
        if self.log_dir is None:
            return subprocess.DEVNULL
        return open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed after Popen
