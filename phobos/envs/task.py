"""A task spec: everything the layers above need to know about one task, in one registration.

A task is its folder plus one :func:`~phobos.envs.registry.register_task` call (kept in the
folder's ``task.py``). The spec names the task's versioned environment ids and, for the layers
above ``envs``, the parts they read: the scripted teams (``agents``), the single-agent view
(``training``), the episode metrics and headline report columns (``evaluation``) and the
dashboard's telemetry view (``live``). Parts that live above ``envs`` are named by
``"module:attribute"`` strings, resolved only by the layer that uses them (:meth:`TaskSpec.load`),
so that ``envs`` imports nothing above itself.

Required parts: ``name``, ``envs``, ``teams``, ``single_agent_view``, ``metrics``.
Optional parts: ``headline`` (default: team return only), ``telemetry_view`` (default: the
world's generic view of actions and rewards), ``report_figure``, ``describe_episode``,
``oracle``.

``tests/tiny_task.py`` is the worked example: a task defined and registered in one test module.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EnvSpec:
    """A registered environment id (one version of a task).

    Attributes:
        id: ``name-vN``.
        entry_point: ``"module:attribute"`` of the environment class or factory, called as
            ``factory(config, **constructor_arguments)``.
        config_entry_point: ``"module:attribute"`` of its configuration dataclass.
        batch_entry_point: ``"module:attribute"`` of the task's vectorised batch core (called
            as ``core(config, num_envs=n)``), or ``None`` when it has none.
        task: The name of the :class:`TaskSpec` this id belongs to (set by ``register_task``);
            ``None`` for an id registered on its own.

    """

    id: str
    entry_point: str
    config_entry_point: str
    batch_entry_point: str | None = None
    task: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One task: its environment versions and the parts each layer above ``envs`` reads.

    Every ``"module:attribute"`` string is resolved lazily by :meth:`load`, in the layer that
    uses it.
    """

    name: str
    """The task's name (``orbit-scheduling``); every id in ``envs`` is ``name-vN``."""
    envs: tuple[EnvSpec, ...]
    """Required: the task's versioned ids, oldest first (each registered by ``register_task``)."""
    teams: Mapping[str, str]
    """Required: scripted team name -> ``"module:attribute"`` of a builder called as
    ``builder(env)`` that returns one policy per agent (``phobos.agents.make_team`` reads them;
    ``random`` is offered for every task on top). A task offers ``greedy`` so that the
    ``trained`` team can fly it beside a committed policy."""
    single_agent_view: str
    """Required: ``"module:attribute"`` of ``view(env, learner)`` returning a Gymnasium ``Env``
    in which ``learner`` acts and scripted teammates fly the rest (Stable-Baselines3 training);
    ``learner=None`` picks the task's usual learner."""
    metrics: str
    """Required: ``"module:attribute"`` of an :class:`EpisodeMetrics` class, built per episode
    as ``metrics(env)`` by evaluation's rollout."""
    headline: tuple[str, ...] = ("team_return",)
    """Metric columns of the evaluation report's table, in order."""
    telemetry_view: str | None = None
    """``"module:attribute"`` of the live world's telemetry view class (built as ``view()``)
    that the dashboard draws; ``None``: the world's generic view (actions and rewards)."""
    report_figure: str | None = None
    """``"module:attribute"`` of ``figure(spec, trace, team, folder) -> list[str]``: draws one
    traced episode into ``folder`` and returns the report's Markdown lines; ``None``: none."""
    describe_episode: str | None = None
    """``"module:attribute"`` of ``describe(env) -> list[str]``: lines ``phobos run`` prints
    about an episode just flown (dates, geometry); ``None``: none."""
    array_teams: Mapping[str, str] = field(default_factory=dict)
    """Scripted team name -> ``"module:attribute"`` of its twin over the batch core's arrays,
    built as ``twin(config)`` and called as ``twin(observations, masks) -> actions`` on
    ``[env, agent, ...]`` arrays, with the same choices as the team (the on-policy warm
    start's expert); empty: none."""
    oracle: bool = False
    """Whether evaluation's offline oracle (the proven bound and the ``planner`` team of
    ``phobos.evaluation.oracle``) models this task."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "-v" in self.name:
            raise ValueError(f"task name {self.name!r} must be a non-empty name without '-vN'")
        where = f"task {self.name!r}"
        object.__setattr__(self, "envs", tuple(self.envs))
        if not self.envs or not all(isinstance(env, EnvSpec) for env in self.envs):
            raise ValueError(f"{where}: TaskSpec.envs is required (one EnvSpec per version)")
        for env in self.envs:
            if env.id.rpartition("-v")[0] != self.name:
                raise ValueError(f"{where}: environment id {env.id!r} is not {self.name}-vN")
        if not isinstance(self.teams, Mapping) or not self.teams:
            raise ValueError(f"{where}: TaskSpec.teams is required (name -> 'module:attribute')")
        object.__setattr__(self, "teams", dict(self.teams))
        for team, entry in self.teams.items():
            _check_entry_point(entry, f"{where}: team {team!r}")
        object.__setattr__(self, "array_teams", dict(self.array_teams))
        for team, entry in self.array_teams.items():
            if team not in self.teams:
                raise ValueError(f"{where}: array team {team!r} is not one of TaskSpec.teams")
            _check_entry_point(entry, f"{where}: array team {team!r}")
        for part in ("single_agent_view", "metrics"):
            if not getattr(self, part):
                raise ValueError(f"{where}: TaskSpec.{part} is required ('module:attribute')")
            _check_entry_point(getattr(self, part), f"{where}: TaskSpec.{part}")
        for part in ("telemetry_view", "report_figure", "describe_episode"):
            if getattr(self, part) is not None:
                _check_entry_point(getattr(self, part), f"{where}: TaskSpec.{part}")
        object.__setattr__(self, "headline", tuple(self.headline))

    @property
    def ids(self) -> tuple[str, ...]:
        """The task's environment ids, oldest first."""
        return tuple(env.id for env in self.envs)

    def load(self, part: str) -> Any:
        """Import and return the object a part names (``"teams"`` needs :meth:`team`)."""
        entry = getattr(self, part)
        if entry is None:
            raise ValueError(f"task {self.name!r} has no {part}")
        return load_entry_point(entry)

    def team(self, name: str) -> Any:
        """The builder of the scripted team ``name``."""
        if name not in self.teams:
            raise ValueError(
                f"task {self.name!r} has no team {name!r}; teams: {', '.join(sorted(self.teams))}"
            )
        return load_entry_point(self.teams[name])

    def array_team(self, name: str) -> Any:
        """The class of the scripted team ``name``'s twin over batch arrays."""
        if name not in self.array_teams:
            twins = ", ".join(sorted(self.array_teams)) or "none"
            raise ValueError(
                f"task {self.name!r} has no array twin of team {name!r} (teams with one: {twins})"
            )
        return load_entry_point(self.array_teams[name])


class EpisodeMetrics:
    """The task's metrics of one episode, fed every step by evaluation's rollout.

    Required: :meth:`result`. Optional hook: :meth:`step` (does nothing by default). The
    rollout adds what every task shares (``team_return`` first; ``masked_actions``, the
    message counts and latencies and ``steps`` after the task's own).

    Args:
        env: The environment the episode runs in (reset already).

    """

    def __init__(self, env: Any) -> None:
        self.env = env

    def step(
        self,
        before: dict[str, Any],
        after: dict[str, Any],
        infos: dict[str, dict[str, Any]],
    ) -> None:
        """One step: observations before and after it and the step's infos."""

    def result(self, summary: dict[str, Any]) -> dict[str, float]:
        """The task's metrics, given the episode summary (``infos[agent]["episode"]``)."""
        raise NotImplementedError


def load_entry_point(entry_point: str) -> Any:
    """The object ``"module:attribute"`` names."""
    module, _, attribute = entry_point.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _check_entry_point(entry: Any, where: str) -> None:
    module, sep, attribute = str(entry).partition(":") if isinstance(entry, str) else ("", "", "")
    if not (module and sep and attribute):
        raise ValueError(f"{where}: {entry!r} is not a 'module:attribute' entry point")
