"""Training throughput: environment steps per second of RLlib PPO with 0, 1 and 2 env runners.

The orbit-scheduling team (five agents, three modules) trains with the same PPO settings
while only the number of env runners changes: 0 samples in the driver, 1 and 2 sample in
remote Ray workers while the driver's learner waits. Two rates are reported per setting:
sampling (env steps over the time spent sampling, RLlib's own timer) and whole iterations
(env steps over wall time, learning included). The peer in the same run is Stable-Baselines3
MaskablePPO on the single-agent view (one process, one learner, greedy teammates), the
usual single-machine baseline.

Target: 2 env runners sample at least 1.6x the env steps/s of 1 on a 2-core machine.

Benchmarks are not tests: CI checks that :func:`run` runs, not how fast.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from phobos.ray_cluster import init_ray
from phobos.training.config import TrainConfig

RUNNERS = (0, 1, 2)
BATCH = 2000
"""Env steps per PPO iteration in every setting."""


def _config(runners: int) -> TrainConfig:
    return TrainConfig(
        num_env_runners=runners,
        train_batch_size=BATCH,
        minibatch_size=min(500, BATCH),
        num_epochs=2,
        hidden=(128, 128),
    )


def run(seconds: float = 20.0) -> dict[str, Any]:
    """Train each setting for about ``seconds`` after one warm-up iteration."""
    import ray
    import torch

    from phobos.training.rllib_ppo import build_algorithm

    torch.set_num_threads(1)
    started_here = not ray.is_initialized()
    init_ray(max(RUNNERS) + 1)
    results: dict[str, Any] = {"rllib": {}}
    try:
        for runners in RUNNERS:
            algorithm = build_algorithm(_config(runners))
            try:
                algorithm.train()  # warm-up: workers start, connectors build
                sampling, whole = [], []
                began = time.perf_counter()
                while time.perf_counter() - began < seconds or len(whole) < 2:
                    tick = time.perf_counter()
                    result = algorithm.train()
                    wall = time.perf_counter() - tick
                    steps = result["env_runners"]["num_env_steps_sampled"]
                    sampling.append(steps / result["timers"]["env_runner_sampling_timer"])
                    whole.append(steps / wall)
            finally:
                algorithm.stop()
            results["rllib"][runners] = {
                "sampling": statistics.median(sampling),
                "iteration": statistics.median(whole),
                "iterations": len(whole),
            }
    finally:
        if started_here:
            ray.shutdown()
    results["sb3"] = _sb3_rate(seconds)
    one, two = results["rllib"][1]["sampling"], results["rllib"][2]["sampling"]
    results["scaling_2_over_1"] = two / one
    return results


def _sb3_rate(seconds: float) -> float:
    from sb3_contrib import MaskablePPO

    from phobos.training.sb3_tune import make_view

    model = MaskablePPO(
        "MultiInputPolicy",
        make_view(TrainConfig(framework="sb3")),
        n_steps=BATCH,
        batch_size=min(500, BATCH),
        n_epochs=2,
        policy_kwargs={"net_arch": [128, 128]},
        seed=0,
        device="cpu",
    )
    model.learn(BATCH)  # warm-up
    rates = []
    began = time.perf_counter()
    while time.perf_counter() - began < seconds or len(rates) < 2:
        tick = time.perf_counter()
        model.learn(BATCH, reset_num_timesteps=False)
        rates.append(BATCH / (time.perf_counter() - tick))
    return statistics.median(rates)


def report(results: dict[str, Any]) -> str:
    """Markdown table of the rates and the scaling ratio."""
    lines = [
        f"orbit-scheduling-v0, PPO batch {BATCH} env steps (5 agents, 3 modules), "
        f"{os.cpu_count()} cores; medians over iterations after one warm-up.",
        "",
        "| setting | sampling env steps/s | whole-iteration env steps/s | iterations |",
        "|---|---:|---:|---:|",
    ]
    for runners, rates in results["rllib"].items():
        where = "in the driver" if runners == 0 else f"{runners} remote"
        lines.append(
            f"| RLlib PPO, {runners} env runners ({where}) | {rates['sampling']:,.0f} | "
            f"{rates['iteration']:,.0f} | {rates['iterations']} |"
        )
    lines.append(
        f"| peer: SB3 MaskablePPO, single-agent view, 1 process | - | {results['sb3']:,.0f} | - |"
    )
    ratio = results["scaling_2_over_1"]
    verdict = "met" if ratio >= 1.6 else "missed"
    lines += [
        "",
        f"Scaling, sampling with 2 env runners over 1: **{ratio:.2f}x** (target 1.6x: {verdict}).",
    ]
    return "\n".join(lines)


def markdown(seconds: float) -> str:
    """Measure and return the section for ``docs/benchmarks.md``."""
    return report(run(seconds=seconds))
