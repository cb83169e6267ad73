"""Evaluation runs: every (team, seed) episode, serially or fanned out as Ray tasks.

Everything that can be wrong with a request (environment id, config, team specs and their
checkpoints, seeds, an unreachable Ray address) raises ``ValueError`` before any episode
runs. A crashed episode is a ``failed`` :class:`~phobos.evaluation.rollout.EpisodeResult`
with its seed and traceback; the rest of the run completes. Results come back in request
order (team, then seed), whatever order the workers finish in, so a parallel run equals a
serial one row for row.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from phobos.agents.team_spec import TeamSpec, build_team
from phobos.envs import make, registered_tasks, task_named, task_spec
from phobos.evaluation.rollout import EpisodeResult, EpisodeSpec, run_episode
from phobos.ray_cluster import check_ray_address, init_ray

log = logging.getLogger(__name__)
PLANNER = "planner"
"""The planner team (:mod:`phobos.evaluation.oracle.planner`)."""


@dataclass(frozen=True)
class EvaluationRequest:
    """What to evaluate.

    Attributes:
        env_id: Registered environment id.
        teams: Team specs (see :mod:`phobos.agents.team_spec`), one evaluated team each.
        seeds: Episode seeds; every team flies every seed.
        config: The environment's configuration; ``None`` for its defaults.
        record: Keep every episode's steps (:mod:`phobos.envs.recording`) in its result.

    """

    env_id: str
    teams: tuple[TeamSpec, ...]
    seeds: tuple[int, ...]
    config: Any = None
    record: bool = False

    def episodes(self) -> list[EpisodeSpec]:
        """One spec per (team, seed), teams outermost."""
        return [
            EpisodeSpec(self.env_id, self.config, team, seed, record=self.record)
            for team in self.teams
            for seed in self.seeds
        ]


@dataclass(frozen=True)
class OracleRequest:
    """The per-seed solves a run needs (``--oracle`` bounds, the ``planner`` team).

    Attributes:
        time_limit_s: CP-SAT's wall-clock limit per seed (positive).
        workers: CP-SAT search workers per solve (1: deterministic for a given effort).
        cache_dir: Folder of cached solutions (``None``: solve every time).
        solver: ``scip`` or ``cp-sat`` (:data:`~phobos.evaluation.oracle.solve.BACKENDS`).

    """

    time_limit_s: float = 10.0
    workers: int = 1
    cache_dir: str | None = None
    solver: str = "scip"


@dataclass
class EvaluationRun:
    """The outcome of a run.

    Attributes:
        request: What was asked.
        results: One result per episode, in :meth:`EvaluationRequest.episodes` order.
        workers: Ray workers used (0: serial, in this process).
        wall_s: Seconds the run took, a Ray start-up it needed included.
        oracle: Per seed, the oracle's :meth:`~phobos.evaluation.oracle.OracleResult.as_dict`
            (filled by the caller when asked for; empty otherwise).

    """

    request: EvaluationRequest
    results: list[EpisodeResult]
    workers: int
    wall_s: float
    oracle: list[dict[str, Any]] = field(default_factory=list)

    def failed(self) -> list[EpisodeResult]:
        """The episodes that crashed."""
        return [r for r in self.results if r.status != "ok"]


def parse_seeds(text: str | Iterable[Any]) -> tuple[int, ...]:
    """Seeds from ``"1,2,3"``, ``"0-9"`` or an iterable; every one must be an integer."""
    items: list[Any] = []
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        if any(parts) and not all(parts):
            raise ValueError(f"seeds {text!r}: an empty item between commas")
        for part in filter(None, parts):
            low, dash, high = part.partition("-")
            if dash and low.strip().lstrip("+").isdigit() and high.strip().isdigit():
                if int(high) < int(low):
                    raise ValueError(
                        f"seed range {part!r} is reversed: write it low-high, {high}-{low}"
                    )
                items.extend(range(int(low), int(high) + 1))
            else:
                items.append(part)
    else:
        items = list(text)
    seeds = []
    for item in items:
        if isinstance(item, bool) or not (
            isinstance(item, int) or (isinstance(item, str) and item.strip().lstrip("-").isdigit())
        ):
            raise ValueError(f"seed {item!r} is not an integer")
        seeds.append(int(item))
    negative = [seed for seed in seeds if seed < 0]
    if negative:
        raise ValueError(f"seed {negative[0]} is negative: episode seeds are >= 0")
    if not seeds:
        raise ValueError("no seeds: give at least one episode")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}")
    return tuple(seeds)


def make_request(
    env_id: str, teams: Sequence[str | TeamSpec], seeds: Iterable[Any], config: Any = None
) -> EvaluationRequest:
    """Build and check a request: every problem is a ValueError here, before any episode."""
    seeds = parse_seeds(seeds)
    if not teams:
        raise ValueError("no policies: give at least one team")
    specs = tuple(t if isinstance(t, TeamSpec) else TeamSpec.parse(t) for t in teams)
    labels = [spec.label for spec in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"teams repeat: {labels}")
    env = make(env_id, config)
    for spec in specs:
        if spec.base == PLANNER:
            check_oracle_task(env_id, "team 'planner'", "the 'oracle' team is the reference")
            if spec.overrides:
                raise ValueError(f"team {spec.label!r}: the planner flies every agent")
            continue
        build_team(spec, env, seed=0)  # unknown names and mismatched checkpoints fail here
    env.close()
    return EvaluationRequest(env_id, specs, seeds, config)


def check_oracle_task(env_id: str, who: str, instead: str = "") -> None:
    """Refuse ``env_id`` unless the oracle models its task (its task spec's ``oracle``)."""
    if not task_spec(env_id).oracle:
        modelled = [name for name in registered_tasks() if task_named(name).oracle]
        raise ValueError(
            f"{who} solves {' and '.join(modelled) or 'no'} episodes, not {env_id}"
            + (f"; for {env_id} {instead}" if instead else "")
        )


def evaluate(
    request: EvaluationRequest,
    workers: int = 0,
    ray_address: str | None = None,
    progress: bool = True,
    episode_fn: Callable[[EpisodeSpec], EpisodeResult] | None = None,
    oracle: OracleRequest | None = None,
) -> EvaluationRun:
    """Run every episode of ``request``, and the oracle's solve of every seed when asked.

    Args:
        request: From :func:`make_request` (already checked).
        workers: 0 runs serially in this process; ``k > 0`` runs at most ``k`` jobs at once
            as Ray tasks (a local Ray instance of ``k`` CPUs unless one is running or
            ``ray_address`` names a cluster). Solves run beside the rollouts, each taking
            ``oracle.workers`` CPUs; a planner episode starts once its seed is solved.
        ray_address: Join this Ray cluster instead of starting one.
        progress: Show a progress bar (tqdm) on stderr, and a line per solved seed.
        episode_fn: What runs one episode; :func:`run_episode` by default (tests swap in
            a crashing one).
        oracle: Solve every seed (needed by the ``planner`` team, which gets the default
            request when none is given); its bounds land in ``EvaluationRun.oracle``.

    """
    from phobos.evaluation.oracle.planner import planner_episode

    episode_fn = episode_fn or run_episode
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if ray_address is not None:
        check_ray_address(ray_address)
        workers = max(workers, 1)
    specs = request.episodes()
    if oracle is None and any(t.base == PLANNER for t in request.teams):
        oracle = OracleRequest()
    if oracle is not None:
        check_oracle_task(request.env_id, "the oracle")
    bar = _progress(len(specs), progress)
    results: list[EpisodeResult | None] = [None] * len(specs)
    solved: dict[int, dict[str, Any]] = {}
    jobs: list[_Job] = []
    waiting: dict[int, list[int]] = {}
    if oracle is not None:
        for seed in request.seeds:
            args = (
                request.config,
                seed,
                oracle.time_limit_s,
                oracle.workers,
                oracle.cache_dir,
                oracle.solver,
            )
            jobs.append(_Job(("solve", seed), _solve, args, oracle.workers))
    for index, spec in enumerate(specs):
        if spec.team.base == PLANNER:
            waiting.setdefault(spec.seed, []).append(index)
        else:
            jobs.append(_Job(("episode", index), episode_fn, (spec,), 1))

    def done(key: tuple[str, int], value: Any) -> list[_Job]:
        kind, item = key
        if kind == "episode":
            results[item] = value
            bar(value)
            return []
        solution, entry = value
        solved[item] = entry
        _note(progress, _solve_line(entry, len(solved), len(request.seeds)))
        return [
            _Job(("episode", index), planner_episode, (specs[index], solution), 1)
            for index in waiting.get(item, [])
        ]

    def failed(key: tuple[str, int], error: BaseException) -> Any:
        kind, item = key
        text = f"{type(error).__name__}: {error}"
        if kind == "episode":
            spec = specs[item]
            return EpisodeResult(spec.team.label, spec.seed, "failed", error=text)
        return None, {
            "seed": item,
            "status": "FAILED",
            "proven": False,
            "upper_bound": None,
            "bound_source": "",
            "error": text,
        }

    start = time.perf_counter()
    if workers == 0:
        queue = list(jobs)
        while queue:
            job = queue.pop(0)
            try:
                value = job.fn(*job.args)
            except Exception as error:  # noqa: BLE001 - a crashed solve fails its seed only
                value = failed(job.key, error)
            queue.extend(done(job.key, value))
    else:
        _ray_jobs(jobs, workers, ray_address, done, failed)
    wall = time.perf_counter() - start
    bar(None)
    run = EvaluationRun(request, [r for r in results if r is not None], workers, wall)
    run.oracle = [solved[seed] for seed in request.seeds if seed in solved]
    return run


@dataclass(frozen=True)
class _Job:
    key: tuple[str, int]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    cpus: int


def _solve(*args: Any) -> tuple[Any, dict[str, Any]]:
    """A solve job: the solution (with its schedule) and its report entry (without)."""
    from phobos.evaluation.oracle.planner import solve_cached

    solution = solve_cached(*args)
    return solution, solution.as_dict()


def _solve_line(entry: dict[str, Any], count: int, total: int) -> str:
    head = f"oracle {count}/{total}: seed {entry['seed']}"
    if entry.get("error"):
        return f"{head}: solve FAILED ({entry['error']})"
    if not entry["proven"]:
        return (
            f"{head}: NO bound proven ({entry['solver']} {entry['status']}, "
            f"{entry['wall_s']:.1f} s)"
        )
    found = entry.get("objective")
    gap = entry.get("bound_gap")
    best = "no schedule found" if found is None else f"best schedule {found:.2f}"
    share = "" if gap is None else f", {gap:.1%} below the bound"
    return (
        f"{head}: bound {entry['upper_bound']:.2f} proven ({entry['bound_source']}; "
        f"{entry['solver']} {entry['status']}), {best}{share}, {entry['wall_s']:.1f} s"
    )


def _note(progress: bool, line: str) -> None:
    if not progress:
        return
    try:
        from tqdm import tqdm
    except ImportError:
        log.warning("%s", line)
        return
    tqdm.write(line, file=sys.stderr)


def _ray_jobs(
    jobs: list[_Job],
    workers: int,
    address: str | None,
    done: Callable[[tuple[str, int], Any], list[_Job]],
    failed: Callable[[tuple[str, int], BaseException], Any],
) -> None:
    import ray

    started = init_ray(workers, address)
    try:
        remote = ray.remote(max_retries=0)(_call)
        pending: dict[Any, _Job] = {}
        queue = list(jobs)
        busy = 0
        while queue or pending:
            # At most `workers` CPUs in flight, so a cluster bigger than asked is not flooded.
            while queue and (not pending or busy + min(queue[0].cpus, workers) <= workers):
                job = queue.pop(0)
                cpus = min(job.cpus, workers)
                pending[remote.options(num_cpus=cpus).remote(job.fn, *job.args)] = job
                busy += cpus
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                busy -= min(job.cpus, workers)
                try:
                    value = ray.get(ref)
                except Exception as error:  # noqa: BLE001 - a dead worker fails one job
                    value = failed(job.key, error)
                queue.extend(done(job.key, value))
    finally:
        if started:
            ray.shutdown()


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """The Ray task: any callable (a partial too) runs one job in a worker."""
    return fn(*args)


def _progress(total: int, enabled: bool) -> Callable[[EpisodeResult | None], None]:
    """A callback per finished episode (``None`` closes): a tqdm bar, else log lines."""
    if not enabled:
        return lambda result: None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency, but a bare install should still report
        tqdm = None
    if tqdm is not None:
        bar = tqdm(total=total, unit="episode", file=sys.stderr, dynamic_ncols=True)

        def update(result: EpisodeResult | None) -> None:
            if result is None:
                bar.close()
                return
            bar.update(1)
            if result.status != "ok":
                bar.write(f"episode failed: team {result.team} seed {result.seed}")

        return update
    count = [0]

    def log_line(result: EpisodeResult | None) -> None:
        if result is None:
            return
        count[0] += 1
        if result.status != "ok" or count[0] == total or count[0] % max(total // 10, 1) == 0:
            log.warning(
                "%d/%d episodes (%s seed %d: %s)",
                count[0],
                total,
                result.team,
                result.seed,
                result.status,
            )

    return log_line
