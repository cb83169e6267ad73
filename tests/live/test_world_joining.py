"""Agents joining a world: who is missing is published, and a first deadline has a grace.

Raw CURVE clients on 127.0.0.1 drive the world by hand; every wait has a deadline. A slow
agent is simulated by answering after a delay (what the test is about, not synchronisation).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import zmq

from phobos import config as config_tools
from phobos.comms.security import generate_keys
from phobos.comms.telemetry import TelemetrySubscriber
from phobos.envs import make, make_config
from phobos.live import protocol as p
from phobos.live.world import WorldServer, WorldSettings
from tests.live.attackers import Raw

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]
ENV = "orbit-scheduling-v0"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    for name in ("world", "dashboard", *make(ENV).possible_agents):
        generate_keys(folder, name)
    return folder


def slow_first_answer(settings: WorldSettings, keys: Path, delays: list[float]):
    """yinghuo1 alone (the others never join) answers step ``k`` after ``delays[k]`` s.

    It says hello while the world waits for the others (``join_timeout``), so it is alive
    and has not answered yet when the first step's observation goes out.
    """
    config = config_tools.replace(make_config(ENV), horizon_steps=4000)
    world = WorldServer(ENV, config, keys=keys, settings=settings)
    context = zmq.Context()
    thread = threading.Thread(target=world.run, kwargs={"steps": len(delays)}, daemon=True)
    slow = threading.Event()  # never set: waiting on it is the agent being slow
    try:
        thread.start()  # it waits join_timeout for the others, serving hellos meanwhile
        agent = Raw(context, world.address, keys, "yinghuo1")
        assert agent.hello().kind == p.WELCOME
        for delay in delays:
            obs = agent.recv(timeout=10.0, kinds={p.OBS, p.END})
            if obs is None or obs.kind == p.END:
                break
            slow.wait(delay)
            agent.send(p.ACT, 1, seq=obs.seq)
        thread.join(30)
        assert not thread.is_alive()
    finally:
        world.stop()
        context.destroy(linger=0)
        world.close()
    return world.records["yinghuo1"]


def test_a_slow_first_answer_is_waited_for_within_the_grace(keys) -> None:
    settings = WorldSettings(
        join_timeout=1.5, action_timeout=0.3, first_action_grace=5.0, relay="memory"
    )
    record = slow_first_answer(settings, keys, [1.2, 0.0, 0.0, 0.0])
    assert record.lost == 0 and record.defaults == 0 and record.actions == 4, record


def test_without_a_grace_the_slow_first_answer_is_lost(keys) -> None:
    settings = WorldSettings(join_timeout=1.5, action_timeout=0.3, relay="memory")
    record = slow_first_answer(settings, keys, [1.2, 0.0, 0.0, 0.0])
    assert record.lost == 1 and record.defaults >= 1, record


def test_the_grace_covers_only_the_first_answer(keys) -> None:
    settings = WorldSettings(
        join_timeout=1.5, action_timeout=0.3, first_action_grace=5.0, relay="memory"
    )
    record = slow_first_answer(settings, keys, [0.0, 1.2, 0.0, 0.0])
    assert record.lost == 1, record


def test_while_agents_are_missing_the_world_says_who_and_does_not_step(keys) -> None:
    settings = WorldSettings(join_timeout=20.0, action_timeout=0.5, relay="memory")
    world = WorldServer(ENV, keys=keys, settings=settings)
    subscriber = TelemetrySubscriber(world.telemetry_address, (p.TELEMETRY_STATE,))
    context = zmq.Context()
    thread = threading.Thread(target=world.run, kwargs={"steps": 1}, daemon=True)
    agents = list(world.agents)

    def waiting_state(joined: int) -> dict:
        deadline = time.monotonic() + 15.0  # 10 updates a second are published
        while time.monotonic() < deadline:
            message = subscriber.recv(0.5)
            state = message.payload if message is not None else {}
            if state.get("waiting", {}).get("joined") == joined:
                return state
        raise AssertionError(f"no waiting state with {joined} joined")

    try:
        thread.start()
        state = waiting_state(0)
        assert state["waiting"]["expected"] == 5 and state["waiting"]["missing"] == agents
        raw = Raw(context, world.address, keys, "yinghuo1")
        assert raw.hello().kind == p.WELCOME
        state = waiting_state(1)
        assert state["waiting"]["missing"] == [a for a in agents if a != "yinghuo1"]
        assert state["tick"] == 0 and world.tick == 0  # nobody flies defaults meanwhile
        assert state["agents"]["yinghuo1"]["status"] == "alive"
        assert state["agents"]["phobos_grunt"]["status"] == "waiting"
    finally:
        world.stop()
        thread.join(10)
        subscriber.close()
        context.destroy(linger=0)
        world.close()
    assert world.tick == 0


def test_timeline_spans_mark_safe_defaults_and_lost_agents() -> None:
    from phobos.live.world.records import LOST, AgentRecord, Progress, WorldStats
    from phobos.live.world.telemetry import DEFAULTED, OWN, WorldTelemetry
    from phobos.live.world.telemetry import LOST as LOST_MARK
    from phobos.live.world.views import TelemetryView

    records = {"a": AgentRecord(status="alive"), "b": AgentRecord(status="alive")}
    progress = Progress()
    telemetry = WorldTelemetry(None, 10.0, None, TelemetryView(), progress, records, WorldStats())
    telemetry.begin_episode({}, ["a", "b"])
    for step, defaulted in enumerate([(), ("a",), ("a",), ()]):
        if step == 2:
            records["a"].status = LOST
        progress.defaulted = defaulted
        telemetry.note_executed(step, {"a": 0 if defaulted else 2, "b": 1})
    spans = [[0, 2, OWN], [1, 0, DEFAULTED], [2, 0, LOST_MARK], [3, 2, OWN]]
    assert telemetry.timeline["a"] == spans
    assert telemetry.timeline["b"] == [[0, 1, OWN]]


@pytest.mark.parametrize("env_id", [ENV, "phobos-sampling-v0"])
def test_one_activity_per_colour_on_every_row(env_id) -> None:
    from phobos.live.world.views import view_for

    env = make(env_id)
    legend = view_for(env).activities(env)
    names, of = legend["names"], legend["of"]
    assert len(names) == len(set(names)) and "idle" in names
    for agent in env.possible_agents:
        actions = env.action_names(agent)
        assert len(of[agent]) == len(actions)
        assert names[of[agent][0]] == "idle"  # every agent's safe default, one colour
    if env_id == ENV:
        assert names[of["phobos_grunt"][4]] == names[of["yinghuo1"][4]] == "observe"
        assert len(names) == 7
    else:
        assert {"send", "image", "spectrometer", "sample", "advise"} <= set(names)


def test_messages_are_noted_on_every_step_an_update_follows() -> None:
    """At a set speed the world publishes while it waits for the next step, so the messages
    sent in a step are noted (drawn in flight) whenever an update comes before the next."""
    from phobos.comms.telemetry import TelemetryPublisher
    from phobos.live.world.records import AgentRecord, Progress, WorldStats
    from phobos.live.world.telemetry import WorldTelemetry
    from phobos.live.world.views import TelemetryView

    publisher = TelemetryPublisher("tcp://127.0.0.1:*")
    try:
        progress = Progress()
        records = {"a": AgentRecord()}
        telemetry = WorldTelemetry(
            publisher, 10.0, None, TelemetryView(), progress, records, WorldStats()
        )
        telemetry.publish_waiting(["a"], 1.0)  # an update now: the next is 0.1 s away
        now = time.monotonic()
        assert not telemetry.due(now)
        progress.speed = 4.0  # a step every 0.25 s: the next update comes before it
        assert telemetry.shows_this_step(now)
        progress.speed = 1000.0  # a step every ms: not on this one
        assert not telemetry.shows_this_step(now)
        progress.speed = 0.0  # flat out: only when an update is due
        assert not telemetry.shows_this_step(now)
        assert telemetry.shows_this_step(now + 0.2)
    finally:
        publisher.close()
