"""Write a run's results: every episode as JSON and CSV, a summary, figures and a Markdown report.

Files in the output folder:

- ``episodes.json`` / ``episodes.csv``: one row per episode (team, seed, status, metrics,
  error traceback of a failed episode);
- ``summary.json``: per team and metric the mean with its 95% bootstrap interval, the
  probability of improvement between every pair of teams, the oracle bounds and gaps;
- ``report.md`` with PNG figures beside it: ``returns.png`` (team-return distributions),
  the task's figure of one episode (its task spec's ``report_figure``: ``schedule.png``, a
  scheduling episode as a Gantt chart per agent over the contact windows, or ``site.png``,
  the lander's site map with what was imaged, analysed and sampled), and ``learning.png``
  when a training log is given.

The training log is a CSV with a header, such as the ``progress.csv`` of ``phobos train``
(one line per Tune trial when it has ``seed``/``lr`` columns). The x column is the first
present of ``env_steps``, ``timesteps_total``, ``num_env_steps_sampled_lifetime``,
``time/total_timesteps``, ``training_iteration``, ``step``; the y column the first present of
``team_return_mean``, ``episode_return_mean``, ``env_runners/episode_return_mean``,
``rollout/ep_rew_mean``, ``ep_rew_mean``. RLlib's and Stable-Baselines3's CSV logs qualify too.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from phobos.envs import task_spec
from phobos.evaluation.oracle_report import (
    PLANNER,
    oracle_section,
    oracle_summary,
    seeds_figure,
)
from phobos.evaluation.report_figures import learning_figure, returns_figure
from phobos.evaluation.rollout import EpisodeSpec, run_episode
from phobos.evaluation.runner import EvaluationRun
from phobos.evaluation.stats import bootstrap_mean, paired_comparison, probability_of_improvement


def summarise(run: EvaluationRun, seed: int = 0) -> dict[str, Any]:
    """Per-team means with 95% CIs, pairwise probability of improvement, oracle gaps."""
    teams = [t.label for t in run.request.teams]
    ok = {t: [r for r in run.results if r.team == t and r.status == "ok"] for t in teams}
    summary: dict[str, Any] = {"env_id": run.request.env_id, "teams": {}, "improvement": {}}
    for team, results in ok.items():
        metrics = sorted({k for r in results for k in r.metrics})
        summary["teams"][team] = {
            "episodes": len(results),
            "failed": sum(1 for r in run.results if r.team == team and r.status != "ok"),
            "metrics": {
                k: bootstrap_mean(
                    [r.metrics[k] for r in results if k in r.metrics], seed=seed
                ).as_dict()
                for k in metrics
            },
        }
    returns = {t: [r.metrics["team_return"] for r in ok[t]] for t in teams}
    for a in teams:
        for b in teams:
            if a != b and returns[a] and returns[b]:
                poi = probability_of_improvement(returns[a], returns[b], seed=seed)
                summary["improvement"][f"{a} > {b}"] = poi.as_dict()
    by_seed = {t: {r.seed: r.metrics["team_return"] for r in ok[t]} for t in teams}
    summary["paired"] = {
        f"{a} - {b}": paired_comparison(by_seed[a], by_seed[b], seed=seed)
        for i, b in enumerate(teams)
        for a in teams[i + 1 :]
        if set(by_seed[a]) & set(by_seed[b])
    }
    if run.oracle:
        summary["oracle"] = oracle_summary(run.oracle, ok)
    return summary


def write_tables(run: EvaluationRun, out: Path) -> None:
    """``episodes.json`` and ``episodes.csv``: every episode, failed ones included."""
    rows = [r.row() for r in run.results]
    (out / "episodes.json").write_text(json.dumps(rows, indent=1))
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with (out / "episodes.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_report(
    run: EvaluationRun, out: Path | str, training_log: Path | str | None = None
) -> Path:
    """Write every output of ``run`` into ``out``; returns the report's path."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_tables(run, out)
    summary = summarise(run)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    request = run.request
    lines = [
        f"# Evaluation: `{request.env_id}`",
        "",
        f"{len(request.teams)} team(s) x {len(request.seeds)} seed(s) "
        f"({_seed_text(request.seeds)}); {len(run.results)} episodes, {len(run.failed())} "
        f"failed; {'serial' if run.workers == 0 else f'{run.workers} Ray workers'}, "
        f"{run.wall_s:.1f} s. Means with 95% percentile-bootstrap intervals over episodes.",
        "",
    ]
    task = task_spec(request.env_id)
    lines += _metric_table(summary, task.headline)
    lines += _improvement_table(summary)
    lines += oracle_section(summary)
    lines += ["## Figures", ""]
    returns_figure(run, summary, out / "returns.png")
    lines += [
        "Team-return distribution per team (points: episodes; bar: mean and 95% CI).",
        "",
        "![returns](returns.png)",
        "",
    ]
    if run.oracle or PLANNER in summary["teams"]:
        seeds_figure(run, out / "seeds.png")
        lines += [
            "Per-seed team returns against the planner (black) and the proven bound (red "
            "triangles; a seed without a proven bound has none).",
            "",
            "![seeds](seeds.png)",
            "",
        ]
    # Show the best team's first successful episode: the schedule worth reading.
    # (The planner is flown from its solve, not rebuilt here: the best deployable team.)
    ranked = sorted(
        (t for t in summary["teams"] if t != PLANNER),
        key=lambda t: (
            -summary["teams"][t]["metrics"].get("team_return", {"estimate": -math.inf})["estimate"]
        ),
    )
    example = next(
        (r for t in ranked for r in run.results if r.team == t and r.status == "ok"), None
    )
    if example is not None and task.report_figure is not None:
        spec = EpisodeSpec(
            request.env_id,
            request.config,
            request.teams[[t.label for t in request.teams].index(example.team)],
            example.seed,
            trace=True,
        )
        traced = run_episode(spec)
        if traced.trace is not None:
            lines += task.load("report_figure")(spec, traced.trace, example.team, out)
    lines += ["## Learning curves", ""]
    if training_log is None:
        lines += [
            "No training log was given (`--training-log`): nothing in this project has "
            "trained a policy for this run, so there is no learning curve to show.",
            "",
        ]
    else:
        means = {
            team: data["metrics"]["team_return"]["estimate"]
            for team, data in summary["teams"].items()
            if data["metrics"].get("team_return")
        }
        shown = learning_figure(Path(training_log), out / "learning.png", means)
        lines += [
            f"From `{training_log}`: {shown}. Training returns are those of the exploring "
            "policy on training episodes; the dashed lines are this evaluation's means "
            "(deterministic policies, the seeds above).",
            "",
            "![learning](learning.png)",
            "",
        ]
    failed = run.failed()
    if failed:
        lines += ["## Failed episodes", ""]
        for r in failed:
            tail = r.error.strip().splitlines()[-1] if r.error else "unknown error"
            lines += [f"- team `{r.team}`, seed {r.seed}: `{tail}` (traceback in episodes.json)"]
        lines += [""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


# ------------------------------------------------------------------------------- tables
def _seed_text(seeds: tuple[int, ...]) -> str:
    if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _fmt(value: float) -> str:
    return f"{value:,.2f}" if abs(value) < 1e4 else f"{value:,.0f}"


def _metric_table(summary: dict[str, Any], metrics: tuple[str, ...]) -> list[str]:
    lines = [
        "## Per-team metrics",
        "",
        "| team | episodes | " + " | ".join(metrics) + " |",
        "|---|---:|" + "---:|" * len(metrics),
    ]
    for team, data in summary["teams"].items():
        cells = []
        for k in metrics:
            ci = data["metrics"].get(k)
            cells.append(
                "-"
                if ci is None
                else f"{_fmt(ci['estimate'])} [{_fmt(ci['low'])}, {_fmt(ci['high'])}]"
            )
        failed = f" ({data['failed']} failed)" if data["failed"] else ""
        lines.append(f"| `{team}` | {data['episodes']}{failed} | " + " | ".join(cells) + " |")
    return lines + [""]


def _improvement_table(summary: dict[str, Any]) -> list[str]:
    if not summary["improvement"]:
        return []
    lines = [
        "## Probability of improvement (team return)",
        "",
        "P(an episode of A returns more than one of B) + half the ties; 0.5: no difference.",
        "",
        "| A > B | probability [95% CI] |",
        "|---|---:|",
    ]
    for pair, ci in summary["improvement"].items():
        lines.append(f"| {pair} | {ci['estimate']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}] |")
    return lines + [""] + _paired_table(summary)


def _paired_table(summary: dict[str, Any]) -> list[str]:
    if not summary.get("paired"):
        return []
    lines = [
        "## Paired by seed (team return)",
        "",
        "Every later team against every earlier one on the seeds both flew: the mean of the",
        "per-seed differences and the share of seeds the later team won (ties half), each with",
        "its 95% bootstrap interval over seeds.",
        "",
        "| A - B | mean difference [95% CI] | A wins [95% CI] | wins / losses / ties |",
        "|---|---:|---:|---:|",
    ]
    for pair, c in summary["paired"].items():
        d, w = c["difference"], c["win_rate"]
        lines.append(
            f"| {pair} | {d['estimate']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] | "
            f"{w['estimate']:.3f} [{w['low']:.3f}, {w['high']:.3f}] | "
            f"{c['wins']} / {c['losses']} / {c['ties']} |"
        )
    return lines + [""]
