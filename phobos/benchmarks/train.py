"""Training throughput: whole-iteration agent-steps/s of each training path, side by side.

Every path trains the orbit-scheduling team with PPO (learning included in the rate) for
about ``seconds`` after a warm-up update, in one run:

- the batch paths (this project's fast ones): Stable-Baselines3 MaskablePPO over the batch
  core's slots (one shared network, :mod:`phobos.training.sb3_batch`), and RLlib PPO whose env
  runners step the batch core (:mod:`phobos.training.rllib_batch`);
- the reference paths they replace: RLlib PPO stepping one ``ParallelEnv`` episode at a time,
  and SB3 MaskablePPO on the single-agent view (one learner among greedy teammates).

An agent-step is one sample a learner trains on: every agent of every env step for the team
paths, the learner's own step for the single-agent view. Workers: for RLlib, env runners
(remote Ray workers sharing out the same episodes; the learner stays in the driver); for
SB3, independent trials run as Ray tasks at once, as ``phobos train`` runs Tune trials
(their rates add up). Beside each rate, the share of wall time sampling (RLlib: outside the
learner's update; SB3: inside ``collect_rollouts``) and for SB3 the share in resets.

Targets (2-core machine): the fastest orbit path >= 20,000 agent-steps/s whole iterations;
the lander's batch path >= 10,000, on a plain MLP and on the committed lander's network; 2
workers >= 1.6x 1 worker. Benchmarks are not tests: CI checks that :func:`run` runs.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import yaml

from phobos.agents.teams import TRAINED
from phobos.benchmarks.targets import Target, table, verdict
from phobos.benchmarks.train_sb3_batch import cap_line, sb3_batch
from phobos.envs.orbit_scheduling.task import ID_V0 as ORBIT
from phobos.envs.sampling.task import ID_V0 as SAMPLING
from phobos.ray_cluster import init_ray
from phobos.training.config import TrainConfig

TARGET_AGENT_STEPS = 20_000
TARGET_SCALING = 1.6
WORKERS = (1, 2)

REFERENCE_BATCH = 2000
"""Env steps per update of the reference paths (as measured before the batch paths)."""
BATCH_CONFIG = {
    "framework": "sb3",
    "sampler": "batch",
    "num_envs": 256,
    "train_batch_size": 256 * 16,
    "minibatch_size": 4096,
    "num_epochs": 4,
    "hidden": (128, 128),
}
"""The batch paths' settings: 256 episodes, 16 steps each per update (20,480 samples)."""
LANDER_ENV = SAMPLING
LANDER_HIDDEN = (256, 256)
"""The lander rows: the sampling task (lander and science team) with a plain 256x256 MLP."""


def lander_recipe() -> dict[str, Any]:
    """The committed trained lander's network settings: what its recipe trains on this path."""
    recorded = yaml.safe_load((TRAINED / "phobos_sampling_v0" / "train_config.yaml").read_text())
    fields = {key: recorded[key] for key in ("policy_network", "hidden", "critic")}
    return {"env": SAMPLING, **fields, "hidden": tuple(fields["hidden"])}
TARGET_LANDER_AGENT_STEPS = 10_000


def _rllib(seconds: float, config: TrainConfig) -> dict[str, float]:
    """RLlib's rate, with the learner's update timed directly (RLlib's timers are smoothed)."""
    from phobos.benchmarks.train_rllib_batch import measure

    rates = measure(config, seconds)
    return {
        "agent_steps_per_s": rates["agent_steps_per_s"],
        "sampling_share": rates["sampling_share"],
        "updates": rates["iterations"],
        "learner_threads": rates["learner_threads"],
    }


