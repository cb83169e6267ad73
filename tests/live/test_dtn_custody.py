"""Custody at the DTN relay is true: a message is acknowledged only once it is journaled.

The relay runs in this process and is driven frame by frame (no threads, no sleeps): a
submit it has read but not yet committed is not acknowledged, and a relay that dies then
(closed without committing, as a kill leaves it) has not taken custody; started again on
the same journal it takes the sender's resend, journals it, and only then acknowledges it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zmq

from phobos.comms.codec import decode, encode
from phobos.comms.message import Message
from phobos.comms.security import generate_keys, load_keys
from phobos.live.dtn import protocol as r
from phobos.live.dtn.relay import DtnRelay

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]
AGENTS = ["a", "b"]


def dealer(context: zmq.Context, keys: Path, name: str, address: str) -> zmq.Socket:
    own = load_keys(keys, name)
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.curve_secretkey, sock.curve_publickey = own.secret, own.public
    sock.curve_serverkey = load_keys(keys, r.RELAY).public
    sock.connect(address)
    return sock


def send(sock: zmq.Socket, sender: str, kind: str, payload, seq: int = 0) -> None:
    sock.send(encode(Message(sender, r.RELAY, kind, 0.0, seq, payload), r.MAX_FRAME_BYTES))


def serve_until_read(relay: DtnRelay, frames: int) -> None:
    """Let the relay read ``frames`` frames (each poll waits on its socket, bounded)."""
    for _ in range(frames):
        assert relay.sock.poll(5000), "the relay got nothing"
        relay.drain(most=1)


def acks(sock: zmq.Socket, timeout_ms: int) -> list:
    got = []
    while sock.poll(timeout_ms):
        message = decode(sock.recv(), r.MAX_FRAME_BYTES)
        if message.kind == r.DELIVER:
            got += message.payload[2]
        elif message.kind == r.ACK:
            got.append(message.payload)
    return got


def test_no_acknowledgement_before_the_journal_commit(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    for name in ("world", "relay", *AGENTS):
        generate_keys(keys, name)
    journal = tmp_path / "relay.db"
    steps = 4
    plan = {
        "endpoints": AGENTS,
        "step_seconds": 300.0,
        "buffer": 8,
        "kinds": ["intent"],
        "open": np.ones((steps, 2, 2), dtype=bool),
        "delay": np.full((steps, 2, 2), 100.0),
        "lost": np.zeros((steps, 2, 2), dtype=bool),
        "rate": None,
    }
    item = ["b", "intent", 0.0, 0, [1, 0.5, 0.5]]
    context = zmq.Context()
    relay = DtnRelay("tcp://127.0.0.1:*", keys, journal)
    try:
        world = dealer(context, keys, "world", relay.address)
        agent = dealer(context, keys, "a", relay.address)
        send(world, "world", r.PLAN, plan, seq=0)
        serve_until_read(relay, 1)
        assert decode(world.recv()).kind == r.OK
        send(agent, "a", r.SUBMIT, [0, [item]])
        serve_until_read(relay, 1)
        assert acks(agent, 200) == []  # read, held in memory, not journaled: not acknowledged
    finally:
        relay.close()  # dies here, as a kill leaves it: nothing more committed
    relay = DtnRelay(relay.address, keys, journal)  # started again on the same journal
    try:
        assert relay.journal.accepted_count() == 0  # custody had not passed
        send(agent, "a", r.SUBMIT, [0, [item]])  # the sender's resend
        serve_until_read(relay, 1)
        relay._commit()  # what the idle relay does
        assert acks(agent, 2000) == [[0, [0]]]
        assert relay.journal.accepted_count() == 1
    finally:
        relay.close()
        context.destroy(linger=0)
