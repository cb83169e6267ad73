"""Messaging benchmark: this layer beside raw pyzmq DEALER/ROUTER, in one run.

For each transport (``inproc``, ``ipc``, ``tcp`` on 127.0.0.1, and ``tcp+curve``) and each
stack it measures, with 64-byte payloads:

- round-trip latency, p50 and p99: a client sends, an echo server in another thread sends it
  back, the client times send-to-receive;
- one-way throughput: a client thread sends as fast as it can, the server counts what it
  receives per second.

The two stacks do the same work apart from this layer's: raw pyzmq sends the 64 payload bytes
with single-frame ``send``/``recv`` (the ROUTER's identity frame apart) and blocking receives;
this layer builds a :class:`~phobos.comms.message.Message` around them, encodes and decodes
it on both sides, checks the sender, and receives with a timeout. Both ends of a case run in
one process (``inproc://`` requires it), so they share the GIL.

Targets:
    - Round-trip p50 through this layer at most 1.5x raw pyzmq's on the same transport.
    - At least 100,000 messages/s one way over ``ipc://``, encoding and decoding included.

Benchmarks are not tests: CI checks that :func:`run` runs, not how fast.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import zmq

from phobos.comms.message import Message
from phobos.comms.security import CurveAuthenticator, KeyPair, configure_curve
from phobos.comms.zmq_transport import ZmqClient, ZmqServer

TRANSPORTS = ("inproc", "ipc", "tcp", "tcp+curve")
"""Transports measured, in report order."""

PAYLOAD = bytes(range(64))
_CLIENT = "client"
_SERVER = "server"
_STOP = b""  # raw stacks: an empty frame ends the echo or the stream
_TIMEOUT = 5.0  # seconds any single wait may take before the case is declared broken


@dataclass(frozen=True)
class _Case:
    """One transport's sockets: addresses, context and keys."""

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


def _measure(transport: str, stack: str, seconds: float) -> dict:
    latency = _raw_latency if stack == "pyzmq" else _layer_latency
    throughput = _raw_throughput if stack == "pyzmq" else _layer_throughput
    with _case(transport) as case:
        samples = latency(case, seconds)
    with _case(transport) as case:
        rate = throughput(case, seconds)
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
        yield _Case(context, address, server_keys, client_keys)
    finally:
        if auth is not None:
            auth.stop()
        context.destroy(linger=0)
        shutil.rmtree(folder, ignore_errors=True)


# -- raw pyzmq ---------------------------------------------------------------------------------


def _raw_pair(case: _Case) -> tuple[zmq.Socket, zmq.Socket]:
    router = case.context.socket(zmq.ROUTER)
    dealer = case.context.socket(zmq.DEALER)
    for sock in (router, dealer):
        sock.linger = 0
        sock.rcvtimeo = sock.sndtimeo = int(_TIMEOUT * 1000)
    if case.server_keys is not None:
        configure_curve(router, case.server_keys)
        configure_curve(dealer, case.client_keys, case.server_keys.public)
    router.bind(case.address)
    dealer.routing_id = _CLIENT.encode()
    dealer.connect(router.last_endpoint.decode())
    return router, dealer


def _raw_latency(case: _Case, seconds: float) -> list[int]:
    router, dealer = _raw_pair(case)

    def echo() -> None:
        while True:
            identity = router.recv()
            body = router.recv()
            router.send(identity, zmq.SNDMORE)
            router.send(body)
            if body == _STOP:
                return

    return _time_round_trips(
        echo, lambda: dealer.send(PAYLOAD), dealer.recv, lambda: dealer.send(_STOP), seconds
    )


def _raw_throughput(case: _Case, seconds: float) -> float:
    router, dealer = _raw_pair(case)

    def flood(stop: threading.Event) -> None:
        while not stop.is_set():
            dealer.send(PAYLOAD)
        dealer.send(_STOP)

    def receive() -> bool:
        router.recv()
        return router.recv() != _STOP

    return _count_one_way(flood, receive, seconds)


# -- this layer --------------------------------------------------------------------------------


def _layer_pair(case: _Case) -> tuple[ZmqServer, ZmqClient]:
    server = ZmqServer(
        case.address, _SERVER, context=case.context, curve=case.server_keys, send_timeout=_TIMEOUT
    )
    client = ZmqClient(
        server.address,
        _CLIENT,
        context=case.context,
        curve=case.client_keys,
        server_key=None if case.server_keys is None else case.server_keys.public,
        send_timeout=_TIMEOUT,
    )
    return server, client


def _layer_latency(case: _Case, seconds: float) -> list[int]:
    server, client = _layer_pair(case)
    seq = iter(range(1 << 62))

    def echo() -> None:
        while True:
            message = server.recv(_TIMEOUT)
            if message is None:
                raise TimeoutError("benchmark echo server waited too long")
            server.send(message, to=message.sender)
            if message.kind == "stop":
                return

    def ping() -> None:
        client.send(Message(_CLIENT, _SERVER, "ping", 0.0, next(seq), PAYLOAD))

    def pong() -> Message:
        message = client.recv(_TIMEOUT)
        if message is None:
            raise TimeoutError("benchmark client waited too long for its echo")
        return message

    def stop() -> None:
        client.send(Message(_CLIENT, _SERVER, "stop", 0.0, 0))

    return _time_round_trips(echo, ping, pong, stop, seconds)


def _layer_throughput(case: _Case, seconds: float) -> float:
    server, client = _layer_pair(case)

    def flood(stop: threading.Event) -> None:
        seq = 0
        while not stop.is_set():
            client.send(Message(_CLIENT, _SERVER, "data", 0.0, seq, PAYLOAD))
            seq += 1
        client.send(Message(_CLIENT, _SERVER, "stop", 0.0, seq))

    def receive() -> bool:
        message = server.recv(_TIMEOUT)
        if message is None:
            raise TimeoutError("benchmark receiver waited too long")
        return message.kind != "stop"

    return _count_one_way(flood, receive, seconds)


# -- shared drivers ----------------------------------------------------------------------------


def _time_round_trips(
    echo: Callable[[], None],
    send: Callable[[], None],
    recv: Callable[[], object],
    stop: Callable[[], None],
    seconds: float,
) -> list[int]:
    """Run ``echo`` in a thread; time send/recv pairs for ``seconds`` after a short warm-up."""
    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    clock = time.perf_counter_ns
    for _ in range(200):
        send()
        recv()
    samples = []
    end = clock() + int(seconds * 1e9)
    while True:
        start = clock()
        send()
        recv()
        now = clock()
        samples.append(now - start)
        if now > end:
            break
    stop()
    recv()
    thread.join(_TIMEOUT)
    return samples


def _count_one_way(
    flood: Callable[[threading.Event], None], receive: Callable[[], bool], seconds: float
) -> float:
    """Run ``flood`` in a thread for ``seconds``; return messages received per second."""
    stop = threading.Event()
    thread = threading.Thread(target=flood, args=(stop,), daemon=True)
    thread.start()
    receive()  # the clock starts at the first arrival, once the connection is up
    start = time.perf_counter()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    count = 0
    while receive():
        count += 1
    elapsed = time.perf_counter() - start
    timer.cancel()
    thread.join(_TIMEOUT)
    return count / elapsed