def _sb3_view(
    seconds: float, batch: int, env: str = ORBIT, hidden: tuple = (128, 128)
) -> dict[str, float]:
    from sb3_contrib import MaskablePPO

    from phobos.agents.activations import Tanh
    from phobos.training.sb3_tune import make_view

    model = MaskablePPO(
        "MultiInputPolicy",
        make_view(TrainConfig(env=env, framework="sb3")),
        n_steps=batch,
        batch_size=min(500, batch),
        n_epochs=2,
        policy_kwargs={"net_arch": list(hidden), "activation_fn": Tanh},  # as sb3_tune's
        seed=0,
        device="cpu",
    )
    model.learn(batch)  # warm-up
    updates = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds or updates < 2:
        model.learn(batch, reset_num_timesteps=False)
        updates += 1
    wall = time.perf_counter() - began
    rate = batch * updates / wall
    return {"agent_steps_per_s": rate, "sampling_share": float("nan"), "updates": updates}


SETUP_GUESS_S = {"rllib batch": 15.0, "rllib env": 25.0}
"""What a row of each RLlib kind costs beyond its measured seconds before one has run (its
build with its env runners, the warm-up iteration) on the 2-core machine."""
SETUP_FACTOR = 3.0
"""A row whose set-up is expected to take more than this many times ``seconds`` is not run."""


def run(
    seconds: float = 20.0, batch_overrides: dict[str, Any] | None = None, reference_batch: int = 0
) -> dict[str, Any]:
    """Measure every path and worker count for about ``seconds`` each.

    ``seconds`` is honoured: a row whose set-up (build, warm-up; the last row of its kind's, or
    :data:`SETUP_GUESS_S` before one ran) is expected to exceed :data:`SETUP_FACTOR` times
    ``seconds`` is not run, and is listed in ``results["skipped"]``; so a quick look with a
    few seconds gets the SB3 rows and no RLlib build. ``seconds=0`` runs every row once, at
    its minimum of updates (the smoke test). ``batch_overrides`` shrink the batch paths'
    settings and ``reference_batch`` the reference paths' update (for the smoke test); the
    defaults are what the docs report.
    """
    import ray
    import torch

    torch.set_num_threads(1)
    overrides = dict(batch_overrides or {})
    reference = reference_batch or REFERENCE_BATCH
    started_here = not ray.is_initialized()
    began = time.perf_counter()
    init_ray(2 * max(WORKERS) + 1)  # the learners row: a runner and a learner per worker
    results: dict[str, Any] = {"seconds": seconds, "paths": {}, "skipped": [], "setup_s": 0.0}
    setup = dict(SETUP_GUESS_S)
    try:
        _warm_workers(max(WORKERS))
        for key, kind, measure in _rows(seconds, overrides, reference):
            if seconds > 0 and setup.get(kind, 0.0) > SETUP_FACTOR * seconds:
                results["skipped"].append(key)
                results["setup_s"] = max(results["setup_s"], setup[kind])
                continue
            row_began = time.perf_counter()
            results["paths"][key] = measure()
            results["paths"][key]["row_s"] = time.perf_counter() - row_began
            setup[kind] = max(results["paths"][key]["row_s"] - seconds, 0.0)
    finally:
        if started_here:
            ray.shutdown()
    results["wall_s"] = time.perf_counter() - began
    return results


def _import_trainers() -> None:
    import phobos.training.sb3_batch  # noqa: F401 - imports torch and SB3 once


def _warm_workers(workers: int) -> None:
    """Import torch and SB3 in ``workers`` Ray workers at once, not in the first row's time."""
    import ray

    task = ray.remote(num_cpus=1)(_import_trainers)
    ray.get([task.remote() for _ in range(workers)])


