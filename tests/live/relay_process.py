"""Start and stop the DTN relay process for the live tests (no sleeps: reads its first line)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path


class RelayProcess:
    """``python -m phobos.live.dtn.relay`` on a loopback port; restartable on the same journal.

    Args:
        keys: The key folder.
        journal: The custody journal.
        port: The port; 0 picks a free one the first time (restarts reuse it).

    """

    def __init__(self, keys: Path, journal: Path, log: Path | None = None) -> None:
        self.keys, self.journal, self.log = keys, journal, log
        self.address = "tcp://127.0.0.1:*"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> RelayProcess:
        """Start it and wait for its ``relay <address>`` line."""
        command = [
            sys.executable,
            "-m",
            "phobos.live.dtn.relay",
            "--keys",
            str(self.keys),
            "--journal",
            str(self.journal),
            "--address",
            self.address,
        ]
        stderr = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, env=dict(os.environ)
        )
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()))
        reader.start()
        reader.join(timeout)
        if not line or not line[0].startswith(b"relay "):
            self.kill()
            raise RuntimeError(f"the relay did not start: {line!r}")
        self.address = line[0].split()[1].decode()
        return self

    def kill(self) -> None:
        """SIGKILL it and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM it (it exits 0) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
