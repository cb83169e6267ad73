"""The talker hands the rule the copies the side channel names: it waits for a late one.

A science team whose observation counts a copy the relay has not delivered yet waits for it,
saying hello (a restarted relay resends what it owes on hello), and builds its advice from
it; a copy that never comes costs that step's messages, counted, after a bounded wait.
A bare CURVE ROUTER stands in for the relay. Waits are on sockets and joins.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import zmq

from phobos import config as config_tools
from phobos.comms.codec import decode, encode
from phobos.comms.message import Message
from phobos.comms.security import generate_keys
from phobos.envs import make_config
from phobos.envs.sampling import PhobosSamplingEnv
from phobos.envs.sampling.config import LANDER, SCIENCE_TEAM
from phobos.live.dtn import protocol as r
from phobos.live.dtn.talker import AgentTalk

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]


def data_copy() -> Message:
    report = {
        "images": [[[0, 1, 2], [0, 0, 1], [1, 1, 1], [3.0, 4.5, 2.25]]],
        "spectra": [],
        "attempted": [],
        "battery": 0.5,
        "container": 0.0,
        "classes": 0,
        "sampler_ok": True,
    }
    return Message(LANDER, SCIENCE_TEAM, "data", 0.0, 0, report)


@pytest.fixture
def setup(tmp_path: Path):
    folder = tmp_path / "keys"
    relay_keys, team_keys = generate_keys(folder, "relay"), generate_keys(folder, SCIENCE_TEAM)
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    router.curve_server = True
    router.curve_secretkey, router.curve_publickey = relay_keys.secret, relay_keys.public
    port = router.bind_to_random_port("tcp://127.0.0.1")
    env = PhobosSamplingEnv(config_tools.replace(make_config("phobos-sampling-v0")))
    observations, _ = env.reset(seed=0)
    talk = AgentTalk(
        SCIENCE_TEAM, f"tcp://127.0.0.1:{port}", team_keys, relay_keys.public, context, env,
        retry=0.05, await_timeout=2.0,
    )  # fmt: skip
    yield router, talk, observations[SCIENCE_TEAM]
    talk.close()
    router.close(linger=0)
    context.destroy(linger=0)


def serve(router: zmq.Socket, hellos_before_deliver: int, seen: list) -> None:
    """Answer the talker's hellos; after ``hellos_before_deliver`` of them, deliver the copy."""
    while router.poll(3000):
        ident, frame = router.recv_multipart()
        message = decode(frame, r.MAX_FRAME_BYTES)
        seen.append(message.kind)
        if message.kind == r.SUBMIT:
            return
        if message.kind == r.HELLO and seen.count(r.HELLO) == hellos_before_deliver:
            payload = [1, [r.copy_fields(SCIENCE_TEAM, data_copy())], []]
            deliver = Message(r.RELAY, SCIENCE_TEAM, r.DELIVER, 0.0, 0, payload)
            router.send_multipart([ident, encode(deliver, r.MAX_FRAME_BYTES)])


def test_a_late_copy_is_waited_for_and_folded(setup) -> None:
    router, talk, observation = setup
    seen: list = []
    # The first hello comes on connecting; the copy comes only after the talker's next one.
    thread = threading.Thread(target=serve, args=(router, 2, seen))
    thread.start()
    sensing = {"episode": 1, "received": [[LANDER, 0]]}
    cell = 1 + 1  # cell 1 was imaged in the copy: the team may advise it once it holds it
    assert talk.submit(1, 5, cell, {**observation, "action_mask": _advisable(observation)},
                       sensing) == 1  # fmt: skip
    thread.join(10)
    assert talk.rule_errors == 0
    assert seen.count(r.HELLO) >= 2 and seen[-1] == r.SUBMIT
    (fields,) = [v for k, v in talk.ledger.authored.items() if k[0] == 1]
    assert fields[1] == "advice" and fields[4]["ranking"][0] == 1


def test_a_copy_that_never_comes_costs_the_steps_messages(setup) -> None:
    router, talk, observation = setup
    seen: list = []
    thread = threading.Thread(target=serve, args=(router, 10**6, seen))
    thread.start()
    sensing = {"episode": 1, "received": [[LANDER, 0]]}
    assert talk.submit(1, 5, 2, {**observation, "action_mask": _advisable(observation)},
                       sensing) == 0  # fmt: skip
    thread.join(10)
    assert talk.rule_errors == 1 and not talk.ledger.authored
    assert seen.count(r.HELLO) >= 3 and seen[-1] == r.SUBMIT  # it kept asking, then gave up


def _advisable(observation):
    mask = observation["action_mask"].copy()
    mask[1:] = 1
    return mask
