"""Helpers of the attack tests: a world process, honest agent processes, raw CURVE clients.

Everything runs on 127.0.0.1 in real processes; every wait has a deadline.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from phobos.comms.codec import DecodeError, decode, encode
from phobos.comms.message import Message
from phobos.comms.security import load_keys
from phobos.live import protocol as p

REPO = Path(__file__).resolve().parents[2]


class WorldProcess:
    """``tests.live.world_process`` in a subprocess; :meth:`finish` collects its counters."""

    def __init__(self, keys: Path, seconds: float, speed: float = 0.0, timeout: float = 0.5):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.live.world_process", str(keys), str(seconds)]
            + [str(speed), str(timeout)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self._line(30.0)
        assert line.startswith("address "), f"world did not start: {line!r}"
        self.address = line.split()[1]

    def _line(self, timeout: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if ready else ""

    def rss_kib(self) -> int:
        """The world process's resident memory now."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def finish(self, timeout: float) -> tuple[int, dict[str, Any], str]:
        """Wait for the exit; return its code, its counters and its standard error."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return self.proc.returncode, json.loads(lines[-1]) if lines else {}, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def honest_agents(world: str, keys: Path, names) -> list[subprocess.Popen]:
    """``phobos agent`` processes flying the greedy team."""
    return [
        subprocess.Popen(
            [sys.executable, "-m", "phobos.cli", "agent", "--id", name, "--world", world]
            + ["--keys", str(keys), "--policy", "greedy", "--connect-timeout", "20"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in names
    ]


def stop(processes) -> None:
    """Kill what is still running and reap it (bounded)."""
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


class Raw:
    """A hand-driven CURVE DEALER with key ``key`` that says it is ``name``."""

    def __init__(
        self,
        context: zmq.Context,
        address: str,
        keys: Path,
        name: str,
        key: str | None = None,
        routing_id: bytes | None = None,
    ) -> None:
        own = load_keys(keys, key or name)
        self.name = name
        self.sock = context.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.sndhwm = 100_000
        if routing_id is not None:
            self.sock.routing_id = routing_id
        self.sock.curve_secretkey = own.secret
        self.sock.curve_publickey = own.public
        self.sock.curve_serverkey = load_keys(keys, "world").public
        self.sock.connect(address)

    def send(self, kind: str, payload: Any = None, seq: int = 0, sender: str | None = None):
        frame = encode(Message(sender or self.name, "world", kind, 0.0, seq, payload))
        self.sock.send(frame)

    def recv(self, timeout: float = 5.0, kinds=None) -> Message | None:
        """The next message of ``kinds`` within ``timeout`` seconds (and its size), or None."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and self.sock.poll(int(left * 1000) + 1):
            frame = self.sock.recv()
            try:
                message = decode(frame)
            except DecodeError:
                continue
            self.last_size = len(frame)
            if kinds is None or message.kind in kinds:
                return message
        return None

    def hello(self, incarnation: int = 1, policy: str = "raw") -> Message | None:
        self.send(p.HELLO, {"incarnation": incarnation, "pid": 0, "policy": policy})
        return self.recv(kinds={p.WELCOME, p.REFUSED})

    def close(self) -> None:
        self.sock.close(linger=0)
