"""What guards the dashboard's web server, as Jupyter's local server guards its own.

Any web page the user opens can make the browser send requests to 127.0.0.1, and a page on a
name the attacker controls can rebind that name to 127.0.0.1 (DNS rebinding). So:

- **a token**: a random secret in the URL printed at start-up (``/?token=...``); the first
  request that carries it gets it back as an ``HttpOnly; SameSite=Strict`` cookie, which the
  page's own requests then send. Every request without the token (query, cookie, or an
  ``Authorization: token ...`` header) is refused with 403;
- **Host**: only the loopback names of the bound port (``127.0.0.1``, ``localhost``, ``[::1]``)
  are served; any other Host header (a rebound name) gets 403;
- **Origin**: a state-changing request (POST) must carry no Origin or the server's own, and
  a JSON content type (which no page can send across origins without a preflight);
- **sizes and times**: a body must declare a length from 0 to ``max_body``; a client has
  ``timeout`` seconds per read or write; at most ``max_threads`` requests are handled at once,
  and the next gets 503 at once instead of a thread.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

COOKIE = "phobos_token"
"""Name of the cookie that carries the token after the first visit."""
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def new_token() -> str:
    """A fresh random token (192 bits, URL-safe)."""
    return secrets.token_urlsafe(24)


class Guard:
    """Decides whether a request may be served.

    Args:
        token: The secret every request must carry.
        port: The port the server listens on (part of every allowed Host and Origin).
        host: The interface it is bound to, allowed as a Host name besides the loopback ones.

    """

    def __init__(self, token: str, port: int, host: str = "127.0.0.1") -> None:
        self.token = token
        names = {*LOOPBACK_NAMES, host}
        self.hosts = frozenset(f"{name}:{port}" for name in names)
        self.origins = frozenset(f"http://{h}" for h in self.hosts)

    def check(self, method: str, path: str, headers: Any) -> tuple[HTTPStatus, str] | None:
        """None when the request may be served, else the status and reason to answer with."""
        if headers.get("Host", "") not in self.hosts:
            return HTTPStatus.FORBIDDEN, "this server answers only to its loopback address"
        if not self.has_token(path, headers):
            return HTTPStatus.FORBIDDEN, "open the dashboard with the URL printed at start-up"
        if method != "GET":
            origin = headers.get("Origin")
            if origin is not None and origin not in self.origins:
                return HTTPStatus.FORBIDDEN, "cross-origin requests are refused"
            content_type = headers.get("Content-Type", "").split(";", 1)[0].strip()
            if content_type != "application/json":
                return HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json"
        return None

    def has_token(self, path: str, headers: Any) -> bool:
        """Whether the query, the cookie or an Authorization header carries the token."""
        offered = parse_qs(urlsplit(path).query).get("token", [])
        authorization = headers.get("Authorization", "")
        if authorization.startswith("token "):
            offered.append(authorization[6:])
        try:
            cookie = SimpleCookie(headers.get("Cookie", ""))
        except CookieError:
            cookie = SimpleCookie()
        if COOKIE in cookie:
            offered.append(cookie[COOKIE].value)
        return any(hmac.compare_digest(t.encode(), self.token.encode()) for t in offered[:4])

    def cookie_header(self) -> str:
        """The Set-Cookie value that hands the token to the page."""
        return f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"


def body_length(headers: Any, max_body: int) -> tuple[int | None, str]:
    """``(length, "")`` for a valid Content-Length of at most ``max_body``, else ``(None, why)``."""
    text = headers.get("Content-Length")
    if text is None:
        return 0, ""
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        return None, f"bad Content-Length {text[:20]!r}"
    length = int(text)
    if length > max_body:
        return None, f"body of {length} bytes exceeds {max_body}"
    return length, ""


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server with at most ``max_threads`` requests in hand at once.

    A connection beyond the bound is answered ``503`` and closed without a thread.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, max_threads: int = 16) -> None:
        self._slots = threading.BoundedSemaphore(max_threads)
        self.turned_away = 0
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the request to a thread if a slot is free, else answer 503 here."""
        if not self._slots.acquire(blocking=False):
            self.turned_away += 1
            try:
                request.settimeout(1.0)
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve the request in its thread, then free the slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or went away is no error of the server's: no traceback."""
        log.debug("dashboard http: request from %s failed", client_address, exc_info=True)
