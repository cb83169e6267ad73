"""Every comms resource closes on leaving a ``with`` block, whatever raised inside it."""

from __future__ import annotations

import pytest
import zmq

from phobos.comms.security import CurveAuthenticator
from phobos.comms.telemetry import TelemetryPublisher, TelemetrySubscriber
from phobos.comms.transport import InProcessHub
from phobos.comms.zmq_transport import ZmqServer

RESOURCES = {
    "in-process transport": (lambda ctx: InProcessHub().endpoint("a"), lambda t: t._closed),
    "zmq server": (lambda ctx: ZmqServer("inproc://closing", "s", context=ctx),
                   lambda t: t.socket.closed),
    "telemetry publisher": (lambda ctx: TelemetryPublisher("inproc://pub", context=ctx),
                            lambda t: t.socket.closed),
    "telemetry subscriber": (lambda ctx: TelemetrySubscriber("inproc://sub", context=ctx),
                             lambda t: t.socket.closed),
    "curve authenticator": (lambda ctx: CurveAuthenticator(ctx, {"a": zmq.curve_keypair()[0]}),
                            lambda t: t._thread is None),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(RESOURCES))
def test_with_closes_on_leaving_even_after_an_exception(kind):
    build, closed = RESOURCES[kind]
    context = zmq.Context()
    try:
        with pytest.raises(RuntimeError), build(context) as resource:
            assert not closed(resource)
            raise RuntimeError("inside the block")
        assert closed(resource)
        resource.close()  # closing again is allowed
    finally:
        context.destroy(linger=0)
