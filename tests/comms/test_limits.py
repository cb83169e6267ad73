"""Bounded quotes and rate-limited logs: what untrusted input can make a process write."""

from __future__ import annotations

import logging

import pytest

from phobos.comms.limits import LogLimiter, clip, quote


@pytest.mark.parametrize(
    "value",
    ["\x00" * 300_000, b"\xff" * 400_000, list(range(100_000)), {"k" * 10: 1}, 10**200, object()],
)
def test_a_quote_is_short_whatever_the_value(value) -> None:
    assert len(quote(value)) < 140


def test_clip_says_how_long_the_text_was() -> None:
    assert clip("x" * 1000, 10) == "xxxxxxxxxx... (1000 chars)"
    assert clip("short") == "short"


def test_a_flood_of_warnings_costs_a_burst_per_period_and_says_how_many_were_held(caplog):
    now = [0.0]
    limiter = LogLimiter(logging.getLogger("flood"), burst=10, period=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="flood"):
        for i in range(5000):
            now[0] = i * 0.001  # 5000 rejections in 5 s: one period
            limiter.warning("rejected frame %d: %s", i, "y" * 100_000)
        now[0] = 11.0
        limiter.warning("rejected frame %d: %s", 5000, "late")
    assert len(caplog.records) == 11
    assert limiter.suppressed == 4990
    assert "(4990 similar lines held back)" in caplog.records[-1].getMessage()
    assert sum(len(r.getMessage()) for r in caplog.records) < 11 * 1000
