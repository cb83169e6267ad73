"""Drive the dashboard in a headless Chromium (Playwright): checks and the docs' screenshots.

Uses the system's Chromium (Debian's ``chromium`` package, ``/usr/bin/chromium``); nothing is
downloaded (never ``playwright install``). ``python -m phobos.demo.browser --docs`` runs a
short demo of every registered task and saves what an audience sees into ``docs/images/``
(``dashboard-orbit-scheduling.png``, ``dashboard-sampling.png``); ``python -m
phobos.demo.browser --env ENV_ID OUT.png`` saves one.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("PHOBOS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


SEES = """() => {
  const dash = window.phobosDashboard;
  const canvas = [...document.querySelectorAll('#orbits, #site')].find((c) => !c.hidden);
  return {
    legend: [...document.querySelectorAll('#timeline-legend .key')].map((k) => k.textContent),
    labels: canvas ? (dash.labels[canvas.id] || []) : [],
    flights_seen: dash.flightsSeen,
    flight_labels: dash.flightLabels || [],
    map_legend: document.getElementById('legend').textContent,
  };
}"""
"""What the audience sees, read from the page: the timeline legend's entries, the labels
placed on the visible map in its last frame (text, kind and box), the messages drawn in
flight so far, the light-time labels of messages drawn so far, and the map's legend."""


def inspect_dashboard(
    url: str,
    screenshot: str | Path | None = None,
    timeout: float = 30.0,
    until: str | None = None,
    hover_timeline: bool = False,
) -> dict[str, Any]:
    """Load the dashboard; wait until the map is drawn and the step counter advances.

    Args:
        url: The dashboard's address with its token.
        screenshot: Where to save a full-page PNG (None: none).
        timeout: Seconds for everything.
        until: A JavaScript expression to wait for as well before reading the page and
            taking the screenshot (``window.phobosDashboard.flightsSeen > 0``).
        hover_timeline: Hover over the timeline's first row and read its tooltip.

    Returns:
        ``{"drawn": map draws, "first_step": int, "later_step": int, "lit_pixels": int,
        "tooltip": str or None}`` and what :data:`SEES` reads.

    Raises:
        TimeoutError: if the map is not drawn, the counter does not advance or ``until``
            does not hold within ``timeout``.

    """
    from playwright.sync_api import sync_playwright

    deadline = time.monotonic() + timeout
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1240, "height": 940})
            page.goto(url, timeout=timeout * 1000)
            page.wait_for_function(
                "window.phobosDashboard && window.phobosDashboard.orbitsDrawn > 0",
                timeout=max(deadline - time.monotonic(), 1) * 1000,
            )
            first = int(page.inner_text("#step"))
            page.wait_for_function(
                f"Number(document.getElementById('step').textContent) > {first}",
                timeout=max(deadline - time.monotonic(), 1) * 1000,
            )
            if until is not None:
                page.wait_for_function(
                    until, timeout=max(deadline - time.monotonic(), 1) * 1000, polling=50
                )
            later = int(page.inner_text("#step"))
            tooltip = None
            if hover_timeline:
                box = page.locator("#timeline").bounding_box()
                # The first row, a third of the way along the drawn steps.
                page.mouse.move(box["x"] + box["width"] * 0.15, box["y"] + 12)
                page.wait_for_selector("#tooltip:not([hidden])", timeout=5000)
                tooltip = page.inner_text("#tooltip")
                page.mouse.move(0, 0)
            sees = page.evaluate(SEES)
            lit = page.evaluate(
                """() => {
                  const canvas = [...document.querySelectorAll('#orbits, #site')]
                    .find((c) => !c.hidden);
                  const data = canvas.getContext('2d')
                    .getImageData(0, 0, canvas.width, canvas.height).data;
                  let lit = 0;
                  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) lit += 1;
                  return lit;
                }"""
            )
            drawn = page.evaluate("window.phobosDashboard.orbitsDrawn")
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {
        "drawn": drawn,
        "first_step": first,
        "later_step": later,
        "lit_pixels": lit,
        "tooltip": tooltip,
        **sees,
    }


def docs_pictures() -> dict[str, Path]:
    """The screenshots the README shows: per registered task, its first id and the file.

    ``docs/images/dashboard-<task name without "phobos-">.png``.
    """
    from phobos.envs import registered_tasks, task_named

    return {
        task_named(name).ids[0]: Path(f"docs/images/dashboard-{name.removeprefix('phobos-')}.png")
        for name in registered_tasks()
    }


def screenshot_demo(env_id: str, target: str | Path, timeout: float = 180.0) -> dict[str, Any]:
    """Run a short demo of ``env_id`` with its demo team; save its dashboard to ``target``.

    Orbit scheduling is pictured once its timeline has filled for 120 steps; sampling once a
    message is in flight to or from Earth after the lander has worked for 14 steps.
    """
    import threading

    from phobos.demo.launcher import Demo, DemoOptions
    from phobos.envs import make
    from phobos.live.world import WorldSettings
    from phobos.live.world.views import view_for

    sampling = view_for(make(env_id)).kind == "site"
    settings = WorldSettings(  # sampling's seed 1: its lander sends early and often
        speed=4.0 if sampling else 20.0,
        action_timeout=1.0,
        join_timeout=120.0,  # as phobos demo: trained agents load torch first
        first_action_grace=20.0,
        seed=1 if sampling else 0,
    )
    demo = Demo(DemoOptions(env_id=env_id), settings)
    runner = threading.Thread(target=demo.run, kwargs={"seconds": timeout}, daemon=True)
    runner.start()
    try:
        until = (
            "window.phobosDashboard.flightsDrawn > 0 && window.phobosDashboard.step >= 14"
            if sampling
            else "Number(document.getElementById('step').textContent) >= 120"
        )
        result = inspect_dashboard(demo.url, screenshot=target, timeout=timeout, until=until)
    finally:
        demo.stop()
        runner.join(10.0)
        demo.close()
    return result


def main(argv: list[str] | None = None) -> int:
    """``--docs``: regenerate :func:`docs_pictures`; else save one task's (``--env``)."""
    import argparse

    from phobos.demo.launcher import DemoOptions

    parser = argparse.ArgumentParser(prog="python -m phobos.demo.browser", description=__doc__)
    parser.add_argument("out", nargs="?", type=Path, help="PNG to write (one task)")
    parser.add_argument("--env", default=DemoOptions.env_id, help="registered environment id")
    parser.add_argument("--docs", action="store_true", help="regenerate docs/images/ (both)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.docs:
        jobs = list(docs_pictures().items())
    else:
        jobs = [(args.env, args.out or Path(f"dashboard-{args.env}.png"))]
    for env_id, target in jobs:
        target.parent.mkdir(parents=True, exist_ok=True)
        result = screenshot_demo(env_id, target)
        summary = {k: result[k] for k in ("later_step", "flights_seen", "legend")}
        print(f"saved {target} ({target.stat().st_size // 1024} KiB): {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
