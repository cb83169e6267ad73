from __future__ import annotations

import csv
import json

from phobos.cli import main
from phobos.evaluation.oracle import solve_episode
from phobos.evaluation.report import write_report
from phobos.evaluation.runner import evaluate, make_request


def test_report_builds_from_a_tiny_scheduling_run(tmp_path, short_orbit):
    request = make_request("orbit-scheduling-v0", ["random", "greedy"], [0, 1], short_orbit)
    run = evaluate(request, progress=False)
    run.oracle = [solve_episode(short_orbit, s, time_limit_s=0.5).as_dict() for s in (0, 1)]
    log = tmp_path / "progress.csv"
    log.write_text("training_iteration,env_runners/episode_return_mean\n1,3.0\n2,5.5\n3,\n")
    report = write_report(run, tmp_path / "out", training_log=log)
    text = report.read_text()
    for figure in ("returns.png", "schedule.png", "learning.png"):
        assert (tmp_path / "out" / figure).stat().st_size > 1000
        assert f"]({figure})" in text
    assert "Oracle" in text and "Probability of improvement" in text and "2 points" in text
    rows = list(csv.DictReader((tmp_path / "out" / "episodes.csv").open()))
    assert [(r["team"], r["seed"]) for r in rows] == [
        ("random", "0"),
        ("random", "1"),
        ("greedy", "0"),
        ("greedy", "1"),
    ]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (pair,) = summary["paired"]  # the later team against the earlier, seed by seed
    returns = {(r["team"], r["seed"]): float(r["team_return"]) for r in rows}
    differences = [returns[("greedy", s)] - returns[("random", s)] for s in ("0", "1")]
    assert pair == "greedy - random" and "Paired by seed" in text
    assert summary["paired"][pair]["difference"]["estimate"] == sum(differences) / 2
    assert summary["paired"][pair]["wins"] == sum(d > 0 for d in differences)
    assert set(summary["oracle"]["teams"]) == {"random", "greedy"}
    for gaps in summary["oracle"]["teams"].values():
        assert gaps["to_bound"]["n"] == summary["oracle"]["proven"]
        assert gaps["to_bound"]["q1"] >= 0


def test_report_of_a_sampling_run_draws_the_site_and_says_there_is_no_training_log(tmp_path):
    run = evaluate(
        make_request("phobos-sampling-v0", ["greedy", "cautious"], [0, 1]), progress=False
    )
    text = write_report(run, tmp_path).read_text()
    assert (tmp_path / "site.png").exists() and "](site.png)" in text
    assert "No training log was given" in text and not (tmp_path / "learning.png").exists()


def test_cli_evaluate_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "evaluate",
        "--policy",
        "greedy",
        "--policy",
        "random",
        "--seeds",
        "0-2",
        "--workers",
        "0",
        "--set",
        "horizon_steps=24",
        "--oracle",
        "--oracle-seconds",
        "0.5",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "greedy:" in printed and "bound proven on 3/3 episodes" in printed
    rows = json.loads((out / "episodes.json").read_text())
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    assert (out / "report.md").exists()
