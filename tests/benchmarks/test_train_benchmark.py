"""The training benchmark runs every setting and its peer (a smoke test, not a timing)."""

from __future__ import annotations

from phobos.benchmarks import train as train_bench


def test_train_benchmark_runs_each_runner_count_beside_its_peer(monkeypatch):
    monkeypatch.setattr(train_bench, "BATCH", 96)
    results = train_bench.run(seconds=0.0)
    assert set(results["rllib"]) == {0, 1, 2}
    for rates in results["rllib"].values():
        assert rates["sampling"] > 0 and rates["iteration"] > 0 and rates["iterations"] >= 2
    assert results["sb3"] > 0 and results["scaling_2_over_1"] > 0
    table = train_bench.report(results)
    assert "2 env runners" in table and "SB3 MaskablePPO" in table and "target 1.6x" in table
