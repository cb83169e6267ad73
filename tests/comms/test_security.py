"""CURVE with an allow-list: allowed agents talk, unknown keys get nothing through."""

from __future__ import annotations

import logging

import pytest
import zmq

from phobos.comms.message import Message
from phobos.comms.security import (
    CurveAuthenticator,
    KeyPair,
    configure_curve,
    generate_keys,
    load_allow_list,
    load_keys,
)
from phobos.comms.zmq_transport import ZmqClient, ZmqServer
from tests.comms.conftest import SERVER, bind_address, wait_until

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]


@pytest.fixture
def keys(tmp_path):
    """Server keys, allowed agents' keys (in their own folder) and a stranger's keys."""
    return {
        "server": generate_keys(tmp_path / "server", SERVER),
        "a": generate_keys(tmp_path / "allowed", "a"),
        "b": generate_keys(tmp_path / "allowed", "b"),
        "stranger": generate_keys(tmp_path / "strangers", "stranger"),
        "allowed": load_allow_list(tmp_path / "allowed"),
    }


@pytest.fixture(params=["tcp", "ipc"])
def secured(request, context, short_dir, keys):
    """A CURVE server behind an allow-list of a and b; yields (server, authenticator, make)."""
    opened = []
    auth = CurveAuthenticator(context, keys["allowed"]).start()
    server = ZmqServer(
        bind_address(request.param, short_dir), SERVER, context=context, curve=keys["server"]
    )
    opened.append(server)

    def make(name: str, pair: KeyPair) -> ZmqClient:
        client = ZmqClient(
            server.address, name, context=context, curve=pair, server_key=keys["server"].public
        )
        opened.append(client)
        return client

    yield server, auth, make
    for transport in opened:
        transport.close()
    auth.stop()


def round_trip(server, client, seq: int) -> None:
    client.send(Message(client.name, SERVER, "ping", 0.0, seq))
    request = server.recv(10.0)
    assert request is not None and (request.sender, request.seq) == (client.name, seq)
    server.send(Message(SERVER, client.name, "pong", 0.0, seq))
    answer = client.recv(10.0)
    assert answer is not None and answer.seq == seq


def test_keys_round_trip_through_files(tmp_path):
    pair = generate_keys(tmp_path, "agent")
    assert len(pair.public) == 40 and len(pair.secret) == 40
    assert load_keys(tmp_path, "agent") == pair
    (tmp_path / "agent.key_secret").unlink()
    assert load_keys(tmp_path, "agent") == KeyPair(pair.public, None)
    assert load_allow_list(tmp_path) == {"agent": pair.public}
    with pytest.raises(FileNotFoundError, match="nobody"):
        load_keys(tmp_path, "nobody")


def test_allowed_clients_round_trip(secured, keys):
    server, auth, make = secured
    a, b = make("a", keys["a"]), make("b", keys["b"])
    round_trip(server, a, 0)
    round_trip(server, b, 0)
    assert auth.accepted == 2 and auth.rejected == 0


def test_unknown_key_gets_nothing_through(secured, keys, caplog):
    server, auth, make = secured
    stranger = make("stranger", keys["stranger"])
    with caplog.at_level(logging.WARNING, logger="phobos.comms.security"):
        stranger.send(Message("stranger", SERVER, "ping", 0.0, 0))
        assert wait_until(lambda: auth.rejected >= 1)
    assert "refused client key" in caplog.text
    # The server keeps serving allowed agents and never sees a frame from the stranger.
    round_trip(server, make("a", keys["a"]), 0)
    assert server.recv(0.2) is None
    assert server.rejected == 0
    assert stranger.recv(0.05) is None


def test_client_without_curve_gets_nothing_through(secured, keys, context):
    server, auth, make = secured
    plain = ZmqClient(server.address, "plain", context=context)
    try:
        plain.send(Message("plain", SERVER, "ping", 0.0, 0))
        round_trip(server, make("a", keys["a"]), 0)
        assert server.recv(0.2) is None
        assert server.rejected == 0
    finally:
        plain.close()


def test_allowed_key_cannot_speak_for_another_agent(secured, keys):
    server, auth, make = secured
    impostor = make("b", keys["a"])  # a's key, b's name
    impostor.send(Message("b", SERVER, "ping", 0.0, 0))
    assert wait_until(lambda: server.recv(0.05) is None and server.rejected == 1)
    round_trip(server, make("a", keys["a"]), 0)


def test_revoked_key_is_refused_on_its_next_connection(secured, keys):
    server, auth, make = secured
    auth.revoke("b")
    late = make("b", keys["b"])
    late.send(Message("b", SERVER, "ping", 0.0, 0))
    assert wait_until(lambda: auth.rejected >= 1)
    assert server.recv(0.1) is None


def test_configure_curve_needs_a_secret_key(context, keys):
    sock = context.socket(zmq.DEALER)
    try:
        with pytest.raises(ValueError, match="secret"):
            configure_curve(sock, KeyPair(keys["a"].public), keys["server"].public)
    finally:
        sock.close(linger=0)


def test_allow_rejects_malformed_keys(context):
    with pytest.raises(ValueError):
        CurveAuthenticator(context, {"a": b"too short"})
