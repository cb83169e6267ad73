"""The world server attacked as a peer on loopback would: a real world process, real agents.

Every attacker holds a valid CURVE key (the allow-list's ``intruder``, or an agent's own);
the world runs in its own process (:mod:`tests.live.world_process`), so a crash is an exit
code, and honest agents are ``phobos agent`` processes. Every wait has a deadline.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
import zmq

from phobos.comms.codec import MAGIC, encode
from phobos.comms.message import PROTOCOL_VERSION, Message
from phobos.comms.security import generate_keys, load_keys
from phobos.comms.zmq_transport import ZmqClient
from phobos.live import protocol as p
from tests.live.attackers import Raw, WorldProcess, honest_agents, stop

pytestmark = [pytest.mark.network, pytest.mark.timeout(120)]
AGENTS = ["phobos_grunt", "yinghuo1", "ground_bear_lakes", "ground_ussuriysk", "ground_miyun"]
STATIONS = AGENTS[2:]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    for name in ("world", "dashboard", "intruder", *AGENTS):
        generate_keys(folder, name)
    return folder


class Control:
    """The dashboard's control client, to read the tick and set the speed."""

    def __init__(self, context: zmq.Context, address: str, keys: Path) -> None:
        self.client = ZmqClient(
            address,
            p.DASHBOARD,
            context=context,
            curve=load_keys(keys, p.DASHBOARD),
            server_key=load_keys(keys, p.WORLD).public,
        )
        self.seq = 0

    def __call__(self, command: str, value: float | None = None) -> dict:
        self.seq += 1
        payload = {"command": command, "value": value}
        self.client.send(Message(p.DASHBOARD, p.WORLD, p.CONTROL, 0.0, self.seq, payload))
        deadline = time.monotonic() + 10.0
        while (left := deadline - time.monotonic()) > 0:
            reply = self.client.recv(left)
            if reply is not None and reply.kind == p.CONTROL and reply.seq == self.seq:
                return reply.payload
        raise AssertionError(f"no answer to {command}")

    def wait_tick(self, tick: int, timeout: float) -> int:
        """Poll the world's tick (every 50 ms) until it reaches ``tick``; fail after timeout."""
        deadline = time.monotonic() + timeout
        while (now := self("status")["tick"]) < tick:
            assert time.monotonic() < deadline, f"tick {now} never reached {tick}"
            self.client.recv(0.05)  # the polling interval, on the socket
        return now


def test_oversized_fields_are_refused_in_a_bounded_reply_and_the_world_goes_on(keys) -> None:
    world = WorldProcess(keys, seconds=2.0)
    agents = honest_agents(world.address, keys, STATIONS)
    context = zmq.Context()
    try:
        grunt = Raw(context, world.address, keys, "phobos_grunt")
        refused = grunt.hello(policy="p" * 400_000)  # a 0.4 MB policy label
        assert refused is not None and refused.kind == p.REFUSED, refused
        assert grunt.last_size < 1000 and "policy label longer" in refused.payload
        assert grunt.hello().kind == p.WELCOME
        yinghuo = Raw(context, world.address, keys, "yinghuo1")
        assert yinghuo.hello().kind == p.WELCOME
        obs = yinghuo.recv(timeout=30.0, kinds={p.OBS})
        assert obs is not None
        yinghuo.send(p.ACT, "\x00" * 300_000, seq=obs.seq)  # repr() is 1.2 MB
        error = yinghuo.recv(kinds={p.ERROR})
        assert error is not None and yinghuo.last_size < 1000, error
        rc, result, log = world.finish(30.0)
    finally:
        world.kill()
        stop(agents)
        context.destroy(linger=0)
    assert rc == 0, log[-2000:]
    assert result["steps"] > 10, log[-3000:]
    assert result["records"]["yinghuo1"]["errors"] == 1
    assert len(log) < 20_000  # nothing oversized reached the log


