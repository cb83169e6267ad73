"""The messaging benchmark runs end to end (how fast is not a test: CI checks that it runs)."""

from __future__ import annotations

import pytest

from phobos.benchmarks.comms import TRANSPORTS, format_markdown, run


@pytest.mark.network
@pytest.mark.timeout(120)
def test_benchmark_runs_every_case():
    rows = run(0.02)
    assert [(r["transport"], r["stack"]) for r in rows] == [
        (t, s) for t in TRANSPORTS for s in ("pyzmq", "phobos")
    ]
    for row in rows:
        assert row["round_trips"] > 0
        assert 0 < row["rtt_p50_us"] <= row["rtt_p99_us"]
        assert row["one_way_msgs_per_s"] > 0
    assert all(r["p50_vs_pyzmq"] > 0 for r in rows if r["stack"] == "phobos")
    assert format_markdown(rows).count("\n") == len(rows) + 1
