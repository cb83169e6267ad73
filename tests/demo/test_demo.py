"""The live demonstration end to end: real agent processes over tcp+CURVE, kills, restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from phobos import config as config_tools
from phobos.comms.security import generate_keys
from phobos.envs import make, make_config
from phobos.live.runtime import default_policy
from phobos.live.world import WorldSettings
from tests.demo.conftest import eventually

pytestmark = [pytest.mark.network, pytest.mark.timeout(90)]
REPO = Path(__file__).resolve().parents[2]
ENV = "orbit-scheduling-v0"


def test_phobos_demo_runs_a_few_hundred_steps_headless() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "phobos.cli", "demo", "--steps", "300", "--speed", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dashboard: http://127.0.0.1:" in result.stdout
    expected = default_policy(make(ENV))  # trained when that team exists, else greedy
    assert f"flying policy {expected}" in result.stdout
    assert "300 steps in" in result.stdout
    agents = [line for line in result.stdout.splitlines() if "safe defaults" in line]
    assert len(agents) == 5
    assert all("actions 300, safe defaults 0, errors 0, restarts 0" in a for a in agents)


def test_killed_agent_is_restarted_and_the_episode_loses_no_message(
    start_demo, tmp_path: Path
) -> None:
    keys = tmp_path / "run" / "keys"
    generate_keys(keys, "intruder")  # on the allow-list, but no agent of the environment
    other = tmp_path / "other"  # a yinghuo1 key the world never heard of
    generate_keys(other, "yinghuo1")
    config = config_tools.replace(make_config(ENV), message_loss=0.0, message_buffer=10_000)
    settings = WorldSettings(speed=40.0, action_timeout=0.5)  # 7 s: room for the restart
    running = start_demo(settings, config, episodes=1)
    demo = running.demo
    world, supervisor = demo.world, demo.supervisor
    (other / "world.key").write_bytes((keys / "world.key").read_bytes())

    eventually(lambda: world.tick >= 40, 30, "40 steps")
    victim = supervisor.process("yinghuo1")
    victim.send_signal(signal.SIGKILL)
    bad = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "phobos.cli",
                "agent",
                "--id",
                name,
                "--world",
                world.address,
                "--keys",
                str(folder),
                "--connect-timeout",
                "2",
                "--policy",  # no torch or Ray to import: refused while the episode runs
                "greedy",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name, folder in (("intruder", keys), ("yinghuo1", other))
    }
    outputs = {name: process.communicate(timeout=30) for name, process in bad.items()}
    stats = running.finish(60)

    # The episode completed, and the killed agent came back into it.
    assert stats.episodes == 1 and stats.steps == config.horizon_steps
    record = world.records["yinghuo1"]
    assert supervisor.records["yinghuo1"].restarts >= 1
    assert record.restarts == 1 and record.status == "alive"
    assert record.defaults > 0  # safe defaults while it was dead, flagged
    assert record.actions + record.defaults == config.horizon_steps
    assert record.actions > 40  # it acted before the kill and again after the restart
    # Every observation sent to it was answered in time, answered late (stale: after its
    # restart it is on probation, not waited for), counted when its process died, or left
    # unanswered on its old connection when the restarted process said hello first.
    assert record.obs_sent - record.actions <= record.lost + record.stale + record.abandoned
    assert all(r.defaults == 0 for a, r in world.records.items() if a != "yinghuo1")

    # No intent message lost: each accepted copy was delivered or is still held.
    bus = world.bus
    router = bus.router
    counts = bus.stats
    assert counts.rejected == 0 and counts.lost == 0
    unroutable = router.held(sys.float_info.max)  # held for good: no contact left this episode
    assert counts.delivered + router.in_flight() + unroutable == counts.sent
    assert bus.handed == counts.delivered  # every delivered copy crossed the sockets

    # Bad input was refused, logged and counted, and the demo went on.
    assert bad["intruder"].returncode == 2, outputs["intruder"][1][-2000:]
    assert "unknown agent id 'intruder'" in outputs["intruder"][1]
    assert bad["yinghuo1"].returncode == 3
    assert "allow-list" in outputs["yinghuo1"][1]
    assert world.stats.refused == 1
    assert world.authenticator.rejected >= 1
