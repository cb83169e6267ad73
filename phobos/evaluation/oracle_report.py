"""The oracle's part of an evaluation report: proven bounds, the planner, gaps per seed.

Only proven bounds enter a gap (:mod:`phobos.evaluation.oracle.solve` says what proven
means); a seed without one is counted and listed, never given a number. A share of the bound
is computed only where the bound is positive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PLANNER = "planner"
"""The planner team: a reference with full knowledge, not deployable."""


def _fmt(value: float) -> str:
    return f"{value:,.2f}" if abs(value) < 1e4 else f"{value:,.0f}"


def quartiles(values: list[float]) -> dict[str, float] | None:
    """Median and quartiles of ``values`` (``None`` when empty)."""
    if not values:
        return None
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "n": len(values)}


def oracle_summary(entries: list[dict[str, Any]], ok: dict[str, list[Any]]) -> dict[str, Any]:
    """Bounds and gaps per seed: only proven bounds count, unproven seeds are listed.

    Per team: ``to_bound`` (bound minus return) and ``share`` (return over bound, only where
    the bound is positive) over the seeds with a proven bound; ``to_planner`` (planner return
    minus the team's) and ``to_planner_share`` (over the planner's return, where positive)
    over every seed the planner flew. Each as median and quartiles over seeds.
    """
    proven = {o["seed"]: o["upper_bound"] for o in entries if o.get("proven")}
    planner = {r.seed: r.metrics["team_return"] for r in ok.get(PLANNER, [])}
    gaps = [o["bound_gap"] for o in entries if o.get("proven") and o.get("bound_gap") is not None]
    out: dict[str, Any] = {
        "episodes": entries,
        "seeds": len(entries),
        "proven": len(proven),
        "unproven": [
            {"seed": o["seed"], "status": o["status"], "error": o.get("error", "")}
            for o in entries
            if not o.get("proven")
        ],
        "bound_gap": quartiles(gaps),
        "bound_over_planner": quartiles(
            [proven[s] / p - 1.0 for s, p in planner.items() if s in proven and p > 1e-9]
        ),
        "teams": {},
        "returns": {
            team: {str(r.seed): r.metrics["team_return"] for r in results}
            for team, results in ok.items()
        },
    }
    for team, results in ok.items():
        returns = {r.seed: r.metrics["team_return"] for r in results}
        with_bound = [(proven[s], g) for s, g in returns.items() if s in proven]
        with_planner = [(planner[s], g) for s, g in returns.items() if s in planner]
        out["teams"][team] = {
            "to_bound": quartiles([b - g for b, g in with_bound]),
            "share": quartiles([g / b for b, g in with_bound if b > 1e-9]),
            "to_planner": quartiles([p - g for p, g in with_planner]) if team != PLANNER else None,
            "to_planner_share": quartiles([(p - g) / p for p, g in with_planner if p > 1e-9])
            if team != PLANNER
            else None,
        }
    return out


def _q(q: dict[str, float] | None, percent: bool = False) -> str:
    if q is None:
        return "-"
    f = (lambda v: f"{v:.1%}") if percent else _fmt
    return f"{f(q['median'])} [{f(q['q1'])}, {f(q['q3'])}]"


def oracle_section(summary: dict[str, Any]) -> list[str]:
    """The report's Markdown section on bounds, the planner and every team's gaps."""
    oracle = summary.get("oracle")
    if not oracle:
        return []
    episodes = oracle["episodes"]
    by_source: dict[str, int] = {}
    for o in episodes:
        if o.get("proven"):
            by_source[o["bound_source"]] = by_source.get(o["bound_source"], 0) + 1
    sources = ", ".join(f"{n} {k}" for k, n in sorted(by_source.items())) or "none"
    first = next((o for o in episodes if "time_limit_s" in o), {})
    lines = [
        "## Oracle: proven bounds and the planner",
        "",
        f"Bound proven on {oracle['proven']}/{oracle['seeds']} episodes ({sources}; "
        f"{first.get('solver', '?')} for {first.get('time_limit_s', '?')} s with "
        f"{first.get('workers', '?')} worker(s) per seed, the model's LP relaxation beside it). "
        "A bound is proven by the solver (OPTIMAL, or FEASIBLE with its dual bound) or by "
        "the LP relaxation of the same model; any other status (CP-SAT UNKNOWN, SCIP "
        "NOT_SOLVED) proves nothing and gives no number. The model is a "
        "relaxation of the environment (its docstring, "
        "`phobos/evaluation/oracle/model.py`, lists where), so a bound holds for every team. "
        f"Bound above the best schedule found, per seed: {_q(oracle['bound_gap'], True)} "
        "(median [quartiles])"
        + (
            f"; above the planner's flown return: {_q(oracle['bound_over_planner'], True)}."
            if oracle.get("bound_over_planner")
            else "."
        ),
        "",
    ]
    if oracle["unproven"]:
        lines += ["Episodes without a proven bound (left out of the gaps to the bound):", ""]
        lines += [
            f"- seed {o['seed']}: {o['status']}" + (f" ({o['error']})" if o["error"] else "")
            for o in oracle["unproven"]
        ]
        lines += [""]
    if PLANNER in summary["teams"]:
        lines += [
            "The `planner` team is a reference, not a deployable team: it solves each episode "
            "offline with full knowledge of the plan tables and flies the schedule open loop in "
            "the real environment (or the greedy team's schedule where that flies better).",
            "",
        ]
    lines += [
        "Per team, over seeds: median [quartiles].",
        "",
        "| team | bound - return | return / bound | planner - return | "
        "(planner - return) / planner |",
        "|---|---:|---:|---:|---:|",
    ]
    for team, gaps in oracle["teams"].items():
        label = f"`{team}` (reference)" if team == PLANNER else f"`{team}`"
        lines.append(
            f"| {label} | {_q(gaps['to_bound'])} | {_q(gaps['share'], True)} | "
            f"{_q(gaps['to_planner'])} | {_q(gaps['to_planner_share'], True)} |"
        )
    lines += ["", "Per seed (bound above the best schedule found: as a share of the bound):", ""]
    teams = list(oracle["returns"])
    lines += [
        "| seed | status | proven bound | bound above best | " + " | ".join(teams) + " |",
        "|---:|---|---:|---:|" + "---:|" * len(teams),
    ]
    for o in episodes:
        bound = f"{_fmt(o['upper_bound'])} ({o['bound_source']})" if o.get("proven") else "none"
        gap = o.get("bound_gap")
        returns = [oracle["returns"][t].get(str(o["seed"])) for t in teams]
        cells = ["-" if r is None else _fmt(r) for r in returns]
        lines.append(
            f"| {o['seed']} | {o.get('solver', '')} {o['status']} | {bound} | "
            f"{'-' if gap is None else f'{gap:.1%}'} | " + " | ".join(cells) + " |"
        )
    return lines + [""]


def seeds_figure(run: Any, path: Path) -> None:
    """Per-seed returns of every team against the planner and the proven bound."""
    import matplotlib.pyplot as plt

    seeds = list(run.request.seeds)
    x = {seed: i for i, seed in enumerate(seeds)}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(seeds) + 3.0), 3.8))
    for team in (t.label for t in run.request.teams):
        points = sorted(
            (x[r.seed], r.metrics["team_return"])
            for r in run.results
            if r.team == team and r.status == "ok"
        )
        if not points:
            continue
        style = {"color": "black", "lw": 2.0, "zorder": 3} if team == PLANNER else {}
        ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=team[-40:], **style)
    proven = sorted((x[o["seed"]], o["upper_bound"]) for o in run.oracle if o.get("proven"))
    if proven:
        ax.scatter(*zip(*proven, strict=True), marker="^", color="tab:red", label="proven bound")
    ax.set_xticks(range(len(seeds)), [str(s) for s in seeds], rotation=90, fontsize=7)
    ax.set_xlabel("seed")
    ax.set_ylabel("team return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
