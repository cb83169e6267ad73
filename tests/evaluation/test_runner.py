from __future__ import annotations

import sys
from functools import partial

import pytest

from phobos.agents.policy import Policy
from phobos.agents.team_spec import build_team
from phobos.evaluation.rollout import run_episode
from phobos.evaluation.runner import evaluate, make_request

SEEDS = (0, 1, 2)


def test_parallel_run_equals_serial_run(ray_local, short_orbit):
    request = make_request("orbit-scheduling-v0", ["random", "greedy"], SEEDS, short_orbit)
    serial = evaluate(request, workers=0, progress=False)
    parallel = evaluate(request, workers=2, progress=False)
    assert [(r.team, r.seed) for r in parallel.results] == [
        (r.team, r.seed) for r in serial.results
    ]
    assert all(r.status == "ok" for r in serial.results + parallel.results)
    assert [r.metrics for r in parallel.results] == [r.metrics for r in serial.results]
    # The teams differ, so equality is not vacuous.
    assert serial.results[0].metrics != serial.results[len(SEEDS)].metrics


def test_parallel_equals_serial_on_the_sampling_task(ray_local):
    request = make_request("phobos-sampling-v0", ["random", "cautious"], SEEDS)
    serial = evaluate(request, workers=0, progress=False)
    parallel = evaluate(request, workers=2, progress=True)
    assert [r.metrics for r in parallel.results] == [r.metrics for r in serial.results]


class _Crash(Policy):
    def act(self, observation):
        raise RuntimeError("policy exploded")


def _crash_on_seed_one(spec, env, seed):
    team = build_team(spec, env, seed)
    if seed == 1:
        team["yinghuo1"] = _Crash()
    return team


@pytest.mark.parametrize("workers", [0, 2])
def test_a_crashing_episode_is_reported_and_the_rest_complete(ray_local, short_orbit, workers):
    # Ray workers cannot import this test module: send its functions by value.
    ray_local.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    request = make_request("orbit-scheduling-v0", ["greedy"], SEEDS, short_orbit)
    run = evaluate(
        request,
        workers=workers,
        progress=False,
        episode_fn=partial(run_episode, team_factory=_crash_on_seed_one),
    )
    statuses = {r.seed: r.status for r in run.results}
    assert statuses == {0: "ok", 1: "failed", 2: "ok"}
    (failed,) = run.failed()
    assert failed.seed == 1 and "Traceback" in failed.error and "policy exploded" in failed.error
    assert failed.row()["seed"] == 1 and not failed.metrics


def test_solves_run_beside_the_rollouts_and_the_planner_flies_after_its_seed(
    ray_local, short_orbit, tmp_path, capsys
):
    from phobos.evaluation.runner import OracleRequest

    request = make_request("orbit-scheduling-v0", ["greedy", "planner"], SEEDS, short_orbit)
    oracle = OracleRequest(1.0, 1, str(tmp_path / "cache"))
    parallel = evaluate(request, workers=2, progress=True, oracle=oracle)
    lines = [line for line in capsys.readouterr().err.splitlines() if "oracle " in line]
    assert len([line for line in lines if ": seed " in line]) == len(SEEDS)  # a line per seed
    assert [o["seed"] for o in parallel.oracle] == list(SEEDS)
    assert [(r.team, r.seed) for r in parallel.results] == [
        (t, s) for t in ("greedy", "planner") for s in SEEDS
    ]
    # Serial, from the cache: the same solves and the same flown returns, row for row.
    serial = evaluate(request, workers=0, progress=False, oracle=oracle)
    assert serial.oracle == parallel.oracle
    assert [r.metrics for r in serial.results] == [r.metrics for r in parallel.results]
    greedy = {r.seed: r.metrics["team_return"] for r in serial.results if r.team == "greedy"}
    for r in serial.results:
        if r.team == "planner":
            assert r.status == "ok" and r.metrics["team_return"] >= greedy[r.seed]
