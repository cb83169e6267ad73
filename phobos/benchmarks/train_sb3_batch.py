"""The SB3 batch rows of the training benchmark, and what the learner's arithmetic allows them.

:func:`sb3_batch_worker` trains one MaskablePPO model over the batch core's slots for about
``seconds`` and reports what it sampled; :func:`sb3_batch` runs that many at once as Ray
tasks (their rates add up, as Tune's trials do). Beside the rate, each worker measures in the
same run the two figures that bound it on a CPU:

- the matmul FLOPs one trained sample costs, as torch's ``FlopCounterMode`` counts them on
  the model's own policy: ``num_epochs`` passes of PPO's forward and backward, plus the
  rollout's forward;
- the rate torch's sgemm runs at on this core, on the shape of the policy's widest layer over
  a minibatch, measured while every worker measures it (the cores busy as in training).

Their ratio is the rate no sampler can lift a trial above: what would remain if the learner
did nothing but its matmuls at that rate.
"""

from __future__ import annotations

import time
from typing import Any

from phobos.training.config import TrainConfig

MATMUL_SECONDS = 1.0
"""How long each worker times torch's sgemm for the ceiling (at most the row's seconds)."""


def sb3_batch_worker(
    seconds: float, seed: int, fields: dict[str, Any], matmul_seconds: float = MATMUL_SECONDS
) -> dict[str, float]:
    """Train one SB3 batch model of ``fields`` for ``seconds`` after a warm-up update."""
    import torch

    from phobos.training import sb3_batch

    torch.set_num_threads(1)
    config = TrainConfig(**fields)
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
        "flops_per_sample": sample_flops(model, config),
        "matmul_gflops": matmul_gflops(model, config.minibatch_size, matmul_seconds),
    }


def sb3_batch(seconds: float, workers: int, fields: dict[str, Any]) -> dict[str, float]:
    """``workers`` :func:`sb3_batch_worker` trials at once; their summed rate and the ceiling."""
    import ray

    matmul_seconds = min(MATMUL_SECONDS, seconds)  # a smoke run (seconds 0) times 3 calls

    task = ray.remote(num_cpus=1)(sb3_batch_worker)
    parts = ray.get(
        [task.remote(seconds, seed, fields, matmul_seconds) for seed in range(workers)]
    )
    rate = sum(p["agent_steps"] / p["wall_s"] for p in parts)
    flops = parts[0]["flops_per_sample"]  # the same model in every trial
    gflops = sum(p["matmul_gflops"] for p in parts) / workers
    return {
        "agent_steps_per_s": rate,
        "sampling_share": sum(p["sampling_s"] / p["wall_s"] for p in parts) / workers,
        "reset_share": sum(p["resets_s"] / p["wall_s"] for p in parts) / workers,
        "updates": sum(p["updates"] for p in parts),
        "flops_per_sample": flops,
        "matmul_gflops": gflops,
        "matmul_ceiling": workers * gflops * 1e9 / flops,
    }


def sample_flops(model: Any, config: TrainConfig) -> float:
    """Matmul FLOPs of one trained sample: ``num_epochs`` of PPO's passes and the rollout's.

    Counted by torch on one minibatch of ``model``'s filled rollout buffer: the forward of
    :meth:`evaluate_actions` with the backward of a loss on all three of its outputs (value,
    log-probability, entropy, as PPO's loss has), and the rollout's forward (action and value).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    # The buffer's first rows, not its shuffled minibatches: those draw from numpy's global RNG.
    buffer, policy = model.rollout_buffer, model.policy
    rows = min(config.minibatch_size, buffer.buffer_size * buffer.n_envs)
    observations = torch.as_tensor(buffer.observations.reshape(-1, *buffer.obs_shape)[:rows])
    actions = torch.as_tensor(buffer.actions.reshape(-1)[:rows]).long()
    masks = torch.as_tensor(buffer.action_masks.reshape(-1, buffer.mask_dims)[:rows])
    with FlopCounterMode(display=False) as update:
        values, log_prob, entropy = policy.evaluate_actions(
            observations, actions, action_masks=masks
        )
        (values.sum() + log_prob.sum() + entropy.sum()).backward()
    policy.optimizer.zero_grad()  # the counted pass must not leak into the next update
    with torch.no_grad(), FlopCounterMode(display=False) as rollout:
        policy(observations, action_masks=masks)
    return (config.num_epochs * update.get_total_flops() + rollout.get_total_flops()) / rows


def matmul_gflops(model: Any, rows: int, seconds: float) -> float:
    """Torch's single-thread sgemm rate on ``rows`` x the policy's widest linear layer."""
    import torch

    widest = max(
        (m for m in model.policy.modules() if isinstance(m, torch.nn.Linear)),
        key=lambda m: m.weight.numel(),
    )
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(rows, widest.in_features, generator=generator)
    weight = torch.randn(widest.out_features, widest.in_features, generator=generator)
    inputs @ weight.T  # warm-up: the first call allocates
    calls, began = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - began < seconds:
        inputs @ weight.T
        calls += 1
    wall = time.perf_counter() - began
    return 2.0 * rows * widest.in_features * widest.out_features * calls / wall / 1e9


def cap_line(label: str, rates: dict[str, float], workers: int) -> str:
    """What the arithmetic allows a row: its FLOPs per sample, the matmul rate, the ceiling."""
    achieved = rates["agent_steps_per_s"] / workers * rates["flops_per_sample"] / 1e9
    return (
        f"- {label}, {workers} worker(s): {rates['flops_per_sample'] / 1e6:.2f} MFLOP of "
        f"matmuls per agent-step (torch's FLOP counter: the epochs' forward and backward and "
        f"the rollout's forward); its learner reached {achieved:.1f} GFLOPS per trial, where "
        f"torch's sgemm alone runs {rates['matmul_gflops']:.1f} on the widest layer's shape. "
        f"Matmuls alone at that rate cap {workers} trial(s) at "
        f"**{rates['matmul_ceiling']:,.0f} agent-steps/s**."
    )
