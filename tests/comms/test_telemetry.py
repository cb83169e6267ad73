"""PUB/SUB telemetry: filtered by kind, never blocking, garbage counted; it may drop."""

from __future__ import annotations

import time

import pytest
import zmq

from phobos.comms.codec import encode
from phobos.comms.message import Message
from phobos.comms.security import CurveAuthenticator, generate_keys
from phobos.comms.telemetry import TelemetryPublisher, TelemetrySubscriber
from phobos.comms.transport import TransportError
from tests.comms.conftest import ZMQ_SCHEMES, bind_address, wait_until

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]


def sample(kind: str, seq: int) -> Message:
    return Message("world", "*", kind, float(seq), seq, {"battery": 0.5})


def publish_until_received(publish, subscriber, timeout: float = 10.0) -> list[Message]:
    """Publish rounds until the subscriber gets something (slow joiner); return what came."""
    deadline = time.monotonic() + timeout
    seq = 0
    while time.monotonic() < deadline:
        publish(seq)
        seq += 1
        got = subscriber.recv(0.02)
        if got is not None:
            received = [got]
            while (more := subscriber.recv(0.05)) is not None:
                received.append(more)
            return received
    raise AssertionError("no telemetry arrived before the deadline")


@pytest.mark.parametrize("scheme", ZMQ_SCHEMES)
@pytest.mark.parametrize("subscriber_binds", [False, True], ids=["pub-binds", "sub-binds"])
def test_subscriber_gets_only_its_kinds(context, short_dir, scheme, subscriber_binds):
    address = bind_address(scheme, short_dir, "telemetry")
    if subscriber_binds:
        sub = TelemetrySubscriber(address, ["position"], bind=True, context=context)
        pub = TelemetryPublisher(sub.address, bind=False, context=context)
    else:
        pub = TelemetryPublisher(address, context=context)
        sub = TelemetrySubscriber(pub.address, ["position"], context=context)
    with pub, sub:

        def publish(seq: int) -> None:
            pub.publish(sample("position_extra", seq))  # a longer kind with the same prefix
            pub.publish(sample("power", seq))
            pub.publish(sample("position", seq))

        received = publish_until_received(publish, sub)
        assert {m.kind for m in received} == {"position"}
        seqs = [m.seq for m in received]
        assert seqs == sorted(seqs)  # gaps are allowed, reordering is not
        assert sub.rejected == 0


def test_publishing_without_subscribers_never_blocks(context):
    with TelemetryPublisher("tcp://127.0.0.1:*", context=context) as pub:
        start = time.monotonic()
        for seq in range(20_000):
            pub.publish(sample("position", seq))
        assert time.monotonic() - start < 10.0
        assert pub.published == 20_000


def test_connecting_publisher_without_peers_drops_instead_of_blocking(context, short_dir):
    address = bind_address("ipc", short_dir, "nobody-listens")
    with TelemetryPublisher(address, bind=False, context=context) as pub:
        start = time.monotonic()
        for seq in range(5_000):
            pub.publish(sample("position", seq))
        assert time.monotonic() - start < 10.0


def test_garbage_is_counted_and_skipped(context):
    raw = context.socket(zmq.PUB)
    raw.linger = 0
    raw.bind("tcp://127.0.0.1:*")
    sub = TelemetrySubscriber(raw.last_endpoint.decode(), context=context)
    try:

        def publish(seq: int) -> None:
            raw.send(b"position\x00not a frame")
            raw.send(b"no separator")
            raw.send_multipart([b"position\x00", b"second frame"])
            raw.send(b"power\x00" + encode_sample("position", seq))  # topic and kind differ
            raw.send(b"position\x00" + encode_sample("position", seq))

        received = publish_until_received(publish, sub)
        assert all(m.kind == "position" for m in received)
        # Every round sent the four bad frames before the good one, on the same pipe.
        assert sub.rejected >= 4
    finally:
        sub.close()
        raw.close()


def encode_sample(kind: str, seq: int) -> bytes:
    return encode(sample(kind, seq))


def test_curve_telemetry_refuses_strangers(context, tmp_path):
    server = generate_keys(tmp_path, "world")
    dashboard = generate_keys(tmp_path, "dashboard")
    stranger = generate_keys(tmp_path / "x", "stranger")
    with CurveAuthenticator(context, {"dashboard": dashboard.public}) as auth:
        pub = TelemetryPublisher("tcp://127.0.0.1:*", context=context, curve=server)
        good = TelemetrySubscriber(
            pub.address, context=context, curve=dashboard, server_key=server.public
        )
        bad = TelemetrySubscriber(
            pub.address, context=context, curve=stranger, server_key=server.public
        )
        with pub, good, bad:
            publish_until_received(lambda seq: pub.publish(sample("position", seq)), good)
            assert wait_until(lambda: auth.rejected >= 1)
            pub.publish(sample("position", 10**6))
            assert bad.recv(0.1) is None


def test_bad_kinds_and_closed_ends(context):
    with pytest.raises(ValueError, match="NUL"):
        TelemetrySubscriber("tcp://127.0.0.1:1", ["a\x00b"], context=context)
    pub = TelemetryPublisher("tcp://127.0.0.1:*", context=context)
    sub = TelemetrySubscriber(pub.address, context=context)
    with pytest.raises(ValueError, match="NUL"):
        pub.publish(sample("a\x00b", 0))
    pub.close()
    sub.close()
    pub.close()
    with pytest.raises(TransportError):
        pub.publish(sample("position", 0))
    with pytest.raises(TransportError):
        sub.recv(0.0)
