"""``python -m phobos.comms.relay``: a relay over ZeroMQ, until SIGTERM or SIGINT.

Without ``--keys`` (CURVE and the allow-list of agents' keys) a relay trusts anyone who can
connect, so it refuses to start unless ``--insecure`` says so, and then binds loopback
addresses only.
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Sequence

from phobos.comms.codec import MAX_FRAME_SIZE
from phobos.comms.journal import Journal
from phobos.comms.relay import Relay, RelayConfig

log = logging.getLogger("phobos.comms.relay")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a relay over ZeroMQ until SIGTERM or SIGINT; return the exit status (0).

    See ``python -m phobos.comms.relay --help``. Settings come from :class:`RelayConfig`,
    read from ``--config`` (YAML) and ``--set key=value`` overrides (``reliable.`` for the
    nested ones, e.g. ``--set reliable.heartbeat_interval=0.1``).
    """
    parser = argparse.ArgumentParser(
        prog="python -m phobos.comms.relay",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Store-and-forward relay between agents: journals what it accepts in SQLite\n"
            "(WAL) before acknowledging it, holds it for receivers that are away or lost,\n"
            "and delivers it exactly once when they are back. Serves until SIGTERM/SIGINT."
        ),
        epilog=(
            "settings (RelayConfig; --config YAML and/or --set key=value):\n"
            "  name, max_held, max_total, max_bytes, done_lifetime, batch, peers,\n"
            "  synchronous (FULL | NORMAL),\n"
            "  reliable.heartbeat_interval, reliable.lost_after, reliable.dedup_capacity,\n"
            "  reliable.reliable_kinds, reliable.retry.{initial,factor,max_interval,\n"
            "  max_attempts,window}\n"
            "example:\n"
            "  python -m phobos.comms.relay --address tcp://127.0.0.1:5555 --journal relay.db \\\n"
            "      --keys keys/ --set reliable.heartbeat_interval=0.2"
        ),
    )
    parser.add_argument("--address", required=True, help="where to bind, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--journal", required=True, help="SQLite journal file (created if new)")
    parser.add_argument("--keys", help="CURVE folder: the relay's key pair and agents' .key files")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="serve without CURVE (anyone who can connect is trusted): loopback addresses only",
    )
    parser.add_argument("--config", help="YAML file of RelayConfig settings")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO (default), WARNING")
    args = parser.parse_args(argv)
    # Deferred: importing this module for Relay must not load pyzmq or YAML.
    import zmq

    from phobos.comms.security import CurveAuthenticator, load_allow_list, load_keys
    from phobos.comms.zmq_transport import ZmqServer
    from phobos.config import load

    try:
        config = load(RelayConfig, args.config, args.set)
    except ValueError as exc:  # ConfigError included
        parser.error(str(exc))
    if not args.keys and not args.insecure:
        parser.error("no --keys: a relay without CURVE trusts anyone; pass --insecure to allow it")
    if not args.keys and not _loopback(args.address):
        parser.error(f"--insecure serves loopback addresses only, not {args.address!r}")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    context = zmq.Context()
    auth = None
    relay = None
    try:
        curve = None
        receivers = set(config.peers) or None  # insecure: the configured peers, if any
        if args.keys:
            curve = load_keys(args.keys, config.name)
            allowed = {n: k for n, k in load_allow_list(args.keys).items() if n != config.name}
            auth = CurveAuthenticator(context, allowed).start()
            receivers = set(allowed) | set(config.peers)  # messages only to known names
        server = ZmqServer(
            args.address,
            config.name,
            context=context,
            curve=curve,
            # Frames up to 4x the limit reach the decoder and are counted as rejections;
            # libzmq drops the connection of anything larger before it is buffered.
            wire_max_size=4 * MAX_FRAME_SIZE,
            # Never wait for one peer that does not read: what it misses goes again later.
            send_timeout=0.0,
        )
        if curve is None:
            # Insecure (loopback): names are routing ids, and a restarted agent, reconnecting
            # before the old connection is seen to close, takes its name over. Under CURVE
            # no one takes over by name: a name is its key's (ZmqServer routes by User-Id).
            server.socket.router_handover = 1
        journal = Journal(args.journal, config.synchronous)
        relay = Relay(server, journal, config, receivers=receivers)
        print(f"relay {config.name} listening on {server.address}", flush=True)
        relay.serve(lambda: bool(stopping))
        log.info(
            "%s: stopping on signal %d; counters %s", config.name, stopping[0], relay.counters()
        )
    finally:
        if relay is not None:
            relay.close()
        if auth is not None:
            auth.stop()
        context.destroy(linger=0)
    return 0


def _loopback(address: str) -> bool:
    """Whether ``address`` is reachable from this host only (loopback tcp, ipc, inproc)."""
    scheme, _, rest = address.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rsplit(":", 1)[0].strip("[]")
    return scheme == "tcp" and (host in ("localhost", "::1") or host.startswith("127."))
