"""Garbage at live ZeroMQ sockets is counted and dropped while well-behaved peers are served."""

from __future__ import annotations

import socket
import time

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phobos.comms.codec import MAGIC, MAX_FRAME_SIZE, encode
from phobos.comms.message import PROTOCOL_VERSION, Message
from phobos.comms.zmq_transport import ZmqClient, ZmqServer
from tests.comms.conftest import SERVER, ZMQ_SCHEMES, bind_address
from tests.comms.strategies import messages

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]

VALID = encode(Message("mallory", SERVER, "hello", 0.0, 0, b"x" * 40))

# Each garbage message is a list of frames, none of which is a valid message from "mallory".
single_frames = st.one_of(
    st.binary(max_size=64).filter(lambda b: not b.startswith(MAGIC)),
    st.integers(min_value=0, max_value=len(VALID) - 1).map(lambda cut: VALID[:cut]),
    st.integers(min_value=0, max_value=255)
    .filter(lambda v: v != PROTOCOL_VERSION)
    .map(lambda v: MAGIC + bytes((v,)) + VALID[3:]),
    st.binary(min_size=1, max_size=8).map(lambda extra: VALID + extra),
    messages.filter(lambda m: m.sender != "mallory").map(encode),  # spoofed sender
    st.just(MAGIC + bytes((PROTOCOL_VERSION,)) + msgpack.packb([1, 2, 3])),
)
garbage = st.lists(
    st.lists(single_frames, min_size=1, max_size=3),  # multipart is garbage too
    min_size=1,
    max_size=6,
)


@pytest.fixture(params=ZMQ_SCHEMES)
def live(request, context, short_dir):
    """A server, a well-behaved client and a raw DEALER attacker named mallory."""
    server = ZmqServer(bind_address(request.param, short_dir), SERVER, context=context)
    client = ZmqClient(server.address, "good", context=context)
    attacker = context.socket(zmq.DEALER)
    attacker.linger = 0
    attacker.routing_id = b"mallory"
    attacker.connect(server.address)
    yield request.param, server, client, attacker
    for closable in (attacker, client, server):
        closable.close()


def serve_one_request(server, client, seq: int) -> None:
    """The well-behaved client gets its reply, whatever else the server is receiving."""
    client.send(Message("good", SERVER, "ping", float(seq), seq))
    request = server.recv(10.0)
    assert request is not None and request.sender == "good" and request.seq == seq
    server.send(Message(SERVER, "good", "pong", float(seq), seq))
    answer = client.recv(10.0)
    assert answer is not None and answer.seq == seq


def drain_until_rejected(server, expected: int, timeout: float = 10.0) -> None:
    """Let the server read until it has rejected ``expected`` frames; nothing valid may come."""
    deadline = time.monotonic() + timeout
    while server.rejected < expected and time.monotonic() < deadline:
        assert server.recv(0.05) is None
    assert server.rejected == expected


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=garbage)
def test_garbage_is_counted_and_good_peers_are_served(live, batch):
    _, server, client, attacker = live
    before = server.rejected
    for frames in batch:
        attacker.send_multipart(frames)
    serve_one_request(server, client, seq=before)
    drain_until_rejected(server, before + len(batch))
    serve_one_request(server, client, seq=before + 1)


def test_oversized_frame_does_not_stop_the_server(live):
    scheme, server, client, attacker = live
    serve_one_request(server, client, 0)
    attacker.send(MAGIC + bytes((PROTOCOL_VERSION,)) + b"\x00" * MAX_FRAME_SIZE)
    if scheme == "inproc":
        # No wire protocol underneath: the frame reaches the decoder, which rejects it.
        drain_until_rejected(server, 1)
    else:
        # libzmq's ZMQ_MAXMSGSIZE drops it, and the connection, before anything is read.
        assert server.recv(0.2) is None
        assert server.rejected == 0
    serve_one_request(server, client, 1)


def test_garbage_from_the_server_side_is_counted_by_the_client(context, short_dir):
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    address = bind_address("tcp", short_dir)
    router.bind(address)
    client = ZmqClient(router.last_endpoint.decode(), "good", context=context)
    try:
        client.send(Message("good", SERVER, "hello", 0.0, 0))
        assert router.poll(10_000)
        identity, _ = router.recv_multipart()
        router.send_multipart([identity, b"not a message"])
        router.send_multipart([identity, b"two", b"frames"])
        router.send_multipart([identity, encode(Message(SERVER, "good", "ok", 0.0, 1))])
        message = client.recv(10.0)
        assert message is not None and message.seq == 1
        # A DEALER's frames carry no envelope: each part of the two-part message is judged alone.
        assert client.rejected == 3
    finally:
        client.close()
        router.close()


def test_raw_tcp_bytes_do_not_reach_the_application(context, short_dir):
    server = ZmqServer(bind_address("tcp", short_dir), SERVER, context=context)
    client = ZmqClient(server.address, "good", context=context)
    try:
        host, port = server.address.removeprefix("tcp://").rsplit(":", 1)
        for junk in (b"\xff" * 64, b"GET / HTTP/1.1\r\n\r\n", bytes(range(256)) * 8):
            with socket.create_connection((host, int(port)), timeout=5) as raw:
                raw.sendall(junk)
        serve_one_request(server, client, 0)
        assert server.recv(0.1) is None
        assert server.rejected == 0
    finally:
        client.close()
        server.close()
