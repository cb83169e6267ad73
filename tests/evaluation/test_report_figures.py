"""The report's figures as figure objects: titles, P(improvement) drawn, long team names
keyed, learning curves smoothed with the raw curve faint and the legend outside the axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from phobos.agents.team_spec import TeamSpec  # noqa: E402
from phobos.evaluation.report import summarise  # noqa: E402
from phobos.evaluation.report_figures import (  # noqa: E402
    SMOOTHING,
    learning_plot,
    returns_plot,
    smooth,
)
from phobos.evaluation.rollout import EpisodeResult  # noqa: E402
from phobos.evaluation.runner import EvaluationRequest, EvaluationRun  # noqa: E402

LONG = "greedy,phobos_grunt=sb3:runs/train/a-very-long-run-name/policy/model.zip"


def _run(teams):
    results = [
        EpisodeResult(team, seed, "ok", {"team_return": float(seed + 3 * i)})
        for i, team in enumerate(teams)
        for seed in range(6)
    ]
    request = EvaluationRequest(
        "orbit-scheduling-v0", tuple(TeamSpec.parse(t) for t in teams), tuple(range(6))
    )
    return EvaluationRun(request, results, 0, 0.0)


def _texts(fig):
    return [t.get_text() for t in fig.texts] + [
        t.get_text() for ax in fig.axes for t in ax.texts
    ]


def test_returns_has_a_title_draws_p_improvement_and_keys_long_names():
    run = _run(["random", LONG])
    fig = returns_plot(run, summarise(run))
    try:
        assert fig._suptitle is not None and "Team return per episode" in fig._suptitle.get_text()
        (ax,) = fig.axes
        assert [t.get_text() for t in ax.get_xticklabels()] == ["T1", "T2"]
        texts = _texts(fig)
        assert any(t.startswith("P(> T1) = ") for t in texts), texts
        key = next(t for t in texts if "T1 = random" in t)
        assert f"T2 = {LONG}" in key
    finally:
        plt.close(fig)


def test_short_team_names_are_drawn_as_they_are():
    run = _run(["random", "greedy"])
    fig = returns_plot(run, summarise(run))
    try:
        assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["random", "greedy"]
        assert not any(" = " in t and t.startswith("T1") for t in _texts(fig))
    finally:
        plt.close(fig)


def test_learning_curves_are_smoothed_with_the_raw_curve_faint(tmp_path):
    log = tmp_path / "progress.csv"
    rows = ["iteration,env_steps,team_return_mean,seed,lr"]
    rows += [f"{i},{1000 * (i + 1)},{(-1) ** i + 0.1 * i},0,0.0003" for i in range(30)]
    log.write_text("\n".join(rows) + "\n")
    fig, caption = learning_plot(log, {"greedy": 2.0})
    try:
        (ax,) = fig.axes
        assert "Training:" in ax.get_title()
        raw, smoothed, baseline = ax.get_lines()
        assert raw.get_alpha() == pytest.approx(0.25) and smoothed.get_alpha() in (None, 1.0)
        ys = [(-1) ** i + 0.1 * i for i in range(30)]
        assert list(smoothed.get_ydata()) == pytest.approx(smooth(ys, SMOOTHING))
        assert list(raw.get_ydata()) == pytest.approx(ys)
        legend = ax.get_legend()
        assert legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # outside
        assert "30 points" in caption
    finally:
        plt.close(fig)


def test_smoothing_is_a_debiased_moving_average():
    assert smooth([4.0, 4.0, 4.0]) == pytest.approx([4.0, 4.0, 4.0])
    assert smooth([0.0, 10.0], 0.5) == pytest.approx([0.0, 10.0 * 0.5 / 0.75])
