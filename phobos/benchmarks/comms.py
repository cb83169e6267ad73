"""Messaging benchmark: this layer beside raw pyzmq DEALER/ROUTER, in one run.

For each transport (``inproc``, ``ipc``, ``tcp`` on 127.0.0.1, and ``tcp+curve``) and each
stack it measures, with 64-byte payloads:

- round-trip latency, p50 and p99: the server (ROUTER, in this process) sends a ping, the
  client (DEALER) answers, the server times send-to-receive;
- one-way throughput: the client sends as fast as it can, the server counts what it receives
  per second from the first arrival to the end-of-stream marker.

The client runs in a spawned process over ``ipc://`` and ``tcp://``, as agents do, and in a
thread over ``inproc://``, which needs one context; there the two ends share a GIL.

The two stacks do the same work apart from this layer's: raw pyzmq sends the 64 payload bytes
with single-frame ``send``/``recv`` (the ROUTER's identity frame apart) and blocking receives
under a socket timeout; this layer builds a :class:`~phobos.comms.message.Message` around them,
encodes and decodes it on both sides, checks the sender, and receives with a timeout.

Targets:
    - Round-trip p50 through this layer at most 1.5x raw pyzmq's on the same transport.
    - At least 100,000 messages/s one way over ``ipc://``, encoding and decoding included.

Benchmarks are not tests: CI checks that :func:`run` runs, not how fast.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import zmq

from phobos.benchmarks.targets import Target, table
from phobos.comms.message import Message
from phobos.comms.security import CurveAuthenticator, KeyPair, configure_curve
from phobos.comms.transport import TransportError
from phobos.comms.zmq_transport import ZmqClient, ZmqServer

log = logging.getLogger(__name__)

TRANSPORTS = ("inproc", "ipc", "tcp", "tcp+curve")
"""Transports measured, in report order."""

PAYLOAD = bytes(range(64))
_CLIENT = "client"
_CLIENT_ID = _CLIENT.encode()
_SERVER = "server"
_STOP = b""  # raw stacks: an empty frame ends the echo or the stream
_TIMEOUT = 5.0  # seconds any single wait may take before the case is declared broken


@dataclass(frozen=True)
class _Case:
    """One transport's set-up: where the server binds, its context and the CURVE keys."""

    transport: str
    context: zmq.Context
    address: str
    server_keys: KeyPair | None
    client_keys: KeyPair | None


def run(seconds_per_case: float) -> list[dict]:
    """Measure every transport with both stacks; return one row per (transport, stack).

    Args:
        seconds_per_case: Seconds spent on each measurement (latency and throughput are
            separate measurements of this length each).

    Returns:
        Rows with keys ``transport``, ``stack`` (``"pyzmq"`` or ``"phobos"``),
        ``payload_bytes``, ``round_trips``, ``rtt_p50_us``, ``rtt_p99_us``,
        ``one_way_msgs_per_s`` and, for ``"phobos"`` rows, ``p50_vs_pyzmq`` (ratio of p50s).

    """
    rows = []
    for transport in TRANSPORTS:
        raw = _measure(transport, "pyzmq", seconds_per_case)
        ours = _measure(transport, "phobos", seconds_per_case)
        ours["p50_vs_pyzmq"] = round(ours["rtt_p50_us"] / raw["rtt_p50_us"], 2)
        rows += [raw, ours]
    return rows


