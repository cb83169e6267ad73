"""Agent processes for the relay fault tests: ``python -m tests.comms.relay_agents send|recv``.

``send`` sends ``--count`` reliable messages (payload ``--first``, ``--first + 1``, ...) to one
receiver, paced by waiting on its endpoint (not sleeping), then waits until the relay has
acknowledged every one and exits 0 (1 if that takes longer than ``--deadline`` seconds).

``recv`` appends ``sender seq payload`` to ``--log`` for every new message, one ``write`` per
line, before the message is acknowledged (the acknowledgement goes at the next ``recv``). On
start it reads the log back and passes its ids as already delivered, so a restarted receiver
drops what its previous run processed: the log ends with every message exactly once. It
serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import zmq

from phobos.comms.endpoint import ReliableEndpoint
from phobos.comms.reliable import ReliableConfig, RetryPolicy
from phobos.comms.zmq_transport import ZmqClient


def read_log(path: str) -> list[tuple[str, int, int]]:
    """``(sender, seq, payload)`` per complete line of a receiver's log."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as file:
        text = file.read().decode()
    lines = text.split("\n")[:-1]  # a kill cannot split a line, but be strict anyway
    return [(s, int(q), int(p)) for s, q, p in (line.split(" ") for line in lines)]


def config(args: argparse.Namespace) -> ReliableConfig:
    """The reliability settings the tests give the relay too."""
    return ReliableConfig(
        retry=RetryPolicy(initial=args.retry, max_interval=4 * args.retry, window=args.window),
        heartbeat_interval=args.heartbeat,
        lost_after=args.lost_after,
    )


def send(args: argparse.Namespace, endpoint: ReliableEndpoint) -> int:
    for payload in range(args.first, args.first + args.count):
        endpoint.send(args.to, "data", payload)
        # Pacing that also serves the protocol; nothing arrives for a pure sender.
        endpoint.recv(args.pace)
    acked = endpoint.wait_acked(args.deadline)
    print(f"{args.name}: acked={acked} {endpoint.stats}", file=sys.stderr, flush=True)
    return 0 if acked else 1


def recv(args: argparse.Namespace, endpoint: ReliableEndpoint) -> int:
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while not stopping:
            message = endpoint.recv(0.1)
            if message is not None:
                line = f"{message.sender} {message.seq} {message.payload}\n"
                os.write(fd, line.encode())
    finally:
        os.close(fd)
    print(f"{args.name}: {endpoint.stats}", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["send", "recv"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--to", default="b")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--pace", type=float, default=0.005)
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--log", default="")
    parser.add_argument("--heartbeat", type=float, default=0.1)
    parser.add_argument("--lost-after", type=int, default=3)
    parser.add_argument("--retry", type=float, default=0.1)
    parser.add_argument("--window", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.name} %(message)s")
    context = zmq.Context()
    try:
        client = ZmqClient(args.address, args.name, context=context, send_timeout=0.5)
        delivered = [(s, q) for s, q, _ in read_log(args.log)] if args.role == "recv" else []
        endpoint = ReliableEndpoint(client, config(args), delivered=delivered)
        try:
            return send(args, endpoint) if args.role == "send" else recv(args, endpoint)
        finally:
            endpoint.close()
    finally:
        context.destroy(linger=0)


if __name__ == "__main__":
    raise SystemExit(main())
