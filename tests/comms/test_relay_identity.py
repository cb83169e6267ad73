"""A valid key speaks only for its own name at the relay: no connection is taken by name.

``python -m phobos.comms.relay`` with CURVE keys on a loopback port; ``a``, ``b`` and the
attacker ``mallory`` all hold keys on the allow-list. Mallory connects with ``b``'s name as
its routing id and sends heartbeats and acknowledgements as ``b``: with a ROUTER handover by
name it would take ``b``'s connection, read ``b``'s messages and acknowledge them away.
"""

from __future__ import annotations

import shutil
import time

import pytest
import zmq

from phobos.comms.codec import encode
from phobos.comms.message import Message
from phobos.comms.reliable import ACK, heartbeat
from phobos.comms.security import generate_keys, load_keys
from tests.comms.relay_harness import Probe, Processes
from tests.comms.test_relay_garbage import Live

pytestmark = [pytest.mark.network, pytest.mark.timeout(120)]
COUNT = 40


@pytest.fixture
def procs(tmp_path):
    processes = Processes(tmp_path)
    yield processes
    processes.cleanup()


def test_an_allowed_key_cannot_take_another_agents_messages(procs, context, tmp_path) -> None:
    keys, mine = tmp_path / "relay-keys", tmp_path / "agent-keys"
    relay_keys = generate_keys(keys, "relay")
    for name in ("a", "b", "probe", "mallory"):
        generate_keys(mine, name)
        shutil.copy(mine / f"{name}.key", keys / f"{name}.key")  # every one allowed
    live = Live(procs, context, tmp_path, keys=keys)
    try:
        curve = {
            name: {"curve": load_keys(mine, name), "server_key": relay_keys.public}
            for name in ("a", "b", "probe")
        }
        a, b = live.agent("a", **curve["a"]), live.agent("b", **curve["b"])
        probe = Probe(context, live.address, **curve["probe"])
        live.closables.append(probe)
        b.recv(0.5)  # b says hello (heartbeats) before the thief arrives
        thief = context.socket(zmq.DEALER)
        thief.linger = 0
        thief.routing_id = b"b"
        own = load_keys(mine, "mallory")
        thief.curve_secretkey, thief.curve_publickey = own.secret, own.public
        thief.curve_serverkey = relay_keys.public
        thief.connect(live.address)
        live.closables.append(thief)
        got, stolen = [], 0
        deadline = time.monotonic() + 60.0
        for payload in range(COUNT):
            a.send("b", "data", payload)
        while len(got) < COUNT and time.monotonic() < deadline:
            thief.send(encode(heartbeat("b", "relay", 1)))
            while thief.poll(0):
                frame = thief.recv()
                stolen += 1
                thief.send(encode(Message("b", "relay", ACK, 0.0, 0, [["a", stolen]])))
            message = b.recv(0.05)
            a.recv(0.0)
            if message is not None and message.kind == "data":
                got.append(message.payload)
        assert sorted(got) == list(range(COUNT)), f"b got {len(got)}, the thief {stolen}"
        assert stolen == 0, f"the thief read {stolen} frames, e.g. {frame[:40]!r}"
        stats = probe.stats(5.0)
        assert stats["rejected"] > 0, stats  # mallory's frames as b, counted
        assert Processes.terminate(live.relay) == 0, procs.logs()
    finally:
        live.close()
