"""The same behaviour from every transport: in-process, and ZeroMQ over inproc, ipc and tcp."""

from __future__ import annotations

import time

import numpy as np
import pytest

from phobos.comms.codec import EncodeError
from phobos.comms.message import BROADCAST, Message
from phobos.comms.transport import InProcessHub, TransportError
from tests.comms.conftest import SERVER
from tests.comms.strategies import same

pytestmark = pytest.mark.timeout(30)


def hello(name: str, seq: int = 0, payload: object = None) -> Message:
    return Message(name, SERVER, "hello", float(seq), seq, payload)


def reply(name: str, seq: int = 0, payload: object = None) -> Message:
    return Message(SERVER, name, "ack", float(seq), seq, payload)


def connect(net, server, name: str):
    """A client whose server has heard from it (a ROUTER can only address known peers)."""
    client = net.client(server, name)
    client.send(hello(name, payload="join"))
    got = server.recv(10.0)
    assert got is not None and got.sender == name
    return client


def test_round_trip_carries_payloads_exactly(net):
    server = net.server()
    client = connect(net, server, "phobos_grunt")
    payload = {"power": np.arange(6, dtype=np.float32).reshape(2, 3), "target": ("phobos", 3)}
    client.send(hello("phobos_grunt", 1, payload))
    assert same(server.recv(10.0), hello("phobos_grunt", 1, payload))
    server.send(reply("phobos_grunt", 1, payload))
    assert same(client.recv(10.0), reply("phobos_grunt", 1, payload))


def test_recv_returns_none_within_its_timeout(net):
    server = net.server()
    client = connect(net, server, "a")
    for transport in (server, client):
        start = time.monotonic()
        assert transport.recv(0.0) is None
        assert transport.recv(0.05) is None
        assert time.monotonic() - start < 5.0


@pytest.mark.parametrize("timeout", [-1.0, float("inf"), float("nan")])
def test_recv_refuses_a_timeout_that_could_block_forever(net, timeout):
    server = net.server()
    with pytest.raises(ValueError, match="timeout"):
        server.recv(timeout)


def test_order_is_kept_both_ways(net):
    server = net.server()
    client = connect(net, server, "a")
    for seq in range(200):
        client.send(hello("a", seq))
    assert [server.recv(10.0).seq for _ in range(200)] == list(range(200))
    for seq in range(200):
        server.send(reply("a", seq))
    assert [client.recv(10.0).seq for _ in range(200)] == list(range(200))


def test_server_addresses_clients_by_name_and_relays_with_to(net):
    server = net.server()
    a, b = connect(net, server, "a"), connect(net, server, "b")
    server.send(reply("b", 7))
    server.send(reply("a", 8))
    assert client_seq(b) == 7 and client_seq(a) == 8
    # A broadcast from a reaches the server, which forwards b's copy by `to`.
    a.send(Message("a", BROADCAST, "intent", 1.0, 1, [1, 2]))
    intent = server.recv(10.0)
    assert intent.receiver == BROADCAST
    server.send(intent, to="b")
    assert same(b.recv(10.0), intent)
    assert a.recv(0.05) is None


def client_seq(client) -> int:
    message = client.recv(10.0)
    assert message is not None
    return message.seq


def test_addressing_mistakes_raise(net):
    server = net.server()
    client = connect(net, server, "a")
    with pytest.raises(ValueError, match="broadcast"):
        server.send(Message(SERVER, BROADCAST, "x", 0.0, 0))
    with pytest.raises(TransportError, match="'nobody'"):
        server.send(reply("nobody"))
    with pytest.raises(ValueError, match="only"):
        client.send(hello("a"), to="b")
    with pytest.raises(ValueError, match="cannot send as 'b'"):
        client.send(hello("b"))


def test_unencodable_payload_fails_at_the_sender(net):
    server = net.server()
    client = connect(net, server, "a")
    with pytest.raises(EncodeError, match="set"):
        client.send(hello("a", payload={1, 2}))
    with pytest.raises(EncodeError, match="exceeds max_size"):
        client.send(hello("a", payload=b"x" * (2 << 20)))
    assert server.recv(0.05) is None


def test_close_is_idempotent_and_final(net):
    server = net.server()
    client = connect(net, server, "a")
    for transport in (client, server):
        with transport:
            pass
        transport.close()
        with pytest.raises(TransportError, match="closed"):
            transport.recv(0.0)


def test_in_process_hub_without_codec_passes_messages_by_reference():
    hub = InProcessHub()
    server, client = hub.endpoint(SERVER), hub.endpoint("a", via=SERVER)
    message = hello("a", payload=[object()])  # not encodable, and fine without the codec
    client.send(message)
    assert server.recv(0.0) is message
    assert hub.names() == (SERVER, "a")
    with pytest.raises(ValueError, match="already exists"):
        hub.endpoint("a")
    client.close()
    with pytest.raises(TransportError, match="no endpoint named 'a'"):
        server.send(reply("a"))
