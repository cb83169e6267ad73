"""Real processes for the relay fault tests: a relay, agent processes, and a probe of counters.

Every process started here is killed at teardown if it is still running, stopped or not. Waits
poll with deadlines; nothing relies on a sleep being long enough.
"""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from phobos.comms.message import Message
from phobos.comms.reliable import STATS
from phobos.comms.zmq_transport import ZmqClient

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT = 0.1
LOST_AFTER = 3
RETRY = 0.1
RELAY_SETTINGS = (
    f"reliable.heartbeat_interval={HEARTBEAT}",
    f"reliable.lost_after={LOST_AFTER}",
    f"reliable.retry.initial={RETRY}",
    f"reliable.retry.max_interval={4 * RETRY}",
)
AGENT_SETTINGS = (
    f"--heartbeat={HEARTBEAT}",
    f"--lost-after={LOST_AFTER}",
    f"--retry={RETRY}",
)


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)  # polling interval; the deadline, not the sleep, bounds the wait


class Processes:
    """Starts Python processes from the repository root; kills leftovers in :meth:`cleanup`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, label: str, *args: str, stdout: int = subprocess.DEVNULL) -> subprocess.Popen:
        """Run ``python *args``; its stderr goes to a file that :meth:`logs` shows."""
        err = self.folder / f"{label}-{len(self.started)}.stderr"
        with open(err, "wb") as sink:
            process = subprocess.Popen(
                [sys.executable, *args], cwd=REPO, stdout=stdout, stderr=sink
            )
        self.started.append((label, process, err))
        return process

    def relay(
        self, address: str, journal: Path, *settings: str, keys: Path | None = None
    ) -> subprocess.Popen:
        """Start ``python -m phobos.comms.relay``; its first stdout line names its address."""
        sets = [arg for item in (*RELAY_SETTINGS, *settings) for arg in ("--set", item)]
        sets += ["--keys", str(keys)] if keys is not None else ["--insecure"]
        return self.start(
            "relay",
            "-m",
            "phobos.comms.relay",
            "--address",
            address,
            "--journal",
            str(journal),
            *sets,
            stdout=subprocess.PIPE,
        )

    def agent(self, role: str, name: str, address: str, *options: str) -> subprocess.Popen:
        """Start ``python -m tests.comms.relay_agents role``."""
        return self.start(
            f"{role}-{name}",
            "-m",
            "tests.comms.relay_agents",
            role,
            "--address",
            address,
            "--name",
            name,
            *AGENT_SETTINGS,
            *options,
        )

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        """SIGKILL, and reap."""
        process.kill()
        process.wait(10)

    @staticmethod
    def terminate(process: subprocess.Popen, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` (SIGTERM); return the exit status once it has exited."""
        process.send_signal(signum)
        return process.wait(20)

    def logs(self) -> str:
        """The tail of every process's stderr, for failure messages."""
        parts = []
        for label, process, err in self.started:
            tail = err.read_text(errors="replace")[-3000:] if err.exists() else ""
            parts.append(f"--- {label} (pid {process.pid}, rc {process.poll()}):\n{tail}")
        return "\n".join(parts)

    def cleanup(self) -> None:
        """Kill every process still running (a SIGSTOPped one too) and reap it."""
        for _, process, _ in self.started:
            if process.poll() is None:
                process.kill()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                pass
            if process.stdout is not None:
                process.stdout.close()


def relay_address(process: subprocess.Popen, timeout: float = 30.0) -> str:
    """The address a relay process prints once it is bound."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"relay printed nothing within {timeout} s")
    line = process.stdout.readline().decode()
    if " listening on " not in line:
        raise AssertionError(f"unexpected relay output {line!r} (rc {process.poll()})")
    return line.rsplit(" ", 1)[1].strip()


class Probe:
    """Asks a relay for its counters over its own DEALER (a probe is not a peer)."""

    def __init__(self, context: zmq.Context, address: str, **options: Any) -> None:
        self.client = ZmqClient(address, "probe", context=context, send_timeout=0.5, **options)
        self._asked = 0

    def stats(self, timeout: float = 1.0) -> dict[str, int] | None:
        """The relay's counters, or None if no answer comes within ``timeout``."""
        self._asked += 1
        try:
            self.client.send(Message("probe", "relay", STATS, 0.0, self._asked))
        except ConnectionError:
            return None
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self.client.recv(remaining)
            # The seq tells this answer from a late one to an earlier question.
            if reply is not None and reply.kind == STATS and reply.seq == self._asked:
                return reply.payload
        return None

    def wait(
        self, condition: Callable[[dict[str, int]], bool], timeout: float = 30.0, what: str = ""
    ) -> dict[str, int]:
        """Poll the counters until ``condition`` holds; return them."""
        last: list[dict[str, int] | None] = [None]

        def check() -> dict[str, int] | None:
            last[0] = self.stats(0.5)
            return last[0] if last[0] is not None and condition(last[0]) else None

        try:
            return eventually(check, timeout, what or "relay counters")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last counters {last[0]}") from None

    def close(self) -> None:
        """Close the DEALER (linger 0)."""
        self.client.close()
