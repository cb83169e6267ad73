"""Evaluation throughput: episodes per second, serial vs Ray-parallel, on this machine.

The same request (the greedy team of the orbit-scheduling and of the sampling task (v0)
over fixed seeds) runs serially in this process, then as Ray tasks with 1 and 2 workers on a
local Ray instance started once beforehand; Ray's start-up is reported on its own line and is
not in the rates. Each measurement repeats until it has run ``seconds`` and reports the
median over rounds. The peer is the serial loop itself: Ray pays off only when an episode
costs more than its task overhead, which this benchmark shows honestly.

Targets:
    - Per-episode metrics of the parallel run equal the serial run's (checked here too).
    - 2 workers at least 1.5x the episodes/s of 1 worker on a 2-core machine for
      full-length scheduling episodes.

Benchmarks are not tests: CI checks that :func:`run` runs, not how fast.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from phobos.benchmarks.targets import Target, table
from phobos.envs.orbit_scheduling.task import ID_V0 as ORBIT
from phobos.envs.sampling.task import ID_V0 as SAMPLING
from phobos.evaluation.runner import evaluate, make_request
from phobos.ray_cluster import init_ray

CASES = ((ORBIT, 8), (SAMPLING, 16))
"""(environment, episodes per measurement) pairs, each flown by the greedy team."""
WORKERS = (1, 2)
TARGET_SCALING = 1.5
"""2 Ray workers against 1, episodes/s (on 2 cores)."""


def run(seconds: float = 2.0, rounds: int = 3) -> dict[str, Any]:
    """Measure every case serially and with each worker count; ``seconds`` per measurement."""
    import ray

    started_here = not ray.is_initialized()
    start = time.perf_counter()
    init_ray(max(WORKERS))
    startup = time.perf_counter() - start
    results: dict[str, Any] = {"ray_startup_s": startup, "cases": {}}
    try:
        for env_id, episodes in CASES:
            request = make_request(env_id, ["greedy"], range(episodes))
            reference = evaluate(request, 0, progress=False).results
            rates: dict[str, list[float]] = {"serial": [], **{f"ray x{w}": [] for w in WORKERS}}
            equal = True
            for _ in range(rounds):
                for label in rates:
                    workers = 0 if label == "serial" else int(label.split("x")[1])
                    count, begin = 0, time.perf_counter()
                    while True:
                        outcome = evaluate(request, workers, progress=False)
                        count += len(outcome.results)
                        equal &= [r.metrics for r in outcome.results] == [
                            r.metrics for r in reference
                        ]
                        if time.perf_counter() - begin >= seconds:
                            break
                    rates[label].append(count / (time.perf_counter() - begin))
            results["cases"][env_id] = {
                "episodes": episodes,
                "rates": {label: statistics.median(v) for label, v in rates.items()},
                "parallel_equals_serial": equal,
            }
    finally:
        if started_here:
            ray.shutdown()
    return results


def report(results: dict[str, Any]) -> str:
    """A Markdown table of :func:`run`'s results."""
    labels = ["serial"] + [f"ray x{w}" for w in WORKERS]
    lines = [
        "| environment (greedy team) | "
        + " | ".join(f"{x} episodes/s" for x in labels)
        + " | parallel == serial |",
        "|---|" + "---:|" * len(labels) + "---|",
    ]
    for env_id, case in results["cases"].items():
        rates = case["rates"]
        lines.append(
            f"| `{env_id}` ({case['episodes']} episodes a batch) | "
            + " | ".join(f"{rates[x]:,.1f}" for x in labels)
            + f" | {'yes' if case['parallel_equals_serial'] else 'NO'} |"
        )
    lines += [
        "",
        f"Ray start-up (local, {max(WORKERS)} CPUs, once per run, not in the rates): "
        f"{results['ray_startup_s']:.1f} s.",
        "",
        table(targets(results)),
    ]
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[Target]:
    """:func:`run`'s results against the suite's targets (docs/benchmarks.md)."""
    found = []
    for env_id, case in results["cases"].items():
        rates = case["rates"]
        ratio = rates[f"ray x{max(WORKERS)}"] / rates[f"ray x{min(WORKERS)}"]
        if env_id == ORBIT:  # the target is for full-day scheduling episodes
            found.append(
                Target(
                    f"`{env_id}`: {max(WORKERS)} Ray workers / {min(WORKERS)}, episodes/s",
                    f">= {TARGET_SCALING}x",
                    f"{ratio:.2f}x",
                    ratio >= TARGET_SCALING,
                )
            )
        found += [
            Target(
                f"`{env_id}`: parallel metrics equal serial",
                "equal",
                "equal" if case["parallel_equals_serial"] else "differ",
                bool(case["parallel_equals_serial"]),
            ),
        ]
    return found


def markdown(seconds: float) -> str:
    """Measure and return the section for ``docs/benchmarks.md``."""
    return report(run(seconds=seconds))
