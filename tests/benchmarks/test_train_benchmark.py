"""The training benchmark runs every path and worker count beside its peers (a smoke test)."""

from __future__ import annotations

from phobos.benchmarks import train as train_bench

SMALL = {"num_envs": 4, "train_batch_size": 32, "minibatch_size": 80, "hidden": (16,)}


def test_train_benchmark_runs_every_path_with_one_and_two_workers():
    results = train_bench.run(seconds=0.0, batch_overrides=SMALL, reference_batch=96)
    paths = results["paths"]
    for path in ("sb3 batch", "rllib batch", "rllib env"):
        for workers in (1, 2):
            rates = paths[(path, workers)]
            assert rates["agent_steps_per_s"] > 0 and rates["updates"] >= 2
    for path in ("sb3 view", "sb3 batch lander", "sb3 view lander"):
        assert paths[(path, 1)]["agent_steps_per_s"] > 0
    assert paths[("sb3 batch lander recipe", 2)]["agent_steps_per_s"] > 0
    threaded = paths[("rllib batch threads", 2)]
    assert threaded["agent_steps_per_s"] > 0 and threaded["learner_threads"] == 2
    assert paths[("rllib batch", 2)]["learner_threads"] == 1
    assert paths[("rllib batch learners", 2)]["agent_steps_per_s"] > 0
    assert 0 < paths[("sb3 batch", 2)]["sampling_share"] < 1
    for key in (("sb3 batch lander", 2), ("sb3 batch lander recipe", 2)):
        # Matmuls alone at the measured rate bound the rate; a miscounted FLOP would not.
        assert paths[key]["matmul_ceiling"] > paths[key]["agent_steps_per_s"]
    table = train_bench.report(results)
    assert "batch core slots" in table and "(reference)" in table
    assert "MFLOP of matmuls per agent-step" in table
    assert "the learner on one thread per runner, 2 runners / the 1-runner row" in table
    assert "2 runners and 2 learners / 1 runner and its learner = **" in table
    assert "target 20,000" in table and "target 1.6x" in table and "target 10,000" in table