def test_a_valid_key_cannot_take_another_agents_connection(keys) -> None:
    world = WorldProcess(keys, seconds=6.0, speed=20.0)
    agents = honest_agents(world.address, keys, AGENTS)
    context = zmq.Context()
    try:
        control = Control(context, world.address, keys)
        start = control.wait_tick(10, 30.0)
        # The intruder's key, the victim's routing id and name: handover would give it the
        # victim's connection; an act or hello as yinghuo1 must be rejected (wrong User-Id).
        thieves = [
            Raw(context, world.address, keys, name, key="intruder", routing_id=routing_id)
            for name, routing_id in [
                ("yinghuo1", b"yinghuo1"),
                ("intruder", b"ground_miyun"),
                ("dashboard", b"dashboard"),
            ]
        ]
        for thief in thieves:
            thief.send(p.HELLO, {"incarnation": 666, "pid": 0, "policy": "thief"})
            thief.send(p.ACT, 0, seq=start)
            thief.send(p.CONTROL, {"command": "pause"})
        control.wait_tick(start + 30, 20.0)  # the victim and the dashboard are still served
        assert control("status")["paused"] is False
        refused = thieves[1].recv(kinds={p.REFUSED})
        assert refused is not None and "unknown agent id 'intruder'" in refused.payload
        rc, result, log = world.finish(30.0)
    finally:
        world.kill()
        stop(agents)
        context.destroy(linger=0)
    assert rc == 0, log[-2000:]
    victim = result["records"]["yinghuo1"]
    assert (victim["lost"], victim["defaults"], victim["joins"]) == (0, 0, 1), victim
    assert result["rejected"] >= 6 and result["refused"] >= 1


def test_a_tiny_speed_does_not_freeze_the_world(keys) -> None:
    world = WorldProcess(keys, seconds=6.0, speed=20.0)
    agents = honest_agents(world.address, keys, AGENTS)
    context = zmq.Context()
    try:
        control = Control(context, world.address, keys)
        control.wait_tick(5, 30.0)
        before = control("speed", 1e-9)["tick"]
        still = time.monotonic() + 0.3  # 6 periods at the old speed: at most the due step
        while time.monotonic() < still:
            frozen = control("status")["tick"]
            control.client.recv(0.02)
        assert frozen <= before + 1
        assert control("speed", 50.0)["error"] is None
        control.wait_tick(frozen + 20, 3.0)  # 20 steps at 50/s: 0.4 s, if re-based
        assert control("speed", float("nan"))["error"] is not None
        rc, _, log = world.finish(30.0)
    finally:
        world.kill()
        stop(agents)
        context.destroy(linger=0)
    assert rc == 0, log[-2000:]


def fuzz_frames(count: int, seed: int) -> list[list[bytes]]:
    """Bad frames a valid key can send: garbage, truncation, spoofs, wrong kinds, floods."""
    rng = random.Random(seed)
    valid = encode(Message("intruder", "world", p.HELLO, 0.0, 0, {"incarnation": 1}))
    makers = [
        lambda: [rng.randbytes(rng.randrange(1, 64))],
        lambda: [valid[: rng.randrange(1, len(valid))]],
        lambda: [MAGIC + bytes((PROTOCOL_VERSION + 1,)) + valid[3:]],
        lambda: [encode(Message(rng.choice(AGENTS), "world", p.ACT, 0.0, 0, 1))],  # spoof
        lambda: [encode(Message("intruder", "world", rng.choice(["act", "x" * 500]), 0.0, 0))],
        lambda: [encode(Message("intruder", "world", p.HELLO, 0.0, 0, "\x00" * 200_000))],
        lambda: [valid, valid],  # multipart
        lambda: [encode(Message("intruder", "world", p.CONTROL, 0.0, 0, {"command": "pause"}))],
    ]
    return [rng.choice(makers)() for _ in range(count)]


