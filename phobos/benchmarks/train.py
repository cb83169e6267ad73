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
(remote Ray workers; the learner stays in the driver); for SB3, independent trials run as
Ray tasks at once, as ``phobos train`` runs Tune trials (their rates add up). The share of
wall time spent sampling is reported beside each rate (for RLlib: the wall time outside the
learner's update; for SB3: inside ``collect_rollouts``), and for SB3 the share in resets.

Targets (2-core machine): the fastest orbit path >= 20,000 agent-steps/s whole iterations;
the lander's batch path >= 10,000; 2 workers >= 1.6x 1 worker. Benchmarks are not tests:
CI checks that :func:`run` runs.
"""

from __future__ import annotations

import os
import time
from typing import Any

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
"""The lander rows: the sampling task (lander and science team) with the lander recipe's net."""
TARGET_LANDER_AGENT_STEPS = 10_000


def sb3_batch_worker(seconds: float, seed: int, overrides: dict[str, Any]) -> dict[str, float]:
    """Train one SB3 batch model for ``seconds`` after a warm-up update; what it sampled."""
    import torch

    from phobos.training import sb3_batch

    torch.set_num_threads(1)
    config = TrainConfig(**(BATCH_CONFIG | overrides))
    env = sb3_batch.make_env(config, seed)
    model = sb3_batch.new_model(config, env, seed, config.lr)
    spent = {"sampling": 0.0}
    collect = model.collect_rollouts

    def timed_collect(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return collect(*args, **kwargs)
        finally:
            spent["sampling"] += time.perf_counter() - began

    model.collect_rollouts = timed_collect
    reset = env.core.reset
    spent["resets"] = 0.0

    def timed_reset(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return reset(*args, **kwargs)
        finally:
            spent["resets"] += time.perf_counter() - began

    env.core.reset = timed_reset
    samples = config.train_batch_size * len(env.agents)
    model.learn(samples)  # warm-up
    spent["sampling"], spent["resets"], updates = 0.0, 0.0, 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds or updates < 2:
        model.learn(samples, reset_num_timesteps=False)
        updates += 1
    wall = time.perf_counter() - began
    return {
        "agent_steps": samples * updates,
        "wall_s": wall,
        "sampling_s": spent["sampling"],
        "resets_s": spent["resets"],
        "updates": updates,
    }


def _sb3_batch(seconds: float, workers: int, overrides: dict[str, Any]) -> dict[str, float]:
    import ray

    task = ray.remote(num_cpus=1)(sb3_batch_worker)
    parts = ray.get([task.remote(seconds, seed, overrides) for seed in range(workers)])
    rate = sum(p["agent_steps"] / p["wall_s"] for p in parts)
    return {
        "agent_steps_per_s": rate,
        "sampling_share": sum(p["sampling_s"] / p["wall_s"] for p in parts) / workers,
        "reset_share": sum(p["resets_s"] / p["wall_s"] for p in parts) / workers,
        "updates": sum(p["updates"] for p in parts),
    }


def _rllib(seconds: float, config: TrainConfig) -> dict[str, float]:
    """RLlib's rate, with the learner's update timed directly (RLlib's timers are smoothed)."""
    from phobos.benchmarks.train_rllib_batch import measure

    rates = measure(config, seconds)
    return {
        "agent_steps_per_s": rates["agent_steps_per_s"],
        "sampling_share": rates["sampling_share"],
        "updates": rates["iterations"],
    }


def _sb3_view(
    seconds: float, batch: int, env: str = ORBIT, hidden: tuple = (128, 128)
) -> dict[str, float]:
    from sb3_contrib import MaskablePPO

    from phobos.training.sb3_tune import make_view

    model = MaskablePPO(
        "MultiInputPolicy",
        make_view(TrainConfig(env=env, framework="sb3")),
        n_steps=batch,
        batch_size=min(500, batch),
        n_epochs=2,
        policy_kwargs={"net_arch": list(hidden)},
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


def run(
    seconds: float = 20.0, batch_overrides: dict[str, Any] | None = None, reference_batch: int = 0
) -> dict[str, Any]:
    """Measure every path and worker count for about ``seconds`` each.

    ``batch_overrides`` shrink the batch paths' settings and ``reference_batch`` the
    reference paths' update (for the smoke test); the defaults are what the docs report.
    """
    import ray
    import torch

    torch.set_num_threads(1)
    overrides = dict(batch_overrides or {})
    reference = reference_batch or REFERENCE_BATCH
    started_here = not ray.is_initialized()
    init_ray(max(WORKERS) + 1)
    results: dict[str, Any] = {"seconds": seconds, "paths": {}}
    began = time.perf_counter()
    try:
        for workers in WORKERS:
            results["paths"][("sb3 batch", workers)] = _sb3_batch(seconds, workers, overrides)
            fields = BATCH_CONFIG | {"framework": "rllib", "num_env_runners": workers} | overrides
            # RLlib's minibatch may not exceed its train batch (counted in env steps there).
            fields["minibatch_size"] = min(fields["minibatch_size"], fields["train_batch_size"])
            config = TrainConfig(**fields)
            results["paths"][("rllib batch", workers)] = _rllib(seconds, config)
        for workers in WORKERS:
            config = TrainConfig(
                num_env_runners=workers,
                train_batch_size=reference,
                minibatch_size=min(500, reference),
                num_epochs=2,
                hidden=(128, 128),
            )
            results["paths"][("rllib env", workers)] = _rllib(seconds, config)
        results["paths"][("sb3 view", 1)] = _sb3_view(seconds, reference)
        lander = {"env": LANDER_ENV, "hidden": LANDER_HIDDEN} | overrides
        results["paths"][("sb3 batch lander", 1)] = _sb3_batch(seconds, 1, lander)
        results["paths"][("sb3 view lander", 1)] = _sb3_view(
            seconds, reference, LANDER_ENV, overrides.get("hidden", LANDER_HIDDEN)
        )
    finally:
        if started_here:
            ray.shutdown()
    results["wall_s"] = time.perf_counter() - began
    return results


_LABELS = {
    "sb3 batch": "SB3 MaskablePPO, batch core slots, shared network",
    "rllib batch": "RLlib PPO, env runners step the batch core",
    "rllib env": "RLlib PPO, one ParallelEnv episode per runner (reference)",
    "sb3 view": "SB3 MaskablePPO, single-agent view (reference)",
    "sb3 batch lander": "lander: SB3 MaskablePPO, batch core slots, shared network",
    "sb3 view lander": "lander: SB3 MaskablePPO, single-agent view (reference)",
}


def report(results: dict[str, Any]) -> str:
    """Markdown table of every path's rate, its sampling share, scaling and the targets."""
    paths = results["paths"]
    lines = [
        f"{ORBIT}, 5 agents; {os.cpu_count()} cores; about {results['seconds']:g} s "
        f"per row after a warm-up update ({results['wall_s']:.0f} s in all). Batch paths: "
        f"{BATCH_CONFIG['num_envs']} episodes x 16 steps per update, minibatch 4,096, 4 epochs, "
        f"128x128. Reference paths: {REFERENCE_BATCH} env steps per update, 2 epochs. The "
        "lander rows train the sampling task the same ways.",
        "",
        "| path | workers | agent-steps/s (whole iterations) | sampling share | of which resets "
        "| updates |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for (path, workers), rates in paths.items():
        share = rates["sampling_share"]
        shown = "-" if share != share else f"{share:.0%}"
        resets = f"{rates['reset_share']:.1%}" if "reset_share" in rates else "-"
        lines.append(
            f"| {_LABELS[path]} | {workers} | {rates['agent_steps_per_s']:,.0f} | {shown} | "
            f"{resets} | {rates['updates']} |"
        )
    orbit = {key: rates for key, rates in paths.items() if "lander" not in key[0]}
    best = max(orbit.items(), key=lambda item: item[1]["agent_steps_per_s"])
    fastest = best[1]["agent_steps_per_s"]
    reference = paths[("rllib env", 1)]["agent_steps_per_s"]
    lines += [
        "",
        f"Fastest: {_LABELS[best[0][0]]}, {best[0][1]} worker(s), {fastest:,.0f} agent-steps/s "
        f"= {fastest / reference:.1f}x the RLlib reference with 1 runner (target "
        f"{TARGET_AGENT_STEPS:,}: {_verdict(fastest >= TARGET_AGENT_STEPS)}).",
    ]
    lander = paths[("sb3 batch lander", 1)]["agent_steps_per_s"]
    lander_reference = paths[("sb3 view lander", 1)]["agent_steps_per_s"]
    lines.append(
        f"Lander ({SAMPLING}, {LANDER_HIDDEN[0]}x{LANDER_HIDDEN[1]}): batch path "
        f"{lander:,.0f} agent-steps/s = {lander / lander_reference:.1f}x the single-agent view "
        f"(target {TARGET_LANDER_AGENT_STEPS:,}: {_verdict(lander >= TARGET_LANDER_AGENT_STEPS)})."
    )
    for path in ("sb3 batch", "rllib batch", "rllib env"):
        ratio = paths[(path, 2)]["agent_steps_per_s"] / paths[(path, 1)]["agent_steps_per_s"]
        lines.append(
            f"- {_LABELS[path]}: 2 workers / 1 = **{ratio:.2f}x** (target "
            f"{TARGET_SCALING}x: {_verdict(ratio >= TARGET_SCALING)})"
        )
    return "\n".join(lines)


def _verdict(met: bool) -> str:
    return "met" if met else "**MISSED**"


def markdown(seconds: float) -> str:
    """Measure and return the section for ``docs/benchmarks.md``."""
    return report(run(seconds=seconds))
