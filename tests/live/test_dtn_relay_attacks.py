"""Bad input at the DTN relay process: refused, counted, the sender told; the relay serves on.

A message to an unknown agent, one sent by an agent under another's name, one over the size
limit, one of an unknown kind, and a frame that is no message: each is answered ``refused``
naming the culprit, counted, and a well-formed message sent after them is still accepted and
routed. The test plays the world with the world's own connection (:mod:`phobos.live.world`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq

from phobos.comms.codec import decode, encode
from phobos.comms.message import BROADCAST, Message
from phobos.comms.security import generate_keys, load_keys
from phobos.envs import make
from phobos.live.dtn import protocol as r
from phobos.live.world.relay_bus import ProcessRelayBus, RelayLink
from tests.live.relay_process import RelayProcess

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]
ENV = "orbit-scheduling-v0"


class RawAgent:
    """A hand-driven DEALER with ``key``'s CURVE keys, to send what a real agent never would."""

    def __init__(self, context: zmq.Context, address: str, keys: Path, key: str) -> None:
        own = load_keys(keys, key)
        self.sock = context.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.curve_secretkey, self.sock.curve_publickey = own.secret, own.public
        self.sock.curve_serverkey = load_keys(keys, r.RELAY).public
        self.sock.connect(address)

    def send(self, sender: str, kind: str, payload) -> None:
        self.sock.send(encode(Message(sender, r.RELAY, kind, 0.0, 0, payload)))

    def answer(self, kinds, timeout: float = 10.0) -> Message | None:
        while self.sock.poll(int(timeout * 1000)):
            message = decode(self.sock.recv())
            if message.kind in kinds:
                return message
        return None


@pytest.fixture
def setup(tmp_path: Path):
    keys = tmp_path / "keys"
    env = make(ENV)
    for name in ("world", "relay", *env.possible_agents):
        generate_keys(keys, name)
    relay = RelayProcess(keys, tmp_path / "relay.db", tmp_path / "relay.log").start()
    context = zmq.Context()
    world, relay_key = load_keys(keys, "world"), load_keys(keys, "relay").public
    link = RelayLink(relay.address, world, relay_key, context)
    env.reset(seed=0)
    router = env.router
    bus = ProcessRelayBus(
        link, 0, env.message_kinds, env.possible_agents, router.links, router.buffer_limit
    )
    yield keys, relay, context, bus, link
    link.close()
    context.destroy(linger=0)
    relay.stop()


def intent(receiver=BROADCAST, kind="intent", seq=0, payload=(1, 0.5, 0.5)):
    return [receiver, kind, 0.0, seq, list(payload)]


@pytest.mark.parametrize(
    ("key", "sender", "item", "culprit"),
    [
        ("phobos_grunt", "phobos_grunt", intent(receiver="mars_rover"), "unknown receiver"),
        ("phobos_grunt", "yinghuo1", intent(), "authenticated as 'phobos_grunt'"),
        ("phobos_grunt", "phobos_grunt", intent(payload=("x" * 20_000,)), "over 16384 bytes"),
        ("phobos_grunt", "phobos_grunt", intent(kind="launch_codes"), "unknown message kind"),
    ],
    ids=["unknown-receiver", "under-another-name", "oversized", "unknown-kind"],
)
def test_bad_message_is_refused_counted_and_the_relay_serves_on(
    setup, key, sender, item, culprit
) -> None:
    keys, relay, context, bus, link = setup
    agent = RawAgent(context, relay.address, keys, key)
    agent.send(sender, r.SUBMIT, [0, [item]])
    refused = agent.answer({r.REFUSED})
    assert refused is not None and culprit in refused.payload[2], refused
    agent.send(key, r.GOT, "not a list")  # broken, but harmless: ignored
    agent.sock.send(b"\x93garbage")  # not a message at all
    garbage = agent.answer({r.REFUSED})
    assert garbage is not None and garbage.payload[1] == -1

    # The relay keeps serving: a good message after the bad ones is taken and routed.
    agent.send(key, r.SUBMIT, [0, [intent()]])
    ack = agent.answer({r.DELIVER})  # custody acknowledged once journaled
    assert ack is not None and ack.payload[2] == [[0, [0]]], ack
    bus.expect = {key: 1}
    bus.deliver(300.0)
    ledger = link.request(r.FLUSH, 0.0, (r.FLUSHED,)).payload
    assert ledger["refused"] == 2 and ledger["accepted"] == 1
    assert ledger["sent"] == len(bus.plan["endpoints"]) - 1  # the broadcast's copies
