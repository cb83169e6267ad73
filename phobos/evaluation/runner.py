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
from phobos.envs import make
from phobos.evaluation.rollout import EpisodeResult, EpisodeSpec, run_episode
from phobos.ray_cluster import check_ray_address, init_ray

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationRequest:
    """What to evaluate.

    Attributes:
        env_id: Registered environment id.
        teams: Team specs (see :mod:`phobos.agents.team_spec`), one evaluated team each.
        seeds: Episode seeds; every team flies every seed.
        config: The environment's configuration; ``None`` for its defaults.

    """

    env_id: str
    teams: tuple[TeamSpec, ...]
    seeds: tuple[int, ...]
    config: Any = None

    def episodes(self) -> list[EpisodeSpec]:
        """One spec per (team, seed), teams outermost."""
        return [
            EpisodeSpec(self.env_id, self.config, team, seed)
            for team in self.teams
            for seed in self.seeds
        ]


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
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            low, dash, high = part.partition("-")
            if dash and low.strip().lstrip("+").isdigit() and high.strip().isdigit():
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
    env = make(env_id, config) if config is not None else make(env_id)
    for spec in specs:
        build_team(spec, env, seed=0)  # unknown names and mismatched checkpoints fail here
    env.close()
    return EvaluationRequest(env_id, specs, seeds, config)


def evaluate(
    request: EvaluationRequest,
    workers: int = 0,
    ray_address: str | None = None,
    progress: bool = True,
    episode_fn: Callable[[EpisodeSpec], EpisodeResult] | None = None,
) -> EvaluationRun:
    """Run every episode of ``request``.

    Args:
        request: From :func:`make_request` (already checked).
        workers: 0 runs serially in this process; ``k > 0`` runs at most ``k`` episodes at
            once as Ray tasks (a local Ray instance of ``k`` CPUs unless one is running or
            ``ray_address`` names a cluster).
        ray_address: Join this Ray cluster instead of starting one.
        progress: Show a progress bar (tqdm) on stderr.
        episode_fn: What runs one episode; :func:`run_episode` by default (tests swap in
            a crashing one).

    """
    episode_fn = episode_fn or run_episode
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if ray_address is not None:
        check_ray_address(ray_address)
        workers = max(workers, 1)
    specs = request.episodes()
    bar = _progress(len(specs), progress)
    start = time.perf_counter()
    if workers == 0:
        results = []
        for spec in specs:
            results.append(episode_fn(spec))
            bar(results[-1])
    else:
        results = _ray_map(specs, workers, ray_address, bar, episode_fn)
    wall = time.perf_counter() - start
    bar(None)
    return EvaluationRun(request, results, workers, wall)


def _ray_map(
    specs: list[EpisodeSpec],
    workers: int,
    address: str | None,
    bar: Callable[[EpisodeResult | None], None],
    episode_fn: Callable[[EpisodeSpec], EpisodeResult],
) -> list[EpisodeResult]:
    import ray

    started = init_ray(workers, address)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_call)
        results: list[EpisodeResult | None] = [None] * len(specs)
        pending: dict[Any, int] = {}
        queue = list(enumerate(specs))
        while queue or pending:
            # At most `workers` in flight, so a cluster bigger than asked is not flooded.
            while queue and len(pending) < workers:
                index, spec = queue.pop(0)
                pending[remote.remote(episode_fn, spec)] = index
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                try:
                    results[index] = ray.get(ref)
                except Exception as error:  # noqa: BLE001 - a dead worker fails one episode
                    spec = specs[index]
                    results[index] = EpisodeResult(
                        spec.team.label,
                        spec.seed,
                        "failed",
                        error=f"{type(error).__name__}: {error}",
                    )
                bar(results[index])
        return [r for r in results if r is not None]
    finally:
        if started:
            ray.shutdown()


def _call(episode_fn: Callable[[EpisodeSpec], EpisodeResult], spec: EpisodeSpec) -> EpisodeResult:
    """The Ray task: any callable (a partial too) runs one episode in a worker."""
    return episode_fn(spec)


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
