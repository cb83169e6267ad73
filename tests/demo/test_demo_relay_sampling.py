"""The sampling demo with agent-sent messages: the DTN relay, or the science team, killed.

The lander's data products and the science team's advice cross the relay process; kill -9 of
the relay mid-run loses and duplicates nothing (``summary.json``), and the episode's
delivered-message log and return are the in-process ones.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from phobos import config as config_tools
from phobos.envs import make_config
from phobos.live.world import WorldSettings
from phobos.live.world.relay_bus import ProcessRelayBus
from tests.demo.conftest import eventually
from tests.live.test_dtn_relay_sampling import TEAM, in_process, normal

pytestmark = [pytest.mark.network, pytest.mark.timeout(120)]
ENV = "phobos-sampling-v0"
STEPS = 96


def config():
    return config_tools.replace(make_config(ENV), horizon_steps=STEPS, message_loss=0.1)


def test_sampling_relay_killed_mid_run(start_demo, tmp_path: Path) -> None:
    settings = WorldSettings(speed=40.0, action_timeout=1.0, relay="process")
    running = start_demo(settings, config(), env_id=ENV, policy=TEAM, episodes=1)
    demo = running.demo
    assert demo.settings.relay == "process"  # no fallback to world-carried messages
    eventually(lambda: demo.world.tick >= 30, 60, "30 steps")
    demo.supervisor.process("relay").send_signal(signal.SIGKILL)
    stats = running.finish(90)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())

    assert stats.episodes == 1 and stats.steps == STEPS, stats
    assert demo.supervisor.records["relay"].restarts >= 1
    assert all(r.defaults == 0 for r in demo.world.records.values()), demo.world.records
    m = summary["messages"]
    assert m["lost"] == 0 and m["duplicated"] == 0, m
    assert m["dropped"]["loss"] > 0, m
    steps, log = in_process(config(), 0)
    assert normal(demo.world.bus.log) == normal(log)
    assert stats.returns == [pytest.approx(sum(r["phobos_grunt"] for _, r in steps))]
    assert m["authored"] == m["accepted"] == demo.world.bus.built


def test_sampling_science_team_killed_mid_run_advises_from_its_ledger(
    start_demo, tmp_path: Path, monkeypatch
) -> None:
    # The world runs in this process: note every message its environment builds (the bus
    # counts them, the agents send them).
    built = []
    send = ProcessRelayBus.send
    monkeypatch.setattr(ProcessRelayBus, "send", lambda bus, m: built.append(m) or send(bus, m))
    settings = WorldSettings(speed=8.0, action_timeout=1.0, relay="process")
    running = start_demo(settings, config(), env_id=ENV, policy=TEAM, episodes=1)
    demo = running.demo
    eventually(lambda: demo.world.tick >= 20, 60, "20 steps")
    killed_at = demo.world.tick
    demo.supervisor.process("science_team").send_signal(signal.SIGKILL)
    stats = running.finish(90)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())

    assert stats.episodes == 1, stats
    record = demo.world.records["science_team"]
    assert record.restarts == 1 and record.defaults > 0
    m = summary["messages"]
    assert m["lost"] == 0 and m["duplicated"] == 0, m
    # Where the environment and the restarted team both advised at a step, they advised the
    # same, float64 values and all: the team's belief was rebuilt from its ledger's copies.
    env_advice = {msg.send_time: msg.payload for msg in built if msg.kind == "advice"}
    step_seconds = config().step_seconds
    later = [
        (msg.send_time, msg.payload)
        for _, msg in demo.world.bus.log
        if msg.kind == "advice" and msg.send_time > killed_at * step_seconds
    ]
    both = [(t, p) for t, p in later if t in env_advice]
    assert len(both) >= 2, (later, sorted(env_advice))
    for t, payload in both:
        assert payload == {k: list(v) for k, v in env_advice[t].items()}, t
