"""The dashboard's web server: telemetry from the world to the browser, controls back.

A :class:`Dashboard` subscribes to the world's telemetry (PUB/SUB: it may miss updates, and
says so by the step counter jumping), keeps the latest state, and serves on 127.0.0.1:

- ``GET /`` and ``/static/...``: the page (plain HTML, CSS and one canvas JavaScript file
  from ``phobos/demo/static``; nothing is fetched from any other host): "waiting for agents
  3/5" and who is missing until every agent has joined; the orbit map with labelled stations
  and one light-time label per link, or for sampling the sky over the site (the Sun, Earth,
  contact windows and the messages to and from Earth in flight); the agents' table; the
  activity timeline with its legend, tooltips and safe-default and lost spans hatched;
- ``GET /api/events``: Server-Sent Events, one JSON snapshot per update, at most
  ``max_rate`` per second per browser whatever the step rate;
- ``GET /api/state`` and ``GET /api/episode``: the latest snapshot and episode tables;
- ``POST /api/control`` with ``{"command": "pause" | "resume" | "speed", "value": steps/s}``:
  forwarded to the world over a CURVE DEALER named ``dashboard``; answers the world's reply.
  A control the world does not answer in time drops that DEALER; the next one connects a
  fresh one (Lazy Pirate), so a lost connection never leaves the controls dead.

Every request is guarded as Jupyter's local server guards its own
(:mod:`phobos.demo.http_guard`): the token of the printed URL (then a cookie), loopback Host
names only, Origin and JSON content type on POST, bounded bodies, per-read and per-write
timeouts, and a bounded number of handler threads. One thread reads telemetry.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import zmq

from phobos.comms.message import Message
from phobos.comms.security import load_keys
from phobos.comms.telemetry import TelemetrySubscriber
from phobos.comms.transport import TransportError
from phobos.comms.zmq_transport import ZmqClient
from phobos.demo.http_guard import BoundedHTTPServer, Guard, body_length, new_token
from phobos.live import protocol as p

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class Dashboard:
    """Telemetry collector and web server; see the module docstring.

    Args:
        telemetry: The world's telemetry PUB address.
        world: The world's ROUTER address, for controls; None disables them.
        keys: Key folder holding ``dashboard.key_secret`` and ``world.key``; None connects
            without CURVE.
        host: Interface of the web server.
        port: Its port; 0 picks a free one.
        max_rate: Most updates per second sent to each browser.
        supervisor: Returns the supervisor's per-agent counters, if there is one.
        max_threads: Most requests handled at once (the rest get 503).
        request_timeout: Seconds a client has for each read and write.

    Attributes:
        token: The secret of :attr:`url`, which every request must carry.

    """

    def __init__(
        self,
        telemetry: str,
        world: str | None = None,
        keys: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_rate: float = 10.0,
        supervisor: Callable[[], dict[str, Any]] | None = None,
        max_threads: int = 16,
        request_timeout: float = 10.0,
    ) -> None:
        self.max_rate = max_rate
        self.supervisor = supervisor
        self.context = zmq.Context()
        self.updates = 0
        self.events: deque[dict[str, Any]] = deque(maxlen=40)
        self.state: dict[str, Any] = {}
        self.episode: dict[str, Any] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._control_lock = threading.Lock()
        self._control: ZmqClient | None = None
        self._control_seq = 0
        self._world, self._keys = world, keys
        self._subscriber = TelemetrySubscriber(
            telemetry,
            (p.TELEMETRY_EPISODE, p.TELEMETRY_STATE, p.TELEMETRY_EVENT),
            context=self.context,
        )
        self.token = new_token()
        handler = type("Handler", (_Handler,), {"dashboard": self, "timeout": request_timeout})
        self.http = BoundedHTTPServer((host, port), handler, max_threads)
        self.guard = Guard(self.token, self.http.server_address[1], host)
        self._threads = [
            threading.Thread(target=self._listen, name="dashboard-telemetry", daemon=True),
            threading.Thread(target=self.http.serve_forever, name="dashboard-http", daemon=True),
        ]

    @property
    def base_url(self) -> str:
        """The server's address, without the token."""
        host, port = self.http.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def url(self) -> str:
        """The page's address, with its token: what to open (and what is printed)."""
        return f"{self.base_url}?token={self.token}"

    def start(self) -> Dashboard:
        """Start the telemetry and HTTP threads; return self."""
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop the threads and close the sockets."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self.http.shutdown()
        self.http.server_close()
        for thread in self._threads:
            thread.join(5.0)
        self._subscriber.close()
        with self._control_lock:
            if self._control is not None:
                self._control.close()
        self.context.destroy(linger=0)

    def snapshot(self) -> dict[str, Any]:
        """What the browser gets on each update."""
        with self._changed:
            snapshot = {
                "updates": self.updates,
                "state": self.state,
                "events": list(self.events),
                "episode_key": [self.episode.get("episode"), self.episode.get("seed")],
            }
        snapshot["supervisor"] = self.supervisor() if self.supervisor is not None else {}
        return snapshot

    def control(self, command: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
        """Send a control command to the world; return its reply (or an error)."""
        if self._world is None:
            return {"error": "this dashboard has no world to control"}
        with self._control_lock:
            if self._control is None:
                curve = server_key = None
                if self._keys is not None:
                    curve = load_keys(self._keys, p.DASHBOARD)
                    server_key = load_keys(self._keys, p.WORLD).public
                self._control = ZmqClient(
                    self._world,
                    p.DASHBOARD,
                    context=self.context,
                    curve=curve,
                    server_key=server_key,
                )
            self._control_seq += 1
            seq = self._control_seq
            try:
                self._control.send(Message(p.DASHBOARD, p.WORLD, p.CONTROL, 0.0, seq, command))
                deadline = time.monotonic() + timeout
                while (left := deadline - time.monotonic()) > 0:
                    reply = self._control.recv(left)
                    if reply is not None and reply.kind == p.CONTROL and reply.seq == seq:
                        return reply.payload
            except (TransportError, ValueError) as exc:  # ValueError: EncodeError
                self._drop_control()
                return {"error": f"control not sent: {exc}"}
            self._drop_control()  # the next control connects afresh
            return {"error": f"the world did not answer within {timeout} s"}

    def _drop_control(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None

    def wait_update(self, seen: int, timeout: float) -> int:
        """Block until an update newer than ``seen`` (or ``timeout``); return the latest count."""
        with self._changed:
            self._changed.wait_for(
                lambda: self.updates != seen or self._stop.is_set(), timeout=timeout
            )
            return self.updates

    @property
    def stopping(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._stop.is_set()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._subscriber.recv(0.2)
            except Exception:  # noqa: BLE001 - a closed socket at shutdown ends the thread
                return
            if message is None or not isinstance(message.payload, dict):
                continue
            with self._changed:
                if message.kind == p.TELEMETRY_STATE:
                    self.state = message.payload
                elif message.kind == p.TELEMETRY_EPISODE:
                    self.episode = message.payload
                else:
                    self.events.append(message.payload)
                self.updates += 1
                self._changed.notify_all()


class _Handler(BaseHTTPRequestHandler):
    dashboard: Dashboard
    protocol_version = "HTTP/1.1"
    _give_cookie = False

    def _allowed(self) -> bool:
        """Whether the guard lets this request through; answers it (403, ...) when not."""
        guard = self.dashboard.guard
        refusal = guard.check(self.command, self.path, self.headers)
        if refusal is not None:
            self.close_connection = True
            self._error(*refusal)
            return False
        self._give_cookie = "token=" in self.path
        return True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("dashboard http: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if not self._allowed():
            return
        path = self.path.split("?", 1)[0]
        if path == "/api/events":
            self._events()
        elif path == "/api/state":
            self._json(self.dashboard.snapshot())
        elif path == "/api/episode":
            with self.dashboard._changed:
                episode = self.dashboard.episode
            self._json(episode)
        elif path in ("/", "/index.html"):
            self._file(STATIC / "index.html")
        elif path.startswith("/static/"):
            name = path.removeprefix("/static/")
            target = (STATIC / name).resolve()
            if "/" in name or not target.is_file() or target.parent != STATIC.resolve():
                self._error(HTTPStatus.NOT_FOUND, "no such file")
            else:
                self._file(target)
        else:
            self._error(HTTPStatus.NOT_FOUND, "no such page")

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        if not self._allowed():
            return
        if self.path.split("?", 1)[0] != "/api/control":
            self._error(HTTPStatus.NOT_FOUND, "no such endpoint")
            return
        length, why = body_length(self.headers, 4096)
        if length is None:
            self.close_connection = True  # what follows the headers cannot be framed
            self._error(HTTPStatus.BAD_REQUEST, why)
            return
        try:
            command = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(command, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            self._error(HTTPStatus.BAD_REQUEST, f"bad control body: {exc}")
            return
        self._json(self.dashboard.control(command))

    def _events(self) -> None:
        dashboard = self.dashboard
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        if self._give_cookie:
            self.send_header("Set-Cookie", self.dashboard.guard.cookie_header())
        self.end_headers()
        self.close_connection = True
        seen = -1
        interval = 1.0 / dashboard.max_rate
        try:
            while not dashboard.stopping:
                started = time.monotonic()
                latest = dashboard.wait_update(seen, timeout=10.0)
                if dashboard.stopping:
                    return
                if latest == seen:
                    self.wfile.write(b": keep-alive\n\n")
                else:
                    seen = latest
                    data = json.dumps(dashboard.snapshot(), separators=(",", ":"))
                    self.wfile.write(f"data: {data}\n\n".encode())
                self.wfile.flush()
                # The throttle: at most max_rate updates a second to this browser.
                rest = interval - (time.monotonic() - started)
                if rest > 0 and dashboard._stop.wait(rest):
                    return
        except OSError:  # gone, reset, or too slow to read (the request timeout)
            return

    def _json(self, value: Any) -> None:
        body = json.dumps(value, separators=(",", ":")).encode()
        self._send(HTTPStatus.OK, "application/json", body)

    def _file(self, path: Path) -> None:
        self._send(
            HTTPStatus.OK, _TYPES.get(path.suffix, "application/octet-stream"), path.read_bytes()
        )

    def _error(self, status: HTTPStatus, text: str) -> None:
        self._send(status, "text/plain; charset=utf-8", text.encode())

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self._give_cookie:
            self.send_header("Set-Cookie", self.dashboard.guard.cookie_header())
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
