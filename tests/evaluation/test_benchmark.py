"""The evaluation benchmark runs (not how fast: benchmarks are not timed tests)."""

from __future__ import annotations

from phobos.benchmarks import evaluation as evaluation_bench


def test_evaluation_benchmark_runs_serial_and_parallel(monkeypatch):
    monkeypatch.setattr(evaluation_bench, "CASES", (("phobos-sampling-v0", 4),))
    results = evaluation_bench.run(seconds=0.01, rounds=1)
    case = results["cases"]["phobos-sampling-v0"]
    assert case["parallel_equals_serial"] and set(case["rates"]) == {"serial", "ray x1", "ray x2"}
    assert "episodes/s" in evaluation_bench.report(results)
