"""The demo with agent-sent messages through the DTN relay process: kills, and what it leaves.

kill -9 of the relay mid-run, of an agent, and of both: the episode completes, and the run's
``summary.json`` counts 0 lost and 0 duplicated from the agents' ledgers, the relay's journal
and the world, each counted on its own (:mod:`phobos.demo.summary`).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from phobos import config as config_tools
from phobos.agents import make_team
from phobos.envs import make, make_config
from phobos.live.world import WorldSettings
from tests.demo.conftest import eventually

pytestmark = [pytest.mark.network, pytest.mark.timeout(120)]
ENV = "orbit-scheduling-v0"
STEPS = 160


def config():
    return config_tools.replace(make_config(ENV), horizon_steps=STEPS, message_loss=0.1)


def in_process_return(seed: int) -> float:
    env = make(ENV, config())
    team = make_team("greedy", env)
    observations, _ = env.reset(seed=seed)
    for i, agent in enumerate(env.possible_agents):
        team[agent].reset(seed=seed + i)
    total = 0.0
    while env.agents:
        actions = {agent: int(team[agent](observations[agent])) for agent in env.agents}
        observations, rewards, *_ = env.step(actions)
        total += next(iter(rewards.values()))
    return total


def run_with_kills(start_demo, victims: tuple[str, ...], tmp_path: Path):
    settings = WorldSettings(speed=40.0, action_timeout=1.0, relay="process")
    running = start_demo(settings, config(), episodes=1)
    demo = running.demo
    eventually(lambda: demo.world.tick >= 40, 60, "40 steps")
    for victim in victims:
        demo.supervisor.process(victim).send_signal(signal.SIGKILL)
    stats = running.finish(90)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    return demo, stats, summary


def check_nothing_lost(demo, stats, summary, victims) -> dict:
    assert stats.episodes == 1 and stats.steps == STEPS, stats
    for victim in victims:
        assert demo.supervisor.records[victim].restarts >= 1, victim
    m = summary["messages"]
    assert m["lost"] == 0 and m["duplicated"] == 0, m
    assert set(m["by_agent"]) == set(demo.agents)
    # The parts, each from its own record, add up.
    assert m["authored"] == m["accepted"] + m["refused"], m
    assert m["sent"] == m["delivered"] + m["held"] + m["dropped"]["buffer"] + m["dropped"]["loss"]
    assert m["received"] == m["delivered"] - m["relay"]["owed"], m
    assert m["dropped"]["loss"] > 0, m  # the channel's loss applied
    return m


def test_relay_killed_mid_run_resumes_from_its_journal(start_demo, tmp_path: Path) -> None:
    demo, stats, summary = run_with_kills(start_demo, ("relay",), tmp_path)
    m = check_nothing_lost(demo, stats, summary, ("relay",))
    # Every agent kept answering: the trajectory is the in-process one, kill or not.
    assert all(r.defaults == 0 for r in demo.world.records.values()), demo.world.records
    assert stats.returns == [pytest.approx(in_process_return(0))]
    assert m["authored"] == m["accepted"] == STEPS * len(demo.agents)


def test_agent_killed_mid_run_keeps_its_ledger(start_demo, tmp_path: Path) -> None:
    demo, stats, summary = run_with_kills(start_demo, ("yinghuo1",), tmp_path)
    m = check_nothing_lost(demo, stats, summary, ("yinghuo1",))
    record = demo.world.records["yinghuo1"]
    assert record.restarts == 1 and record.defaults > 0
    # One message per observation it answered, in both lives (a restart within the world's
    # deadline may answer the step its predecessor died in: a second message for that step).
    assert m["by_agent"]["yinghuo1"]["authored"] >= record.actions
    assert m["by_agent"]["yinghuo1"]["received"] > 0


def test_relay_and_agent_killed_together(start_demo, tmp_path: Path) -> None:
    victims = ("relay", "phobos_grunt")
    demo, stats, summary = run_with_kills(start_demo, victims, tmp_path)
    check_nothing_lost(demo, stats, summary, victims)
