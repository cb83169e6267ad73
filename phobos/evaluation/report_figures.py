"""The evaluation report's figures: returns per team, an episode's schedule or site, learning.

Each function draws one PNG with matplotlib (imported when drawing, so reading a report's
tables does not load it). :func:`schedule_section` and :func:`site_section` are the
``report_figure`` parts of the orbit and sampling task specs: each draws its figure of one
traced episode and returns the report's Markdown lines about it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from phobos.evaluation.rollout import EpisodeSpec
from phobos.evaluation.runner import EvaluationRun

X_COLUMNS = (
    "env_steps",
    "timesteps_total",
    "num_env_steps_sampled_lifetime",
    "time/total_timesteps",
    "training_iteration",
    "step",
)
Y_COLUMNS = (
    "team_return_mean",
    "episode_return_mean",
    "env_runners/episode_return_mean",
    "rollout/ep_rew_mean",
    "ep_rew_mean",
)

SHORT_LABEL = 14
"""Team labels longer than this are drawn as T1, T2, ... with a key under the figure."""
SMOOTHING = 0.6
"""Weight of the exponential moving average drawn over each learning curve (TensorBoard's
default), the raw curve faint behind it."""


def team_keys(teams: list[str]) -> tuple[list[str], list[str]]:
    """Axis labels for ``teams`` (long ones become ``T1``...) and the key lines for those."""
    if all(len(team) <= SHORT_LABEL for team in teams):
        return list(teams), []
    labels = [f"T{i + 1}" for i in range(len(teams))]
    return labels, [f"{label} = {team}" for label, team in zip(labels, teams, strict=True)]


def returns_figure(run: EvaluationRun, summary: dict[str, Any], path: Path) -> None:
    """Every episode's team return per team, with its mean and 95% interval (``returns.png``)."""
    import matplotlib.pyplot as plt

    fig = returns_plot(run, summary)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def returns_plot(run: EvaluationRun, summary: dict[str, Any]) -> Any:
    """The figure of :func:`returns_figure`, open.

    A title; long team names drawn as T1, T2, ... with a key; above each team after the
    first, its probability of improvement over the first (the baseline) with its interval.
    """
    import matplotlib.pyplot as plt
    from matplotlib.transforms import blended_transform_factory

    teams = [t.label for t in run.request.teams]
    labels, key = team_keys(teams)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(teams) + 1.5), 3.8))
    rng = np.random.default_rng(0)
    for i, team in enumerate(teams):
        values = [
            r.metrics["team_return"] for r in run.results if r.team == team and r.status == "ok"
        ]
        if not values:
            continue
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=12, alpha=0.6)
        ci = summary["teams"][team]["metrics"]["team_return"]
        ax.errorbar(
            i + 0.3,
            ci["estimate"],
            yerr=[[ci["estimate"] - ci["low"]], [ci["high"] - ci["estimate"]]],
            fmt="o",
            color="black",
            capsize=4,
        )
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for i, team in enumerate(teams[1:], 1):
        poi = summary.get("improvement", {}).get(f"{team} > {teams[0]}")
        if poi is not None:
            ax.text(
                i,
                1.02,
                f"P(> {labels[0]}) = {poi['estimate']:.2f}\n[{poi['low']:.2f}, {poi['high']:.2f}]",
                transform=top,
                ha="center",
                va="bottom",
                fontsize=7,
            )
    bounds = [o["upper_bound"] for o in run.oracle if o.get("proven")]
    if bounds:
        ax.scatter(
            np.full(len(bounds), len(teams)) + rng.uniform(-0.15, 0.15, len(bounds)),
            bounds,
            s=12,
            marker="^",
            color="tab:red",
        )
        labels = labels + ["proven bound"]
    if key:
        ax.set_xticks(range(len(labels)), labels)
    else:
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel("team return")
    ax.grid(axis="y", alpha=0.3)
    episodes = len(run.request.seeds)
    fig.suptitle(
        f"Team return per episode, {run.request.env_id} ({episodes} seeds): dots are episodes, "
        "black the mean with its 95% interval",
        fontsize=9,
    )
    if len(teams) > 1:
        ax.set_title(
            f"P(> {labels[0]}): probability that a team's episode beats the baseline's",
            fontsize=7,
            pad=26,
        )
    if key:
        fig.text(0.01, -0.02, "\n".join(key), ha="left", va="top", fontsize=7, wrap=True)
    fig.tight_layout()
    return fig


