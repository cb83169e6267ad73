"""The dashboard: throttled Server-Sent Events, controls, and a real Chromium loading it."""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.request
from urllib.parse import urlparse

import pytest

from phobos import config as config_tools
from phobos.demo.browser import CHROMIUM, inspect_dashboard
from phobos.envs import make_config
from phobos.live.world import WorldSettings
from tests.demo.conftest import eventually

pytestmark = [pytest.mark.network, pytest.mark.timeout(90)]


def token_of(url: str) -> str:
    return urlparse(url).query.removeprefix("token=")


def base(url: str) -> str:
    return url.split("?", 1)[0]


def get(url: str, path: str):
    request = urllib.request.Request(
        base(url) + path, headers={"Authorization": f"token {token_of(url)}"}
    )
    return urllib.request.urlopen(request, timeout=10)


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        base(url) + "api/control",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"token {token_of(url)}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def count_events(url: str, seconds: float) -> list[dict]:
    """Read the event stream for ``seconds``; return the snapshots received."""
    parts = urlparse(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    connection.request("GET", "/api/events", headers={"Authorization": f"token {token_of(url)}"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    events, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = response.readline()
        if line.startswith(b"data: "):
            events.append(json.loads(line[6:]))
    connection.close()
    return events


def test_updates_are_throttled_and_controls_reach_the_world(start_demo) -> None:
    config = config_tools.replace(make_config("orbit-scheduling-v0"), horizon_steps=96)
    running = start_demo(WorldSettings(speed=0.0, action_timeout=1.0), config, seconds=60.0)
    demo = running.demo
    eventually(lambda: demo.world.tick > 50, 30, "the world to step")

    events = count_events(demo.url, 2.0)
    ticks = [event["state"]["tick"] for event in events if event["state"]]
    assert 5 <= len(events) <= 2.0 * 10 + 2  # at most 10 updates a second
    assert ticks[-1] - ticks[0] > 100  # while the world stepped far faster

    assert post(demo.url, {"command": "pause"})["paused"] is True
    paused_at = demo.world.tick
    eventually(lambda: count_events(demo.url, 0.3), 10, "an update while paused")
    assert demo.world.tick <= paused_at + 1
    reply = post(demo.url, {"command": "speed", "value": 50})
    assert reply["speed"] == 50.0 and reply["error"] is None
    assert post(demo.url, {"command": "speed", "value": -1})["error"]
    assert post(demo.url, {"command": "resume"})["paused"] is False
    eventually(lambda: demo.world.tick > paused_at + 5, 10, "steps after resuming")

    with get(demo.url, "api/episode") as response:
        episode = json.loads(response.read())
    assert episode["kind"] == "orbit" and len(episode["tracks"]) == 3
    with urllib.request.urlopen(demo.url, timeout=10) as response:
        page = response.read().decode()
    assert "/static/app.js" in page and "http" not in page.replace("http-equiv", "")


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed")
@pytest.mark.parametrize("env_id", ["orbit-scheduling-v0", "phobos-sampling-v0"])
def test_chromium_draws_the_map_and_the_step_counter_advances(start_demo, tmp_path, env_id) -> None:
    running = start_demo(WorldSettings(speed=30.0, action_timeout=1.0), env_id=env_id, seconds=60)
    screenshot = tmp_path / "dashboard.png"
    result = inspect_dashboard(running.demo.url, screenshot=screenshot, timeout=45)
    assert result["drawn"] >= 1
    assert result["later_step"] > result["first_step"]
    assert result["lit_pixels"] > 1000  # the orbits (or the site) are on the canvas
    assert screenshot.stat().st_size > 10_000