def format_markdown(rows: list[dict]) -> str:
    """Render :func:`run`'s rows as a Markdown table."""
    lines = [
        "| transport | stack | RTT p50 (us) | RTT p99 (us) | p50 vs pyzmq | one way (msg/s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = row.get("p50_vs_pyzmq")
        lines.append(
            f"| {row['transport']} | {row['stack']} | {row['rtt_p50_us']:.1f} | "
            f"{row['rtt_p99_us']:.1f} | {'' if ratio is None else f'{ratio:.2f}x'} | "
            f"{row['one_way_msgs_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def targets(rows: list[dict]) -> list[Target]:
    """:func:`run`'s rows against the suite's targets (docs/benchmarks.md)."""
    ours = [row for row in rows if row["stack"] == "phobos"]
    found = [
        Target(
            f"{row['transport']}: round trip p50 / raw pyzmq",
            "<= 1.5x",
            f"{row['p50_vs_pyzmq']:.2f}x",
            row["p50_vs_pyzmq"] <= 1.5,
        )
        for row in ours
    ]
    ipc = next((row for row in ours if row["transport"] == "ipc"), None)
    found.append(
        Target(
            "ipc: one way with encoding, messages/s",
            ">= 100,000",
            "-" if ipc is None else f"{ipc['one_way_msgs_per_s']:,.0f}",
            None if ipc is None else ipc["one_way_msgs_per_s"] >= 100_000,
        )
    )
    return found


def _measure(transport: str, stack: str, seconds: float) -> dict:
    with _case(transport) as case:
        samples = _latency(case, stack, seconds)
    with _case(transport) as case:
        rate = _throughput(case, stack, seconds)
    samples.sort()
    return {
        "transport": transport,
        "stack": stack,
        "payload_bytes": len(PAYLOAD),
        "round_trips": len(samples),
        "rtt_p50_us": round(samples[len(samples) // 2] / 1000, 1),
        "rtt_p99_us": round(samples[min(len(samples) - 1, len(samples) * 99 // 100)] / 1000, 1),
        "one_way_msgs_per_s": round(rate),
    }


@contextmanager
def _case(transport: str) -> Iterator[_Case]:
    context = zmq.Context()
    folder = tempfile.mkdtemp(prefix="phobos-bench-")
    auth = None
    try:
        server_keys = client_keys = None
        if transport == "inproc":
            address = "inproc://bench"
        elif transport == "ipc":
            address = f"ipc://{folder}/bench.sock"
        else:
            address = "tcp://127.0.0.1:*"
        if transport == "tcp+curve":
            server_keys, client_keys = KeyPair(*zmq.curve_keypair()), KeyPair(*zmq.curve_keypair())
            auth = CurveAuthenticator(context, {_CLIENT: client_keys.public}).start()
        yield _Case(transport, context, address, server_keys, client_keys)
    finally:
        if auth is not None:
            auth.stop()
        context.destroy(linger=0)
        shutil.rmtree(folder, ignore_errors=True)


# -- the server side, in this process ----------------------------------------------------------


class _RawServer:
    """Raw pyzmq ROUTER with the same three operations as the layer's server."""

    def __init__(self, case: _Case) -> None:
        self.router = case.context.socket(zmq.ROUTER)
        self.router.linger = 0
        self.router.rcvtimeo = self.router.sndtimeo = int(_TIMEOUT * 1000)
        if case.server_keys is not None:
            configure_curve(self.router, case.server_keys)
        self.router.bind(case.address)
        self.address = self.router.last_endpoint.decode()

    def ping(self, seq: int) -> None:
        self.router.send(_CLIENT_ID, zmq.SNDMORE)
        self.router.send(PAYLOAD)

    def receive(self) -> bool:
        """Receive one message; False for the end-of-stream marker."""
        self.router.recv()
        return self.router.recv() != _STOP


class _LayerServer:
    """The layer's server, doing what an application would: build, encode, decode, check."""

    def __init__(self, case: _Case) -> None:
        self.server = ZmqServer(
            case.address,
            _SERVER,
            context=case.context,
            curve=case.server_keys,
            send_timeout=_TIMEOUT,
        )
        self.address = self.server.address

    def ping(self, seq: int) -> None:
        self.server.send(Message(_SERVER, _CLIENT, "ping", 0.0, seq, PAYLOAD))

    def receive(self) -> bool:
        message = self.server.recv(_TIMEOUT)
        if message is None:
            raise TimeoutError("benchmark server waited too long for its peer")
        return message.kind != "stop"


def _latency(case: _Case, stack: str, seconds: float) -> list[int]:
    server = _RawServer(case) if stack == "pyzmq" else _LayerServer(case)
    with _peer(case, stack, "echo", server.address, seconds):
        server.receive()  # the peer's hello: from here on the ROUTER can address it
        for seq in range(200):  # warm-up
            server.ping(seq)
            server.receive()
        clock = time.perf_counter_ns
        samples = []
        end = clock() + int(seconds * 1e9)
        seq = 0
        while True:
            start = clock()
            server.ping(seq)
            server.receive()
            now = clock()
            samples.append(now - start)
            seq += 1
            if now > end:
                break
        _send_stop(server, stack)
    return samples


def _send_stop(server: _RawServer | _LayerServer, stack: str) -> None:
    if isinstance(server, _RawServer):
        server.router.send(_CLIENT_ID, zmq.SNDMORE)
        server.router.send(_STOP)
    else:
        server.server.send(Message(_SERVER, _CLIENT, "stop", 0.0, 0))


def _throughput(case: _Case, stack: str, seconds: float) -> float:
    server = _RawServer(case) if stack == "pyzmq" else _LayerServer(case)
    with _peer(case, stack, "flood", server.address, seconds):
        server.receive()  # the clock starts at the first arrival, once the connection is up
        start = time.perf_counter()
        count = 0
        while server.receive():
            count += 1
        rate = count / (time.perf_counter() - start)
        # Sockets close with linger 0, which drops unsent messages: the client waits for this.
        server.ping(-1)
    return rate


# -- the client side: a thread for inproc, a process otherwise ---------------------------------


@contextmanager
def _peer(case: _Case, stack: str, mode: str, address: str, seconds: float) -> Iterator[None]:
    keys, server_key = (
        (case.client_keys, case.server_keys.public) if case.server_keys else (None, None)
    )
    if case.transport == "inproc":
        thread = threading.Thread(
            target=_client_main,
            args=(stack, mode, address, keys, server_key, seconds, case.context),
            daemon=True,
        )
        thread.start()
        try:
            yield
        finally:
            thread.join(_TIMEOUT)
        return
    # Its own process, as agents run, so that the two ends do not share a GIL. A plain
    # subprocess rather than multiprocessing: spawning would re-run the caller's __main__.
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, stack, mode, address, str(seconds)],
        stdin=subprocess.PIPE,
    )
    # Keys go through stdin, not argv, where any user could read them.
    keys_line = b"" if keys is None else b" ".join((keys.public, keys.secret, server_key))
    process.stdin.write(keys_line + b"\n")
    process.stdin.close()
    try:
        yield
    finally:
        try:
            process.wait(_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_TIMEOUT)


_CHILD = "import sys; from phobos.benchmarks.comms import _child; _child(sys.argv[1:])"


def _child(argv: list[str]) -> None:
    """Entry point of the client process: argv ``stack mode address seconds``, keys on stdin."""
    stack, mode, address, seconds = argv
    words = sys.stdin.buffer.readline().split()
    keys, server_key = (KeyPair(words[0], words[1]), words[2]) if words else (None, None)
    _client_main(stack, mode, address, keys, server_key, float(seconds))


def _client_main(
    stack: str,
    mode: str,
    address: str,
    keys: KeyPair | None,
    server_key: bytes | None,
    seconds: float,
    context: zmq.Context | None = None,
) -> None:
    """Run the DEALER end: ``"echo"`` answers pings until told to stop, ``"flood"`` streams."""
    own = context is None
    context = zmq.Context() if own else context
    try:
        if stack == "pyzmq":
            _raw_client(context, mode, address, keys, server_key, seconds)
        else:
            _layer_client(context, mode, address, keys, server_key, seconds)
    finally:
        if own:
            context.destroy(linger=0)


def _raw_client(
    context: zmq.Context,
    mode: str,
    address: str,
    keys: KeyPair | None,
    server_key: bytes | None,
    seconds: float,
) -> None:
    dealer = context.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.rcvtimeo = dealer.sndtimeo = int(_TIMEOUT * 1000)
    if keys is not None:
        configure_curve(dealer, keys, server_key)
    dealer.routing_id = _CLIENT_ID
    dealer.connect(address)
    try:
        if mode == "echo":
            dealer.send(PAYLOAD)
            while (body := dealer.recv()) != _STOP:
                dealer.send(body)
        else:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                for _ in range(100):  # read the clock once per hundred sends
                    dealer.send(PAYLOAD)
            dealer.send(_STOP)
            dealer.recv()  # the server's acknowledgement: everything sent has arrived
    except zmq.Again:
        log.warning("raw benchmark client: the server stopped answering")
    finally:
        dealer.close(linger=0)


def _layer_client(
    context: zmq.Context,
    mode: str,
    address: str,
    keys: KeyPair | None,
    server_key: bytes | None,
    seconds: float,
) -> None:
    client = ZmqClient(
        address,
        _CLIENT,
        context=context,
        curve=keys,
        server_key=server_key,
        send_timeout=_TIMEOUT,
    )
    try:
        if mode == "echo":
            client.send(Message(_CLIENT, _SERVER, "hello", 0.0, 0))
            while (ping := client.recv(_TIMEOUT)) is not None and ping.kind != "stop":
                client.send(Message(_CLIENT, _SERVER, "pong", ping.send_time, ping.seq, PAYLOAD))
        else:
            end = time.perf_counter() + seconds
            seq = 0
            while time.perf_counter() < end:
                for _ in range(100):
                    client.send(Message(_CLIENT, _SERVER, "data", 0.0, seq, PAYLOAD))
                    seq += 1
            client.send(Message(_CLIENT, _SERVER, "stop", 0.0, seq))
            if client.recv(_TIMEOUT) is None:  # everything sent has arrived
                log.warning("benchmark client: no acknowledgement from the server")
    except TransportError as exc:
        log.warning("benchmark client: %s", exc)
    finally:
        client.close()


def markdown(seconds: float) -> str:
    """Measure and return the section for ``docs/benchmarks.md``."""
    rows = run(seconds_per_case=seconds)
    return f"{format_markdown(rows)}\n\n{table(targets(rows))}"