def late_agent(context, address, keys, stop_flag: threading.Event, delay: float) -> None:
    """yinghuo1 answering every observation ``delay`` s after it (just past the deadline)."""
    agent = Raw(context, address, keys, "yinghuo1")
    agent.hello(incarnation=7)
    while not stop_flag.is_set():
        message = agent.recv(timeout=0.2, kinds={p.OBS, p.REJOIN})
        if message is None:
            agent.send(p.PING)
        elif message.kind == p.REJOIN:
            agent.send(p.HELLO, {"incarnation": 7, "pid": 0, "policy": "late"})
        else:
            stop_flag.wait(delay)  # the behaviour under test: an agent this slow
            agent.send(p.ACT, 0, seq=message.seq)
    agent.close()


def reconnecting_agent(context, address, keys, cycles: int, done: threading.Event) -> None:
    """phobos_grunt connecting, saying hello (a new incarnation each time) and leaving."""
    for cycle in range(cycles):
        agent = Raw(context, address, keys, "phobos_grunt")
        agent.hello(incarnation=1000 + cycle)
        obs = agent.recv(timeout=0.05, kinds={p.OBS})
        if obs is not None:
            agent.send(p.ACT, 0, seq=obs.seq)
        agent.close()
    done.set()


def run_targets(
    keys: Path, seconds: float, frames: int, cycles: int, speed: float = 10.0
) -> tuple[dict, list]:
    deadline = 0.25
    world = WorldProcess(keys, seconds=seconds, speed=speed, timeout=deadline)
    agents = honest_agents(world.address, keys, STATIONS)
    context = zmq.Context()
    flag, reconnected = threading.Event(), threading.Event()
    threads = []
    rss = []
    try:
        first = Raw(context, world.address, keys, "phobos_grunt")
        assert first.hello(incarnation=999).kind == p.WELCOME
        threads.append(
            threading.Thread(
                target=late_agent, args=(context, world.address, keys, flag, deadline + 0.05)
            )
        )
        threads[0].start()
        control = Control(context, world.address, keys)
        tick = control.wait_tick(1, 30.0)
        obs = first.recv(timeout=5.0, kinds={p.OBS})
        first.send(p.ACT, 0, seq=obs.seq if obs else tick)
        first.close()
        threads.append(
            threading.Thread(
                target=reconnecting_agent, args=(context, world.address, keys, cycles, reconnected)
            )
        )
        threads[1].start()
        rss.append(world.rss_kib())
        fuzzer = Raw(context, world.address, keys, "intruder")
        batches = fuzz_frames(frames, seed=15)
        spread = max(1, len(batches) // int(seconds * 10))
        for start in range(0, len(batches), spread):
            for frame in batches[start : start + spread]:
                fuzzer.sock.send_multipart(frame)
            control.client.recv(0.1 * 0.8)  # pace the flood over the run, on a socket wait
        reconnected.wait(seconds * 2)
        rss.append(world.rss_kib())
        rc, result, log = world.finish(seconds + 30.0)
    finally:
        flag.set()
        for thread in threads:
            thread.join(10)
        world.kill()
        stop(agents)
        context.destroy(linger=0)
    assert rc == 0, log[-2000:]
    rate = result["steps"] / result["elapsed_s"]
    result["rate"], result["speed"], result["rss"], result["log_bytes"] = rate, speed, rss, len(log)
    return result, rss


def check_targets(result: dict) -> None:
    assert result["rate"] >= 0.9 * result["speed"], result["rate"]
    for station in STATIONS:
        record = result["records"][station]
        assert record["defaults"] == 0 and record["lost"] == 0, (station, record)
    late = result["records"]["yinghuo1"]
    assert late["lost"] == 1 and late["late"] > 0 and late["probation"] > 0, late
    assert result["rejected"] > 0


def test_fuzz_a_late_agent_and_reconnects_cost_the_world_at_most_a_tenth(keys) -> None:
    result, _ = run_targets(keys, seconds=8.0, frames=500, cycles=20)
    check_targets(result)
    assert result["log_bytes"] < 50_000


@pytest.mark.slow
@pytest.mark.parametrize("speed", [10.0, 20.0])
def test_targets_5000_frames_200_reconnects_memory_flat(keys, speed) -> None:
    result, rss = run_targets(keys, seconds=30.0, frames=5000, cycles=200, speed=speed)
    print(
        f"rate {result['rate']:.2f} of {result['speed']} steps/s, rss {rss} KiB, "
        f"log {result['log_bytes']} bytes, rejected {result['rejected']}"
    )
    check_targets(result)
    assert rss[-1] - rss[0] < 20_000
    assert result["log_bytes"] < 100_000


def test_a_reply_that_cannot_be_encoded_is_counted_not_raised(keys) -> None:
    from phobos.envs import make_config
    from phobos.live.world import WorldServer, WorldSettings

    world = WorldServer(
        "orbit-scheduling-v0",
        make_config("orbit-scheduling-v0"),
        keys=keys,
        settings=WorldSettings(relay="memory"),
        telemetry_address=None,
    )
    try:
        assert world.exchange.send(b"nobody", "yinghuo1", p.ERROR, "\x00" * 2_000_000) is False
        assert world.exchange.send(b"nobody", "yinghuo1", p.ERROR, object()) is False
    finally:
        world.close()
    assert world.stats.rejected == 2


def test_a_second_hello_on_the_same_connection_keeps_the_step_waiting_for_it(keys) -> None:
    from phobos import config as config_tools
    from phobos.envs import make_config
    from phobos.live.world import WorldServer, WorldSettings

    config = config_tools.replace(make_config("orbit-scheduling-v0"), horizon_steps=4000)
    settings = WorldSettings(join_timeout=0.0, action_timeout=5.0, relay="memory")
    world = WorldServer("orbit-scheduling-v0", config, keys=keys, settings=settings)
    context = zmq.Context()
    thread = threading.Thread(target=world.run, kwargs={"steps": 6}, daemon=True)
    try:
        agent = Raw(context, world.address, keys, "yinghuo1")
        thread.start()
        assert agent.hello().kind == p.WELCOME
        hello = {"incarnation": 1, "pid": 0, "policy": "raw"}
        for _ in range(6):
            obs = agent.recv(timeout=10.0, kinds={p.OBS, p.END})
            if obs is None or obs.kind == p.END:
                break
            agent.send(p.HELLO, hello)  # the same connection says hello again: still awaited
            agent.send(p.ACT, 1, seq=obs.seq)
        thread.join(30)
        assert not thread.is_alive()
    finally:
        world.stop()
        context.destroy(linger=0)
        world.close()
    record = world.records["yinghuo1"]
    assert record.lost == 0 and record.actions >= 5, record


def test_a_multipart_frame_is_rejected_whole_not_read_as_its_last_part(keys) -> None:
    world = WorldProcess(keys, seconds=3.0, speed=20.0)
    agents = honest_agents(world.address, keys, AGENTS)
    context = zmq.Context()
    try:
        control = Control(context, world.address, keys)
        control.wait_tick(5, 30.0)
        intruder = Raw(context, world.address, keys, "intruder")
        hello = encode(Message("intruder", "world", p.HELLO, 0.0, 0, {"incarnation": 1}))
        intruder.sock.send_multipart([hello, hello])
        # Read as its last part, the hello would be answered "unknown agent id"; whole, it
        # is rejected unanswered. The same hello in one frame is answered: the world serves.
        assert intruder.recv(timeout=2.0, kinds={p.REFUSED}) is None
        intruder.sock.send(hello)
        refused = intruder.recv(timeout=5.0, kinds={p.REFUSED})
        assert refused is not None and "unknown agent id 'intruder'" in refused.payload
        rc, result, log = world.finish(30.0)
    finally:
        world.kill()
        stop(agents)
        context.destroy(linger=0)
    assert rc == 0, log[-2000:]
    assert "multipart" in log and result["rejected"] >= 1
