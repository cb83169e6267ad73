"""Every ``phobos bench`` section ends with its targets and a met / MISSED verdict per row."""

from __future__ import annotations

from phobos.benchmarks import comms, env, evaluation, train
from phobos.benchmarks.targets import Target, table


def _verdicts(text):
    rows = [line for line in text.splitlines() if line.startswith("| ") and "verdict" not in line]
    return {line.split(" | ")[0][2:]: line.rstrip(" |").rsplit(" | ", 1)[1] for line in rows}


def test_a_missed_target_is_flagged_in_the_table():
    text = table(
        [
            Target("a", ">= 1", "2", True),
            Target("b", ">= 5", "3", False),
            Target("c", "x", "-", None),
        ]
    )
    assert text.splitlines()[0] == "Targets: **1 of 2 MISSED**. 1 not measured in this run."
    assert _verdicts(text) == {"a": "met", "b": "**MISSED**", "c": "not measured"}


def test_env_targets():
    results = {
        "batch": {1024: {"stepping": 2.0e6}},
        "reset_share_ahead": {"ratio": 2.1},
        "ratio_env_steps": 2.3,
        "sampling_ratio_env_steps": 7.0,
        "reset_ms": 5.0,
    }
    met = [t.met for t in env.targets(results)]
    assert met == [False, True, True, False, True]


def test_comms_targets():
    rows = [
        {"transport": "ipc", "stack": "pyzmq", "one_way_msgs_per_s": 300_000},
        {"transport": "ipc", "stack": "phobos", "p50_vs_pyzmq": 1.2, "one_way_msgs_per_s": 90_000},
        {"transport": "tcp", "stack": "phobos", "p50_vs_pyzmq": 1.7, "one_way_msgs_per_s": 1},
    ]
    assert [t.met for t in comms.targets(rows)] == [True, False, False]


def test_evaluation_targets():
    rates = {"serial": 1.0, "ray x1": 1.0, "ray x2": 1.4}
    results = {
        "cases": {
            "orbit-scheduling-v0": {"rates": rates, "parallel_equals_serial": True},
            "phobos-sampling-v0": {"rates": rates, "parallel_equals_serial": False},
        }
    }
    assert [t.met for t in evaluation.targets(results)] == [False, True, False]


def test_train_report_flags_misses_and_rows_the_budget_left_out():
    def rates(value):
        return {"agent_steps_per_s": value, "sampling_share": 0.2, "updates": 3, "row_s": 6.0}

    results = {
        "seconds": 5.0,
        "wall_s": 40.0,
        "paths": {
            ("sb3 batch", 1): rates(19_000),
            ("sb3 batch", 2): rates(36_000),
            ("sb3 batch lander", 1): rates(6_000),
        },
        "skipped": [("rllib batch", 1)],
        "setup_s": 16.0,
    }
    text = train.report(results)
    verdicts = _verdicts(text.split("Targets:")[1])
    assert verdicts["fastest orbit path (SB3 MaskablePPO, batch core slots, shared network, "
                    "2 worker(s)), agent-steps/s"] == "met"
    assert verdicts["lander batch path (256x256 MLP, 1 worker(s)), agent-steps/s"] == "**MISSED**"
    assert "not measured (set-up)" in text and "--seconds 6 or more runs them" in text
    assert "**1 of 3 MISSED**" in text

    # The committed lander's network is judged on its own row.
    results["paths"][("sb3 batch lander recipe", 2)] = rates(2_000)
    text = train.report(results)
    verdicts = _verdicts(text.split("Targets:")[1])
    recipe = "lander batch path (the committed lander's network, 2 worker(s)), agent-steps/s"
    assert verdicts[recipe] == "**MISSED**" and "**2 of 4 MISSED**" in text

    # Two lander trials side by side: the faster row is the one judged.
    results["paths"][("sb3 batch lander", 2)] = rates(11_000)
    verdicts = _verdicts(train.report(results).split("Targets:")[1])
    assert verdicts["lander batch path (256x256 MLP, 2 worker(s)), agent-steps/s"] == "met"


def test_train_leaves_out_rows_whose_set_up_dwarfs_the_seconds(monkeypatch):
    ran = []

    def fake_rows(seconds, overrides, reference):
        def measure(key):
            ran.append(key)
            return {"agent_steps_per_s": 1.0, "sampling_share": 0.5, "updates": 2}

        return [
            (key, kind, lambda key=key: measure(key))
            for key, kind in ((("sb3 batch", 1), "sb3"), (("rllib batch", 1), "rllib batch"))
        ]

    monkeypatch.setattr(train, "_rows", fake_rows)
    monkeypatch.setattr(train, "init_ray", lambda *_: True)
    monkeypatch.setattr(train, "_warm_workers", lambda *_: None)
    quick = train.run(seconds=4.0)  # an RLlib build (~15 s) is more than 3 x 4 s
    assert ran == [("sb3 batch", 1)] and quick["skipped"] == [("rllib batch", 1)]
    ran.clear()
    assert train.run(seconds=10.0)["skipped"] == [] and len(ran) == 2
    ran.clear()
    assert train.run(seconds=0.0)["skipped"] == [] and len(ran) == 2  # smoke: every row
