"""One seeded episode gives the same trajectory and message log over every transport."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import zmq

from phobos.agents.orbit_greedy import greedy_team
from phobos.comms.bus import RELAY, RelayedBus
from phobos.comms.router import Router
from phobos.comms.transport import InProcessHub
from phobos.comms.zmq_transport import ZmqClient, ZmqServer
from phobos.envs.orbit_scheduling import OrbitSchedulingConfig, OrbitSchedulingEnv

CONFIG = OrbitSchedulingConfig(horizon_steps=96, message_loss=0.2, message_buffer=6)
_names = itertools.count()


class LoggingBus:
    """Any message bus, recording what it delivers to the environment (the message log)."""

    def __init__(self, inner):
        self.inner = inner
        self.stats = inner.stats
        self.log = []

    def send(self, message):
        return self.inner.send(message)

    def deliver(self, until):
        delivered = self.inner.deliver(until)
        self.log.extend(delivered)
        return delivered

    def capturing(self, into):
        return self.inner.capturing(into)

    def close(self):
        self.inner.close()


def logged(factory):
    """The bus factory ``factory``, each bus it builds wrapped in a :class:`LoggingBus`."""
    return lambda endpoints, links, limit: LoggingBus(factory(endpoints, links, limit))


def hub_bus(endpoints, links, limit):
    hub = InProcessHub(codec=True)
    server = hub.endpoint(RELAY)
    clients = {name: hub.endpoint(name, via=RELAY) for name in endpoints}
    return RelayedBus(endpoints, links, limit, server=server, clients=clients)


def zmq_bus_factory(scheme, context):
    def build(endpoints, links, limit):
        if scheme == "inproc":
            address = f"inproc://relay-{next(_names)}"
        else:
            address = "tcp://127.0.0.1:*"
        server = ZmqServer(address, RELAY, context=context)
        clients = {name: ZmqClient(server.address, name, context=context) for name in endpoints}
        return RelayedBus(endpoints, links, limit, server=server, clients=clients)

    return build


def run_episode(env, seed):
    team = greedy_team(env.config)
    rng = np.random.default_rng(seed)
    observations, _ = env.reset(seed=seed)
    trajectory = []
    while env.agents:
        actions = {}
        for agent in env.agents:
            # Mix greedy and random choices so that many activities and messages occur.
            if rng.random() < 0.3:
                actions[agent] = int(rng.integers(env.action_space(agent).n))
            else:
                actions[agent] = team[agent](observations[agent])
        observations, rewards, _, _, infos = env.step(actions)
        trajectory.append(
            (
                {
                    a: o["observations"].tobytes() + o["action_mask"].tobytes()
                    for a, o in observations.items()
                },
                rewards,
            )
        )
    log = sorted(
        (receiver, m.sender, m.seq, m.send_time, tuple(m.payload)) for receiver, m in env.router.log
    )
    return trajectory, log, infos["phobos_grunt"]["episode"]


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.mark.network
@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", ["hub+codec", "zmq-inproc", "zmq-tcp"])
def test_episode_over_sockets_equals_in_process(transport, context):
    reference = OrbitSchedulingEnv(CONFIG, message_bus=logged(Router))
    expected = run_episode(reference, seed=21)
    if transport == "hub+codec":
        bus = hub_bus
    else:
        bus = zmq_bus_factory(transport.removeprefix("zmq-"), context)
    env = OrbitSchedulingEnv(CONFIG, message_bus=logged(bus))
    try:
        actual = run_episode(env, seed=21)
    finally:
        env.close()
    assert actual[2] == expected[2]  # episode totals, message counters included
    assert actual[1] == expected[1]  # every delivered copy, same content
    assert actual[0] == expected[0]  # observations, masks and rewards, step for step
    assert expected[2]["messages_lost"] > 0 and expected[2]["messages_rejected"] > 0