def _rows(seconds: float, overrides: dict[str, Any], reference: int) -> list[tuple]:
    """(path key, kind, measure) for every row, the SB3 ones (cheap to set up) first."""

    def rllib_batch(workers: int, threads: int = 1, learners: int = 0) -> dict[str, float]:
        fields = BATCH_CONFIG | {"framework": "rllib", "num_env_runners": workers} | overrides
        fields["learner_threads"] = threads
        # num_envs counts per runner in RLlib: the runners share out the same episodes, so
        # every worker count learns the same update (not more, shorter fragments).
        fields["num_envs"] = max(fields["num_envs"] // workers, 1)
        # RLlib's minibatch may not exceed its train batch (counted in env steps there).
        fields["minibatch_size"] = min(fields["minibatch_size"], fields["train_batch_size"])
        if learners > 1:  # both sizes count per learner: each takes its share of the update
            fields["num_learners"] = learners
            for size in ("train_batch_size", "minibatch_size"):
                fields[size] = max(fields[size] // learners, 1)
        return _rllib(seconds, TrainConfig(**fields))

    def rllib_env(workers: int) -> dict[str, float]:
        config = TrainConfig(
            num_env_runners=workers,
            train_batch_size=reference,
            minibatch_size=min(500, reference),
            num_epochs=2,
            hidden=(128, 128),
        )
        return _rllib(seconds, config)

    lander = BATCH_CONFIG | {"env": LANDER_ENV, "hidden": LANDER_HIDDEN} | overrides
    lander_hidden = overrides.get("hidden", LANDER_HIDDEN)
    return [
        *(
            (("sb3 batch", w), "sb3", lambda w=w: sb3_batch(seconds, w, BATCH_CONFIG | overrides))
            for w in WORKERS
        ),
        *(
            (("sb3 batch lander", w), "sb3", lambda w=w: sb3_batch(seconds, w, lander))
            for w in WORKERS
        ),
        (
            ("sb3 batch lander recipe", max(WORKERS)),
            "sb3",
            lambda: sb3_batch(seconds, max(WORKERS), BATCH_CONFIG | lander_recipe() | overrides),
        ),
        (("sb3 view", 1), "sb3", lambda: _sb3_view(seconds, reference)),
        (
            ("sb3 view lander", 1),
            "sb3",
            lambda: _sb3_view(seconds, reference, LANDER_ENV, lander_hidden),
        ),
        *((("rllib batch", w), "rllib batch", lambda w=w: rllib_batch(w)) for w in WORKERS),
        (
            ("rllib batch threads", max(WORKERS)),
            "rllib batch",
            lambda: rllib_batch(max(WORKERS), threads=max(WORKERS)),
        ),
        (
            ("rllib batch learners", max(WORKERS)),
            "rllib batch",
            lambda: rllib_batch(max(WORKERS), learners=max(WORKERS)),
        ),
        *((("rllib env", w), "rllib env", lambda w=w: rllib_env(w)) for w in WORKERS),
    ]


_LABELS = {
    "sb3 batch": "SB3 MaskablePPO, batch core slots, shared network",
    "rllib batch": "RLlib PPO, env runners step the batch core",
    "rllib batch threads": "RLlib PPO, the same, the learner on one thread per runner",
    "rllib batch learners": "RLlib PPO, the same, as many data-parallel learners as runners",
    "rllib env": "RLlib PPO, one ParallelEnv episode per runner (reference)",
    "sb3 view": "SB3 MaskablePPO, single-agent view (reference)",
    "sb3 batch lander": "lander: SB3 MaskablePPO, batch core slots, shared network",
    "sb3 batch lander recipe": "lander: the same, the committed lander's network (its recipe)",
    "sb3 view lander": "lander: SB3 MaskablePPO, single-agent view (reference)",
}


ORDER = (
    ("sb3 batch", 1),
    ("rllib batch", 1),
    ("sb3 batch", 2),
    ("rllib batch", 2),
    ("rllib batch threads", max(WORKERS)),
    ("rllib batch learners", max(WORKERS)),
    ("rllib env", 1),
    ("rllib env", 2),
    ("sb3 view", 1),
    ("sb3 batch lander", 1),
    ("sb3 batch lander", 2),
    ("sb3 batch lander recipe", max(WORKERS)),
    ("sb3 view lander", 1),
)
"""The rows as the table shows them."""


def report(results: dict[str, Any]) -> str:
    """Markdown table of every path's rate, its sampling share, scaling and the targets."""
    paths = results["paths"]
    lines = [
        f"{ORBIT}, 5 agents; {os.cpu_count()} cores; about {results['seconds']:g} s "
        f"per row after a warm-up update ({results['wall_s']:.0f} s in all, Ray's start "
        f"included). Batch paths: "
        f"{BATCH_CONFIG['num_envs']} episodes x 16 steps per update, minibatch 4,096, 4 epochs, "
        f"128x128. Reference paths: {REFERENCE_BATCH} env steps per update, 2 epochs. The "
        "lander rows train the sampling task the same ways.",
        "",
        "| path | workers | agent-steps/s (whole iterations) | sampling share | of which resets "
        "| updates | row s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in ORDER:
        path, workers = key
        if key not in paths:
            lines.append(f"| {_LABELS[path]} | {workers} | not measured (set-up) | | | | |")
            continue
        rates = paths[key]
        share = rates["sampling_share"]
        shown = "-" if share != share else f"{share:.0%}"
        resets = f"{rates['reset_share']:.1%}" if "reset_share" in rates else "-"
        lines.append(
            f"| {_LABELS[path]} | {workers} | {rates['agent_steps_per_s']:,.0f} | {shown} | "
            f"{resets} | {rates['updates']} | {rates.get('row_s', float('nan')):.0f} |"
        )
    if results.get("skipped"):
        expected = results.get("setup_s", 0.0)
        lines += [
            "",
            f"{len(results['skipped'])} row(s) not measured: their set-up (an RLlib build "
            f"with its env runners and a warm-up iteration, up to {expected:.0f} s "
            f"expected from the last row of their kind) exceeds {SETUP_FACTOR:g}x --seconds "
            f"{results['seconds']:g}; --seconds "
            f"{math.ceil(expected / SETUP_FACTOR)} or more runs them.",
        ]
    lines += ["", *_summary(paths), "", table(targets(results))]
    return "\n".join(lines)


def _summary(paths: dict) -> list[str]:
    """The headline sentences, for the rows this run measured."""
    lines = []
    orbit = {key: rates for key, rates in paths.items() if "lander" not in key[0]}
    reference = _rate(paths, ("rllib env", 1))
    if orbit:
        best = max(orbit.items(), key=lambda item: item[1]["agent_steps_per_s"])
        fastest = best[1]["agent_steps_per_s"]
        versus = ""
        if reference:
            versus = f" = {fastest / reference:.1f}x the RLlib reference with 1 runner"
        lines.append(
            f"Fastest: {_LABELS[best[0][0]]}, {best[0][1]} worker(s), {fastest:,.0f} "
            f"agent-steps/s{versus} (target {TARGET_AGENT_STEPS:,}: "
            f"{verdict(fastest >= TARGET_AGENT_STEPS)})."
        )
    lines += [
        f"Lander ({SAMPLING}), {t.what}: {t.measured} (target "
        f"{TARGET_LANDER_AGENT_STEPS:,}: {verdict(t.met)})."
        for t in _lander_targets(paths)
        if t.met is not None
    ]
    for kind in ("sb3 batch lander", "sb3 batch lander recipe"):
        workers, _ = _fastest_lander(paths, kind)
        if workers and "matmul_ceiling" in paths[(kind, workers)]:
            lines.append(cap_line(_LABELS[kind], paths[(kind, workers)], workers))
    scaling = _scaling_targets(paths)
    lines += [
        f"- {t.what} = **{t.measured}** (target {TARGET_SCALING}x: {verdict(t.met)})"
        for t in scaling[:3]
        if t.met is not None
    ]
    one, threaded = _rate(paths, ("rllib batch", 1)), _rate(paths, ("rllib batch threads", 2))
    if one and threaded:
        lines.append(
            f"- {_LABELS['rllib batch threads']}, 2 runners / the 1-runner row = "
            f"{threaded / one:.2f}x (not the scaling target: the learner has a second thread)"
        )
    lines += [
        f"- {t.what} = **{t.measured}** (target {TARGET_SCALING}x: {verdict(t.met)})"
        for t in scaling[3:]
        if t.met is not None
    ]
    return lines


def _scaling_targets(paths: dict) -> list[Target]:
    """2 workers against 1 for each path; last, RLlib's workers as runner-and-learner pairs."""
    pairs = [
        (f"{_LABELS[path]}: 2 workers / 1", (path, 1), (path, 2))
        for path in ("sb3 batch", "rllib batch", "rllib env")
    ]
    pairs.append(
        (
            f"{_LABELS['rllib batch learners']}: 2 runners and 2 learners / 1 runner and its "
            "learner",
            ("rllib batch", 1),
            ("rllib batch learners", 2),
        )
    )
    found = []
    for what, one_key, two_key in pairs:
        one, two = _rate(paths, one_key), _rate(paths, two_key)
        ratio = two / one if one and two else None
        found.append(
            Target(
                what,
                f">= {TARGET_SCALING}x",
                "-" if ratio is None else f"{ratio:.2f}x",
                None if ratio is None else ratio >= TARGET_SCALING,
            )
        )
    return found


def _fastest_lander(paths: dict, kind: str) -> tuple[int | None, float | None]:
    """A lander batch row's best (workers, rate): trials side by side, as Tune runs them."""
    rows = [(rates["agent_steps_per_s"], w) for (path, w), rates in paths.items() if path == kind]
    if not rows:
        return None, None
    rate, workers = max(rows)
    return workers, rate


def _lander_targets(paths: dict) -> list[Target]:
    """The lander's rate target on the MLP row and on the committed lander's network."""
    view = _rate(paths, ("sb3 view lander", 1))
    found = []
    for kind, network in (
        ("sb3 batch lander", f"{LANDER_HIDDEN[0]}x{LANDER_HIDDEN[1]} MLP"),
        ("sb3 batch lander recipe", "the committed lander's network"),
    ):
        workers, rate = _fastest_lander(paths, kind)
        versus = f" = {rate / view:.1f}x the view" if rate and view else ""
        found.append(
            Target(
                f"lander batch path ({network}, {workers} worker(s)), agent-steps/s",
                f">= {TARGET_LANDER_AGENT_STEPS:,}",
                "-" if rate is None else f"{rate:,.0f}{versus}",
                None if rate is None else rate >= TARGET_LANDER_AGENT_STEPS,
            )
        )
    return found


def _rate(paths: dict, key: tuple) -> float | None:
    return paths[key]["agent_steps_per_s"] if key in paths else None


def targets(results: dict[str, Any]) -> list[Target]:
    """The suite's targets against what this run measured (a row not run: not measured)."""
    paths = results["paths"]
    orbit = {key: rates for key, rates in paths.items() if "lander" not in key[0]}
    best = max(orbit.items(), key=lambda item: item[1]["agent_steps_per_s"], default=None)
    reference = _rate(paths, ("rllib env", 1))
    if best is None:
        fastest = Target(
            "fastest orbit path, agent-steps/s", f">= {TARGET_AGENT_STEPS:,}", "-", None
        )
    else:
        rate = best[1]["agent_steps_per_s"]
        versus = f" = {rate / reference:.1f}x the RLlib reference" if reference else ""
        fastest = Target(
            f"fastest orbit path ({_LABELS[best[0][0]]}, {best[0][1]} worker(s)), agent-steps/s",
            f">= {TARGET_AGENT_STEPS:,}",
            f"{rate:,.0f}{versus}",
            rate >= TARGET_AGENT_STEPS,
        )
    return [fastest, *_lander_targets(paths), *_scaling_targets(paths)]


def markdown(seconds: float) -> str:
    """Measure and return the section for ``docs/benchmarks.md``."""
    return report(run(seconds=seconds))