def schedule_section(
    spec: EpisodeSpec, trace: dict[str, list[int]], team: str, folder: Path
) -> list[str]:
    """``schedule.png`` of one orbit episode and its caption (the orbit task's figure)."""
    schedule_figure(spec, trace, folder / "schedule.png")
    return [
        f"Schedule of team `{team}`, seed {spec.seed}: each agent's "
        "activity per step; grey bands: a station sees Mars (stations) or a "
        "downlink is possible (spacecraft); red ticks: occultation "
        "opportunities.",
        "",
        "![schedule](schedule.png)",
        "",
    ]


def site_section(
    spec: EpisodeSpec, trace: dict[str, list[int]], team: str, folder: Path
) -> list[str]:
    """``site.png`` of one sampling episode and its caption (the sampling task's figure)."""
    site_figure(spec, trace, folder / "site.png")
    return [
        f"Site of seed {spec.seed} with team `{team}`: colour is the "
        "hidden science value; squares: imaged areas, triangles: spectrometer, "
        "circles: sampled cells; hatched: out of the arm's reach.",
        "",
        "![site](site.png)",
        "",
    ]


def schedule_figure(spec: EpisodeSpec, trace: dict[str, list[int]], path: Path) -> None:
    """One orbit episode: each agent's activity per step (``schedule.png``)."""
    import matplotlib.pyplot as plt

    from phobos.envs import make

    env = make(spec.env_id, spec.config)
    env.reset(seed=spec.seed)
    plan, config = env.plan, env.config
    agents = env.possible_agents
    hours = config.step_seconds / 3600.0
    names = sorted({n for a in agents for n in env.action_names(a)})
    colours = {n: plt.get_cmap("tab20")(i % 20) for i, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(agents) + 1.6))
    sees = plan.station_sees_mars[0]
    can_downlink = plan.earth_visible[0] & sees.any(axis=-1)[:, None]
    for row, agent in enumerate(agents):
        window = can_downlink[:, row] if row < 2 else sees[:, row - 2]
        for t in np.flatnonzero(window):
            ax.broken_barh([(t * hours, hours)], (row - 0.45, 0.9), color="0.88", zorder=0)
        action_names = env.action_names(agent)
        for t, action in enumerate(trace[agent]):
            if action == 0:  # idle: leave the contact window visible
                continue
            name = action_names[action]
            ax.broken_barh([(t * hours, hours)], (row - 0.3, 0.6), color=colours[name], zorder=2)
    for t in np.flatnonzero(plan.occultation[0]):
        ax.plot([t * hours + hours / 2] * 2, [-0.6, 1.6], color="tab:red", lw=0.8, zorder=3)
    env.close()
    ax.set_yticks(range(len(agents)), agents)
    ax.invert_yaxis()
    ax.set_xlabel("hours since episode start")
    ax.set_title(f"Schedule of team {spec.team.label[:60]}, seed {spec.seed}", fontsize=9)
    used = {env.action_names(a)[x] for a in agents for x in trace[a] if x}
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[n]) for n in sorted(used)]
    ax.legend(
        handles,
        sorted(used),
        fontsize=7,
        ncol=4,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25),
        frameon=False,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def site_figure(spec: EpisodeSpec, trace: dict[str, list[int]], path: Path) -> None:
    """One sampling episode: the site and what the lander did where (``site.png``)."""
    import matplotlib.pyplot as plt

    from phobos.envs import make
    from phobos.envs.sampling.site import area_cells

    env = make(spec.env_id, spec.config)
    env.reset(seed=spec.seed)
    site, config = env.site, env.config.site
    layout = env.layout
    rows, cols = config.rows, config.cols
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    image = ax.imshow(site.value.reshape(rows, cols), cmap="viridis", origin="upper")
    fig.colorbar(image, ax=ax, label="hidden science value")
    for cell in np.flatnonzero(~site.reachable):
        r, c = divmod(int(cell), cols)
        ax.add_patch(
            plt.Rectangle(
                (c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///", edgecolor="white", lw=0
            )
        )
    areas = area_cells(config)
    for action in trace["phobos_grunt"]:
        kind, target = layout.decode(action)
        if kind == "image":
            cells = areas[target]
            r0, c0 = divmod(int(cells.min()), cols)
            k = config.area_cells
            ax.add_patch(
                plt.Rectangle((c0 - 0.5, r0 - 0.5), k, k, fill=False, edgecolor="orange", lw=2)
            )
        elif kind in ("spectrometer", "sample"):
            r, c = divmod(target, cols)
            marker = "^" if kind == "spectrometer" else "o"
            offset = -0.2 if kind == "spectrometer" else 0.2
            ax.scatter(
                c + offset,
                r,
                marker=marker,
                s=60,
                facecolor="none",
                edgecolor="white" if kind == "spectrometer" else "red",
                lw=1.5,
            )
    env.close()
    ax.set_xlabel("column")
    ax.set_ylabel("row (from the lander outwards)")
    ax.set_title(f"Site of seed {spec.seed}, team {spec.team.label[:40]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def smooth(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """Debiased exponential moving average of ``values`` (TensorBoard's smoothing)."""
    out, average = [], 0.0
    for i, value in enumerate(values, 1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**i))
    return out


def learning_figure(log: Path, path: Path, baselines: dict[str, float] | None = None) -> str:
    """Training curves from a progress CSV beside the teams' means; returns a caption."""
    import matplotlib.pyplot as plt

    fig, caption = learning_plot(log, baselines)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # the legend sits outside the axes
    plt.close(fig)
    return caption


def learning_plot(log: Path, baselines: dict[str, float] | None = None) -> tuple[Any, str]:
    """The figure of :func:`learning_figure` (each curve smoothed, raw faint) and its caption."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    if not log.exists():
        raise ValueError(f"training log {log} does not exist")
    with log.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = rows[0].keys() if rows else []
    x_key = next((k for k in X_COLUMNS if k in header), None)
    y_key = next((k for k in Y_COLUMNS if k in header), None)
    if x_key is None or y_key is None:
        raise ValueError(
            f"training log {log} needs an x column ({', '.join(X_COLUMNS)}) and a y column "
            f"({', '.join(Y_COLUMNS)})"
        )
    trials: dict[str, dict[float, float]] = {}
    for row in rows:
        if not row.get(x_key) or not row.get(y_key):
            continue
        x, y = float(row[x_key]), float(row[y_key])
        if math.isfinite(x) and math.isfinite(y):
            label = " ".join(f"{k} {row[k]}" for k in ("seed", "lr") if row.get(k))
            trials.setdefault(label, {})[x] = y  # a resumed run's repeated rows: the last wins
    points = sum(len(curve) for curve in trials.values())
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for i, (label, curve) in enumerate(trials.items()):
        xs = sorted(curve)
        ys = [curve[x] for x in xs]
        colour = f"C{i % 10}"
        ax.plot(xs, ys, color=colour, alpha=0.25, linewidth=0.8)
        ax.plot(xs, smooth(ys), color=colour, label=f"{label or 'training'} (smoothed)")
    for i, (team, mean) in enumerate((baselines or {}).items()):
        name = team if len(team) <= 40 else f"{team[:18]}...{team[-18:]}"
        ax.axhline(mean, linestyle="--", color=f"C{(i + len(trials)) % 10}", label=name)
    if trials or baselines:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.xaxis.set_major_formatter(EngFormatter())  # 40 k, not 40000 run into its neighbours
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)
    ax.set_title(
        f"Training: {y_key} against {x_key} (EMA {SMOOTHING:g}; raw curves faint; dashed: "
        "evaluated teams' means)",
        fontsize=8,
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    caption = f"{points} points of `{y_key}` against `{x_key}` ({len(trials)} curve(s))"
    return fig, caption
