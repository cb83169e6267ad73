"""Benchmarks are not timed tests: these check that each suite runs and reports its peer."""

from __future__ import annotations

from phobos.benchmarks import env as env_bench
from phobos.cli import main


def test_env_benchmark_runs_beside_its_peer(monkeypatch):
    monkeypatch.setattr(env_bench, "BATCH_SIZES", (1, 8))
    results = env_bench.run(seconds=0.05, rounds=1)
    assert results["orbit_env_steps_per_s"] > 0 and results["mpe_env_steps_per_s"] > 0
    assert set(results["batch"]) == {1, 8}
    table = env_bench.report(results)
    assert "simple_spread_v3" in table and "at least 5x" in table


def test_bench_cli_writes_its_section(tmp_path, monkeypatch):
    monkeypatch.setattr(env_bench, "BATCH_SIZES", (2,))
    target = tmp_path / "benchmarks.md"
    target.write_text("# Benchmarks\n\nkept\n")
    assert main(["bench", "env", "--seconds", "0.05", "--write", str(target)]) == 0
    assert main(["bench", "env", "--seconds", "0.05", "--write", str(target)]) == 0
    text = target.read_text()
    assert "kept" in text and text.count("<!-- begin bench env -->") == 1
