"""Fixtures for the transport tests: one factory per transport, fresh contexts, short ipc paths.

Every ZeroMQ test gets its own context, destroyed with linger 0 at teardown, so that a test
that fails half-way cannot leave sockets behind for the next one.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zmq

from phobos.comms.transport import InProcessHub, Transport
from phobos.comms.zmq_transport import ZmqClient, ZmqServer

SERVER = "world"
ZMQ_SCHEMES = ["inproc", "ipc", "tcp"]


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder for ipc sockets: tmp_path unless too long for a socket path (108 bytes)."""
    if len(str(tmp_path)) < 80:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="phobos-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def bind_address(scheme: str, folder: Path, name: str = "world") -> str:
    """A fresh address for ``scheme``: random tcp port on loopback, ipc in ``folder``."""
    if scheme == "tcp":
        return "tcp://127.0.0.1:*"
    if scheme == "ipc":
        return f"ipc://{folder}/{name}.sock"
    return f"inproc://{name}-{time.monotonic_ns()}"


@dataclass
class Net:
    """Makes one server and its clients over one transport; closes them all at teardown."""

    kind: str
    make_server: Callable[[], Transport]
    make_client: Callable[[Transport, str], Transport]
    opened: list[Transport] = field(default_factory=list)

    def server(self) -> Transport:
        server = self.make_server()
        self.opened.append(server)
        return server

    def client(self, server: Transport, name: str) -> Transport:
        client = self.make_client(server, name)
        self.opened.append(client)
        return client

    def close(self) -> None:
        for transport in self.opened:
            transport.close()


NET_KINDS = [
    "inprocess",
    *(pytest.param(f"zmq-{scheme}", marks=pytest.mark.network) for scheme in ZMQ_SCHEMES),
]


@pytest.fixture(params=NET_KINDS)
def net(request, context, short_dir) -> Iterator[Net]:
    kind = request.param
    if kind == "inprocess":
        hub = InProcessHub(codec=True)
        result = Net(
            kind,
            lambda: hub.endpoint(SERVER),
            lambda server, name: hub.endpoint(name, via=server.name),
        )
    else:
        scheme = kind.removeprefix("zmq-")
        result = Net(
            kind,
            lambda: ZmqServer(bind_address(scheme, short_dir), SERVER, context=context),
            lambda server, name: ZmqClient(server.address, name, context=context),
        )
    yield result
    result.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.01) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)  # polling interval, not synchronisation: the deadline bounds it
    return True
