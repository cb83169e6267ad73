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


def overlapping(labels: list[dict]) -> list[tuple[str, str]]:
    """Pairs of placed labels whose boxes overlap."""
    return [
        (a["text"], b["text"])
        for i, a in enumerate(labels)
        for b in labels[i + 1 :]
        if a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    ]


needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed"
)


@needs_chromium
def test_orbit_dashboard_has_a_legend_labelled_stations_and_tooltips(start_demo, tmp_path) -> None:
    running = start_demo(WorldSettings(speed=30.0, action_timeout=1.0), seconds=60)
    screenshot = tmp_path / "dashboard-orbit.png"
    result = inspect_dashboard(
        running.demo.url,
        screenshot=screenshot,
        timeout=45,
        until="window.phobosDashboard.step >= 40 && window.phobosDashboard.flightsSeen > 0",
        hover_timeline=True,
    )
    # One legend: every activity once, then the two marks.
    activities = ["idle", "charge", "downlink", "occultation", "observe"]
    assert result["legend"][:5] == activities
    assert result["legend"][-2:] == ["safe default", "lost / not joined"]
    # Stations labelled on the map; Earth and the spacecraft too; nothing overlaps.
    labels = result["labels"]
    stations = sorted(label["text"] for label in labels if label["kind"] == "station")
    assert stations == ["bear lakes", "miyun", "ussuriysk"]
    assert {"earth", "body"} <= {label["kind"] for label in labels}
    assert not overlapping(labels)
    assert result["flight_labels"] and all(t.endswith(" s") for t in result["flight_labels"])
    # The tooltip names the agent, the step and the activity.
    assert result["tooltip"].startswith("phobos_grunt, step ")
    assert any(f": {name} (" in result["tooltip"] for name in activities)
    assert screenshot.stat().st_size > 10_000


@needs_chromium
def test_sampling_dashboard_shows_the_sky_and_messages_to_and_from_earth(
    start_demo, tmp_path
) -> None:
    # The demo's own default team for sampling (policy None): its lander talks to Earth.
    settings = WorldSettings(speed=8.0, action_timeout=1.0, first_action_grace=20.0)
    running = start_demo(settings, env_id="phobos-sampling-v0", policy=None, seconds=60)
    assert running.demo.policy == "cautious"
    screenshot = tmp_path / "dashboard-sampling.png"
    result = inspect_dashboard(
        running.demo.url,
        screenshot=screenshot,
        timeout=50,
        until="window.phobosDashboard.flightsDrawn > 0",
    )
    assert {"send", "advise", "image", "sample"} <= set(result["legend"])
    assert result["legend"][-2:] == ["safe default", "lost / not joined"]
    kinds = {label["kind"] for label in result["labels"]}
    assert {"lander", "sun", "earth"} <= kinds
    assert not overlapping(result["labels"])
    # A message in flight between the lander and Earth, labelled with its light time.
    assert result["flights_seen"] > 0
    flight = result["flight_labels"][-1]
    assert flight.startswith(("data to Earth", "advice to lander")) and "light time" in flight
    assert "min" in flight  # 3 to 22 minutes from Phobos
    assert "Sun's and Earth's elevation" in result["map_legend"]
    assert screenshot.stat().st_size > 10_000


@needs_chromium
def test_the_page_says_who_is_missing_until_every_agent_has_joined(start_demo, tmp_path) -> None:
    import subprocess

    from playwright.sync_api import sync_playwright

    from phobos.demo.browser import CHROMIUM_ARGS
    from phobos.demo.launcher import agent_command

    settings = WorldSettings(speed=20.0, action_timeout=1.0, join_timeout=60.0)
    agents = ("phobos_grunt", "ground_bear_lakes", "ground_ussuriysk", "ground_miyun")
    running = start_demo(settings, local_agents=agents, seconds=40)
    demo = running.demo
    late = None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1240, "height": 940})
            page.goto(demo.url, timeout=30_000)
            page.wait_for_function(
                "document.getElementById('connection').textContent === "
                "'waiting for agents 4/5'",
                timeout=30_000,
            )
            banner = page.inner_text("#waiting")
            assert banner.startswith("Waiting for agents 4/5: yinghuo1 ")
            assert page.is_visible("#waiting") and demo.world.tick == 0
            command = agent_command(
                "yinghuo1", demo.world.address, demo.keys, "greedy", ("--connect-timeout", "20")
            )
            late = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            page.wait_for_function(
                "document.getElementById('connection').textContent === 'live' && "
                "Number(document.getElementById('step').textContent) > 5",
                timeout=30_000,
            )
            assert not page.is_visible("#waiting")
        finally:
            browser.close()
            demo.stop()
            if late is not None:
                late.wait(20)
    stats = running.finish(20)
    assert all(record.defaults == 0 for record in demo.world.records.values())
    assert stats.steps > 5
