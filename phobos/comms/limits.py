"""Bounds on what untrusted input can make a process write: short quotes, rate-limited logs.

Every value that came off a socket and is quoted back (in an error reply, a log line or a
telemetry event) goes through :func:`quote`, which never builds more than ``limit``
characters, however large the value: ``repr()`` of a 0.3 MB string is 0.3 MB before anything
could cut it. Warnings about rejected input go through a :class:`LogLimiter`, which lets a
burst through and then one line per period, saying how many it held back, so that a flood
of bad frames costs a few lines of log, not one per frame.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

QUOTE_LIMIT = 80
"""Default most characters of a quoted value."""
TEXT_LIMIT = 200
"""Default most characters of a reason, a detail or a name written anywhere."""


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """A ``repr``-like quote of ``value``, at most about ``limit`` characters, built cheaply.

    Strings and bytes are cut before they are quoted; containers are described by type and
    length; numbers and other small values are quoted in full (then cut).
    """
    if isinstance(value, str | bytes | bytearray | memoryview):
        data = bytes(value[: limit + 1]) if isinstance(value, bytearray | memoryview) else value
        text = repr(data[:limit])  # at most 4 characters per character or byte of the cut
        if len(data) > limit or len(text) > limit:
            unit = "chars" if isinstance(data, str) else "bytes"
            return f"{text[:limit]}... ({len(value)} {unit})"
        return text
    if isinstance(value, dict | list | tuple | set | frozenset):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, int | float | bool) or value is None:
        return clip(repr(value), limit)
    return f"a {type(value).__name__}"


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


class LogLimiter:
    """Lets ``burst`` lines through per ``period`` seconds, then counts what it holds back.

    Args:
        logger: Where the lines go.
        burst: Lines allowed per period.
        period: Seconds of one period.
        clock: Monotonic clock (tests may pass another).

    Attributes:
        suppressed: Lines held back since the start.

    """

    def __init__(
        self,
        logger: logging.Logger,
        burst: int = 10,
        period: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.period = period
        self.suppressed = 0
        self._clock = clock
        self._window_start = -float("inf")
        self._in_window = 0
        self._held = 0

    def log(self, level: int, fmt: str, *args: Any) -> bool:
        """Log one line if the budget allows (arguments clipped); return whether it went out."""
        now = self._clock()
        if now - self._window_start >= self.period:
            self._window_start = now
            self._in_window = 0
        if self._in_window >= self.burst:
            self._held += 1
            self.suppressed += 1
            return False
        self._in_window += 1
        text = fmt % tuple(clip(a) if isinstance(a, str) else a for a in args)
        if self._held:
            text += f" ({self._held} similar lines held back)"
            self._held = 0
        self.logger.log(level, "%s", clip(text, 4 * TEXT_LIMIT))
        return True

    def warning(self, fmt: str, *args: Any) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, fmt, *args)
