"""The MessageBus contract, one set of tests over every implementation.

The in-process router, the relayed bus over the codec hub and over ZeroMQ, and the world's
tracked bus over both: each must accept, refuse, deliver, count and capture exactly as the
contract in :mod:`phobos.comms.message_bus` says, and a random lock-step traffic must give the
router's deliveries, copy for copy, over every one of them.
"""

from __future__ import annotations

import itertools
import sys
from collections import deque

import numpy as np
import pytest
import zmq

from phobos.comms import BROADCAST, Router, TabulatedLinks
from phobos.comms.bus import RELAY, RelayedBus
from phobos.comms.message_bus import Flight, MessageBus
from phobos.comms.transport import InProcessHub
from phobos.comms.zmq_transport import ZmqClient, ZmqServer
from phobos.live.world.tracked_bus import TrackedBus, make_bus
from tests.comms.test_router import ENDPOINTS, STEP, links, message

_addresses = itertools.count()


def _hub(endpoints, link_model, limit, context):
    hub = InProcessHub(codec=True)
    clients = {name: hub.endpoint(name, via=RELAY) for name in endpoints}
    return RelayedBus(endpoints, link_model, limit, server=hub.endpoint(RELAY), clients=clients)


def _zmq(endpoints, link_model, limit, context):
    server = ZmqServer(f"inproc://bus-test-{next(_addresses)}", RELAY, context=context)
    clients = {name: ZmqClient(server.address, name, context=context) for name in endpoints}
    return RelayedBus(endpoints, link_model, limit, server=server, clients=clients)


BUSES = {
    "router": lambda endpoints, link_model, limit, context: Router(endpoints, link_model, limit),
    "relayed-hub": _hub,
    "relayed-zmq": _zmq,
    "tracked-memory": lambda *args: make_bus("memory", args[3], *args[:3]),
    "tracked-zmq": lambda *args: make_bus("zmq", args[3], *args[:3]),
    "tracked-hub": lambda *args: TrackedBus(_hub(*args)),
}


@pytest.fixture(params=sorted(BUSES))
def build(request):
    """``build(links, limit)``: a bus of the parametrised kind; every one closed at teardown."""
    context = zmq.Context()
    built = []

    def make(link_model, limit=8):
        bus = BUSES[request.param](ENDPOINTS, link_model, limit, context)
        built.append(bus)
        return bus

    yield make
    for bus in built:
        bus.close()
    context.destroy(linger=0)


def seqs(delivered):
    return [(receiver, m.sender, m.seq) for receiver, m in delivered]


def test_it_is_a_message_bus(build):
    assert isinstance(build(links([True])), MessageBus)


def test_a_message_waits_for_its_link_then_takes_the_light_time(build):
    bus = build(links([False, False, True, True]))
    assert bus.send(message(0, 0.0)) == 1
    assert bus.deliver(until=22.9) == []  # the link opens at t = 20, plus 3 s of light time
    delivered = bus.deliver(until=23.0)
    assert seqs(delivered) == [("b", "a", 0)]
    assert delivered[0][1].payload == {"n": 0}
    assert (bus.stats.sent, bus.stats.delivered) == (1, 1)


def test_a_full_buffer_refuses_and_counts_new_copies(build):
    bus = build(links([False] * 5 + [True]), limit=2)
    assert [bus.send(message(i, i * STEP)) for i in range(5)] == [1, 1, 0, 0, 0]
    assert bus.stats.rejected == 3
    assert [m.seq for _, m in bus.deliver(until=100.0)] == [0, 1]


def test_a_broadcast_is_one_copy_per_other_endpoint_in_arrival_order(build):
    bus = build(links([False, True]))
    assert bus.send(message(0, 0.0, receiver=BROADCAST)) == 2
    assert [r for r, _ in bus.deliver(until=5.0)] == ["c"]
    assert [r for r, _ in bus.deliver(until=13.0)] == ["b"]
    assert (bus.stats.sent, bus.stats.delivered) == (2, 2)


def test_lost_copies_are_counted_not_delivered(build):
    lost = np.zeros((3, 3, 3), dtype=bool)
    lost[1, 0, 1] = True
    bus = build(links([True] * 3, lost=lost))
    for i in range(3):
        bus.send(message(i, i * STEP))
    assert [m.seq for _, m in bus.deliver(until=100.0)] == [0, 2]
    assert bus.stats.lost == 1


def test_unknown_endpoints_are_errors_naming_them(build):
    bus = build(links([True]))
    with pytest.raises(ValueError, match="'z'"):
        bus.send(message(0, 0.0, receiver="z"))


def test_capturing_records_the_copies_that_will_arrive_inside_the_block_only(build):
    lost = np.zeros((4, 3, 3), dtype=bool)
    lost[2, 0, 2] = True  # a -> c sent during step 2 is lost: not a flight
    bus = build(links([False, False, False, True], lost=lost), limit=1)
    flights = deque(maxlen=8)
    bus.send(message(0, 0.0))  # outside any block: not recorded
    with bus.capturing(None):  # a block that samples nothing
        bus.send(message(1, 0.0, receiver="c"))
    with bus.capturing(flights):
        bus.send(message(2, 20.0, receiver=BROADCAST))  # b: buffer full (refused); c: lost
        bus.send(message(3, 20.0, sender="b", receiver="c"))
    bus.send(message(4, 30.0, sender="b", receiver="a"))  # after the block: not recorded
    assert list(flights) == [Flight("b", "c", 20.0, 23.0)]
    assert all(isinstance(f, Flight) for f in flights)
    with bus.capturing(flights):
        bus.send(message(5, 30.0, sender="c", receiver="a"))
    assert flights[-1] == Flight("c", "a", 30.0, 33.0)


def test_close_twice_is_allowed(build):
    bus = build(links([True]))
    bus.close()
    bus.close()


def test_random_lock_step_traffic_matches_the_router_copy_for_copy(build):
    rng = np.random.default_rng(5)
    steps = 40
    open_ = rng.random((steps, 3, 3)) < 0.3
    delay = rng.uniform(1.0, 25.0, (steps, 3, 3))
    lost = rng.random((steps, 3, 3)) < 0.15
    plan = [
        [
            (sender, str(rng.choice([*(e for e in ENDPOINTS if e != sender), BROADCAST])))
            for sender in ENDPOINTS
            if rng.random() < 0.7
        ]
        for _ in range(steps)
    ]

    def drive(bus):
        seq, trace = 0, []
        for step in range(steps):
            for sender, receiver in plan[step]:
                trace.append(bus.send(message(seq, step * STEP, receiver, sender)))
                seq += 1
            trace.append(seqs(bus.deliver(until=(step + 1) * STEP)))
        trace.append(seqs(bus.deliver(until=sys.float_info.max)))
        stats = bus.stats
        return trace, (stats.sent, stats.rejected, stats.delivered, stats.lost)

    table = TabulatedLinks(ENDPOINTS, STEP, open_, delay, lost)
    expected = drive(Router(ENDPOINTS, table, 2))
    assert expected[1][1] > 0 and expected[1][3] > 0  # refusals and losses both occurred
    assert drive(build(TabulatedLinks(ENDPOINTS, STEP, open_, delay, lost), limit=2)) == expected
