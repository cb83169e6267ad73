"""Drive the dashboard in a headless Chromium (Playwright): checks and the README screenshot.

Uses the system's Chromium (Debian's ``chromium`` package, ``/usr/bin/chromium``); nothing is
downloaded (never ``playwright install``). ``python -m phobos.demo.browser docs/dashboard.png``
runs a short demo and saves a screenshot of its dashboard.
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


def inspect_dashboard(
    url: str, screenshot: str | Path | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """Load the dashboard; wait until the map is drawn and the step counter advances.

    Returns:
        ``{"drawn": map draws, "first_step": int, "later_step": int, "lit_pixels": int}``.

    Raises:
        TimeoutError: if the map is not drawn or the counter does not advance in ``timeout``.

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
            later = int(page.inner_text("#step"))
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
    return {"drawn": drawn, "first_step": first, "later_step": later, "lit_pixels": lit}


def main(argv: list[str] | None = None) -> int:
    """Run a short demo (20 steps/s) and save its dashboard to ``argv[0]`` as PNG."""
    import threading

    from phobos.demo.launcher import Demo, DemoOptions
    from phobos.live.world import WorldSettings

    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[0] if argv else "docs/dashboard.png")
    env_id = argv[1] if len(argv) > 1 else DemoOptions.env_id
    demo = Demo(DemoOptions(env_id=env_id), WorldSettings(speed=20.0, action_timeout=1.0))
    runner = threading.Thread(target=demo.run, kwargs={"seconds": 120.0}, daemon=True)
    runner.start()
    try:
        # Let the episode fill the timeline before the picture.
        inspect_dashboard(demo.url, timeout=60.0)
        deadline = time.monotonic() + 30.0
        while demo.world.tick < 120 and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the tick with a deadline, not synchronisation
        result = inspect_dashboard(demo.url, screenshot=target, timeout=60.0)
    finally:
        demo.stop()
        runner.join(10.0)
        demo.close()
    print(f"saved {target} ({target.stat().st_size // 1024} KiB): {result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
