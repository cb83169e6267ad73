"""RLlib PPO on the batch core: whole-iteration agent-steps/s with 0, 1 and 2 env runners.

Each setting trains the orbit-scheduling team (``sampler="batch"``, 256 episodes shared
out over the runners, 8,192 env steps = 40,960 agent steps per PPO iteration) for about
``seconds`` after a warm-up iteration, and splits the wall time into learning (the driver's
``LearnerGroup.update``: learner connectors, GAE and SGD) and sampling (the rest: the
runners' ``sample()``, their metrics and the weight sync). Beside it, the same PPO settings on
the reference ``env`` sampler (one ``ParallelEnv`` episode per runner, a smaller batch so an
iteration ends within a benchmark run).

Run: ``python -c "from phobos.benchmarks.train_rllib_batch import rllib_batch_rates as r;
print(r(20))"``. Timings are indicative on a shared machine.
"""

from __future__ import annotations

import time
from typing import Any

from phobos.ray_cluster import init_ray
from phobos.training.config import TrainConfig
from phobos.training.rllib_batch import SAMPLE_CPU_S

AGENTS = 5
"""Agents of the default orbit-scheduling task (two spacecraft, three stations)."""
RUNNERS = (0, 1, 2)
SETTINGS = {
    "sampler": "batch",
    "num_envs": 256,
    "train_batch_size": 8192,
    "minibatch_size": 2048,
    "num_epochs": 4,
    "hidden": (128, 128),
}
"""The batch path's settings: 256 episodes (shared out over the runners), 32 steps each."""
REFERENCE_BATCH = 2000
"""Env steps per iteration of the reference ``env`` sampler."""


