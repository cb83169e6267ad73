"""The dashboard attacked as a web page or a local client would: token, Host, Origin, limits.

A real world server (in a thread, no agents) and a real dashboard on 127.0.0.1; requests are
raw HTTP over sockets, so that headers a browser would never let a script forge (Host) can
be sent too. Every wait has a deadline.
"""

from __future__ import annotations

import functools
import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from phobos import config as config_tools
from phobos.comms.security import generate_keys
from phobos.demo.browser import CHROMIUM, CHROMIUM_ARGS
from phobos.demo.dashboard import Dashboard
from phobos.demo.http_guard import BoundedHTTPServer
from phobos.envs import make_config
from phobos.live.world import WorldServer, WorldSettings

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]
ENV = "orbit-scheduling-v0"


class Served:
    def __init__(self, world: WorldServer, dashboard: Dashboard) -> None:
        self.world, self.dashboard = world, dashboard
        self.port = dashboard.http.server_address[1]
        self.token = dashboard.token
        self.host = f"127.0.0.1:{self.port}"

    def request(self, method: str, path: str, headers=None, body: bytes | None = None):
        """``(status, headers, body)`` of one request (a fresh connection)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.putrequest(method, path, skip_host=True)
            for name, value in {"Host": self.host, **(headers or {})}.items():
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response, response.read()
        finally:
            connection.close()

    def pause(self, **headers) -> int:
        base = {"Content-Type": "application/json", "Authorization": f"token {self.token}"}
        base.update(headers)
        base = {k: v for k, v in base.items() if v is not None}
        body = json.dumps({"command": "pause"}).encode()
        return self.request("POST", "/api/control", base, body)[0]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    keys = tmp_path / "keys"
    for name in ("world", "dashboard"):
        generate_keys(keys, name)
    config = config_tools.replace(make_config(ENV), horizon_steps=4000)
    settings = WorldSettings(join_timeout=0.0, action_timeout=0.05, speed=20.0, relay="memory")
    world = WorldServer(ENV, config, keys=keys, settings=settings)
    thread = threading.Thread(target=world.run, kwargs={"seconds": 50.0}, daemon=True)
    thread.start()
    dashboard = Dashboard(
        world.telemetry_address, world.address, keys, max_threads=4, request_timeout=2.0
    ).start()
    yield Served(world, dashboard)
    dashboard.close()
    world.stop()
    thread.join(10)
    world.close()


def test_no_page_of_another_origin_and_no_foreign_host_drives_the_world(served) -> None:
    assert served.pause(Authorization=None) == 403  # no token
    assert served.pause(Authorization="token wrong") == 403
    assert served.pause(Origin="http://evil.example") == 403  # another page
    assert served.pause(Host=f"evil.example:{served.port}") == 403  # DNS rebinding
    assert served.pause(**{"Content-Type": "text/plain"}) == 415  # a form, no preflight
    status, _, _ = served.request("GET", f"/?token={served.token}", {"Host": "evil.example"})
    assert status == 403
    assert served.world.paused is False  # none of them reached the world

    status, response, page = served.request("GET", f"/?token={served.token}")
    assert status == 200 and b"/static/app.js" in page
    cookie = response.getheader("Set-Cookie").split(";", 1)[0]
    assert "HttpOnly" in response.getheader("Set-Cookie")
    status, _, _ = served.request("GET", "/api/state", {"Cookie": cookie})
    assert status == 200
    assert served.request("GET", "/api/state")[0] == 403
    origin = f"http://{served.host}"
    assert served.pause(Authorization=None, Cookie=cookie, Origin=origin) == 200
    assert served.world.paused is True


@pytest.mark.parametrize("length", ["-1", "abc", "99999999999999", "5000"])
def test_a_bad_content_length_is_refused_at_once(served, length) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(
            f"POST /api/control HTTP/1.1\r\nHost: {served.host}\r\n"
            f"Authorization: token {served.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        reply = sock.recv(4096)
        assert time.monotonic() - started < 2.0
    assert reply.startswith(b"HTTP/1.1 400"), reply[:80]


def test_idle_clients_are_bounded_in_threads_and_time(served) -> None:
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", served.port), timeout=5) for _ in range(8)]
    try:
        # Four handler threads at most; the other connections are answered 503 at once.
        answered = {}
        deadline = time.monotonic() + 0.8
        while len(answered) < 4 and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([s for s in idle if s not in answered], [], [], left)
            for sock in ready:
                answered[sock] = sock.recv(64)
        assert len(answered) == 4
        assert all(reply.startswith(b"HTTP/1.1 503") for reply in answered.values())
        assert threading.active_count() <= before + 4
        # The four held ones are dropped after the request timeout (2 s), not held forever.
        for sock in idle:
            if sock not in answered:
                assert sock.recv(64) == b""  # the socket's own timeout (5 s) bounds this
        status, _, _ = served.request(
            "GET", "/api/state", {"Cookie": f"phobos_token={served.token}"}
        )
        assert status == 200
    finally:
        for sock in idle:
            sock.close()


EVIL_PAGE = """<!doctype html><html><body>
<form id="f" method="POST" action="{target}api/control" enctype="text/plain">
<input name='{{"command":"pause","x":"' value='"}}'></form>
<script>
fetch("{target}api/control", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}, body: '{{"command": "pause"}}'}})
  .finally(() => {{ document.title = "fetched"; }});
</script></body></html>"""


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")
def test_a_foreign_page_in_the_users_browser_cannot_pause_the_world(served, tmp_path) -> None:
    """The user opened the dashboard (the cookie is set); then a page on another origin
    posts to it, by fetch and by a form: the world must not pause. The page's own button
    still works."""
    from playwright.sync_api import sync_playwright

    target = f"http://127.0.0.1:{served.port}/"
    (tmp_path / "evil.html").write_text(EVIL_PAGE.format(target=target))
    evil = BoundedHTTPServer(
        ("127.0.0.1", 0),
        functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path)),
    )
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context()  # one browser session: the cookie is shared
                page = context.new_page()
                page.goto(served.dashboard.url, timeout=30_000)
                page.wait_for_function(
                    "document.getElementById('connection').textContent === 'live'"
                )
                attack = context.new_page()
                attack.goto(f"http://localhost:{evil.server_address[1]}/evil.html")
                attack.wait_for_function("document.title === 'fetched'", timeout=20_000)
                with attack.expect_navigation(timeout=20_000):  # the form's answer
                    attack.evaluate("document.getElementById('f').submit()")
                refusals = ("open the dashboard", "refused", "application/json")
                assert any(text in attack.content() for text in refusals)  # 403 or 415
                assert served.world.paused is False
                page.click("#pause")
                deadline = time.monotonic() + 10.0
                while not served.world.paused and time.monotonic() < deadline:
                    page.wait_for_timeout(50)  # the polling interval, in the browser
                assert served.world.paused is True
            finally:
                browser.close()
    finally:
        evil.shutdown()
        evil.server_close()