def measure(config: TrainConfig, seconds: float) -> dict[str, float]:
    """Train ``config`` for about ``seconds`` (at least two iterations) after a warm-up one.

    Returns:
        ``agent_steps_per_s`` (whole iterations), ``sampling_share`` and ``learning_share`` of
        the wall time, ``iterations``, the env steps per iteration and the driver learner's
        torch threads (NaN for a remote learner).

    """
    import torch

    from phobos.training.rllib_ppo import build_algorithm

    algorithm = build_algorithm(config)
    # The driver's learner set its process's torch threads as it was built.
    threads = float("nan") if algorithm.learner_group.is_remote else torch.get_num_threads()
    update = algorithm.learner_group.update
    spent = {"learning": 0.0}

    def timed_update(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return update(*args, **kwargs)
        finally:
            spent["learning"] += time.perf_counter() - began

    algorithm.learner_group.update = timed_update  # this algorithm only, for the split
    try:
        algorithm.train()  # warm-up: runners start, the first episodes are planned
        spent["learning"], steps, iterations, runner_cpu = 0.0, 0, 0, 0.0
        began, driver_cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - began < seconds or iterations < 2:
            result = algorithm.train()
            steps += int(result["env_runners"]["num_env_steps_sampled"])
            runner_cpu += float(result["env_runners"].get(SAMPLE_CPU_S, 0.0))
            iterations += 1
        wall = time.perf_counter() - began
        driver_cpu = time.process_time() - driver_cpu
    finally:
        algorithm.stop()
    learning = min(spent["learning"] / wall, 1.0)
    # Idle-machine estimate: the driver's CPU time (its own sampling included when it has no
    # runners) plus, with runners, one runner's share of their sampling CPU (they run at once).
    runners = config.num_env_runners
    # (The env sampler reports no sampling CPU: with runners, it gets no estimate.)
    cpu_s = driver_cpu + (runner_cpu / runners if runners else 0.0)
    if runners and config.sampler != "batch":
        cpu_s = float("nan")
    return {
        "agent_steps_per_s": steps * AGENTS / wall,
        "sampling_share": 1.0 - learning,
        "learning_share": learning,
        "iterations": iterations,
        "env_steps_per_iteration": steps / iterations,
        "cpu_agent_steps_per_s": steps * AGENTS / cpu_s,
        "learner_threads": threads,
    }


def measure_sampling(config: TrainConfig, seconds: float) -> dict[str, float]:
    """PPO's sampling phase alone: the runners' ``sample()`` with the episodes in the driver.

    What ``training_step`` does before its learner update, repeated for about ``seconds`` (at
    least two rounds) after a warm-up round, with the weights left as built: the part of an
    iteration that more runners share out.

    Returns:
        ``agent_steps_per_s``, and the ``agent_steps`` and ``rounds`` measured.

    """
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample

    from phobos.training.rllib_ppo import build_algorithm

    algorithm = build_algorithm(config)

    def sample() -> int:
        # As training_step calls it: with the runners' metrics, which count env steps (without
        # them it counts each chunk's steps as env steps and keeps the first runner's only).
        episodes, _ = synchronous_parallel_sample(
            worker_set=algorithm.env_runner_group,
            max_env_steps=config.train_batch_size,
            sample_timeout_s=algorithm.config.sample_timeout_s,
            _uses_new_env_runners=True,
            _return_metrics=True,
        )
        return sum(len(episode) for episode in episodes)  # agent steps: one agent per chunk

    try:
        sample()
        agent_steps, rounds, began = 0, 0, time.perf_counter()
        while time.perf_counter() - began < seconds or rounds < 2:
            agent_steps += sample()
            rounds += 1
        wall = time.perf_counter() - began
    finally:
        algorithm.stop()
    return {"agent_steps_per_s": agent_steps / wall, "agent_steps": agent_steps, "rounds": rounds}


def rllib_batch_rates(
    seconds: float = 20.0, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Measure the batch sampler with 0, 1 and 2 env runners and the env sampler beside it.

    Args:
        seconds: Measured time per setting (after its warm-up iteration).
        overrides: ``TrainConfig`` fields replacing :data:`SETTINGS` (e.g. a smaller batch
            for a smoke test).

    Returns:
        ``{"seconds": ..., "paths": {("rllib batch", runners): measure(...), ...,
        ("rllib env", 1): ...}, "wall_s": ...}``.

    """
    import ray
    import torch

    torch.set_num_threads(1)
    settings = SETTINGS | dict(overrides or {})
    started_here = not ray.is_initialized()
    init_ray(max(RUNNERS) + 1)
    results: dict[str, Any] = {"seconds": seconds, "settings": settings, "paths": {}}
    began = time.perf_counter()
    try:
        for runners in RUNNERS:
            # num_envs is per runner: the runners share the same episodes (the same update).
            envs = max(settings["num_envs"] // max(runners, 1), 1)
            config = TrainConfig(**(settings | {"num_env_runners": runners, "num_envs": envs}))
            results["paths"][("rllib batch", runners)] = measure(config, seconds)
        reference = min(REFERENCE_BATCH, settings["train_batch_size"])
        config = TrainConfig(
            **(
                settings
                | {
                    "sampler": "env",
                    "num_env_runners": 1,
                    "train_batch_size": reference,
                    "minibatch_size": min(settings["minibatch_size"], reference),
                }
            )
        )
        results["paths"][("rllib env", 1)] = measure(config, seconds)
    finally:
        if started_here:
            ray.shutdown()
    results["wall_s"] = time.perf_counter() - began
    return results


def report(results: dict[str, Any]) -> str:
    """Markdown table of each setting's rate and its sampling / learning split."""
    lines = [
        "| sampler | env runners | agent-steps/s | idle-CPU estimate | sampling | learning "
        "| env steps/iter |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (sampler, runners), row in results["paths"].items():
        lines.append(
            f"| {sampler} | {runners} | {row['agent_steps_per_s']:,.0f} | "
            f"{row['cpu_agent_steps_per_s']:,.0f} | "
            f"{row['sampling_share']:.0%} | {row['learning_share']:.0%} | "
            f"{row['env_steps_per_iteration']:,.0f} |"
        )
    return "\n".join(lines)
