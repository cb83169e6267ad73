"""``phobos train``: check everything, start or join Ray, train, export; resume after a kill."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from phobos.envs import has_batch, make, make_batch
from phobos.envs.registry import make_config, task_spec
from phobos.ray_cluster import check_ray_address, init_ray
from phobos.training.config import TrainConfig
from phobos.training.run_dir import CheckpointInfo, RunDir, format_progress
from phobos.training.sb3_batch import check as sb3_batch_check


@dataclass(frozen=True)
class TrainRequest:
    """One ``phobos train`` invocation.

    Attributes:
        config: What to train.
        out: The run folder.
        resume: Continue the run in ``out`` from its last checkpoint.
        ray_address: Join this cluster instead of starting Ray locally.
        quiet: No progress lines.
        force: Start over in an ``out`` that holds a run, deleting that run's files.

    """

    config: TrainConfig
    out: Path
    resume: bool = False
    ray_address: str | None = None
    quiet: bool = False
    force: bool = False


def _check_learners(config: TrainConfig) -> None:
    """``num_learners``: rllib only; 0 (the driver learns), 1 (a remote learner) or more.

    Two or more learn in data parallel, each on its shard of the batch, averaging gradients
    every SGD step (:class:`~phobos.training.rllib_learner.EpochPPOTorchLearner`); RLlib's
    ``train_batch_size_per_learner`` and ``minibatch_size`` are per learner, so an iteration
    samples ``num_learners`` times ``train_batch_size``. On the batch sampler every learner
    gets whole episodes: the episodes stepped at once must split evenly among them.
    """
    learners = config.num_learners
    if learners < 0:
        raise ValueError(f"num_learners must be 0 or more, got {learners}")
    if learners and config.framework != "rllib":
        raise ValueError(
            f"num_learners {learners} needs framework 'rllib' (an sb3 trial learns in its own "
            "process; run more trials with trial_seeds or trial_lrs)"
        )
    if config.learner_threads < 1:
        raise ValueError(f"learner_threads must be at least 1, got {config.learner_threads}")
    episodes = config.num_envs * max(config.num_env_runners, 1)
    if learners > 1 and config.sampler == "batch" and episodes % learners:
        raise ValueError(
            f"num_learners {learners} must divide the {episodes} episodes stepped at once "
            f"(num_envs {config.num_envs} x {max(config.num_env_runners, 1)} env runner(s))"
        )


def _check_true_site(config: TrainConfig, hidden: bool) -> None:
    """``rollout_true_site``: a hidden world, no imagined sites, and the regrets to learn."""
    if not hidden:
        raise ValueError(
            f"rollout_true_site: the {config.env} search already branches the true episode "
            "(nothing is hidden there); leave it false"
        )
    if config.rollout_samples:
        raise ValueError(
            f"rollout_true_site searches the true site: rollout_samples must be 0, got "
            f"{config.rollout_samples}"
        )
    if config.rollout_regret_weight <= 0:
        raise ValueError(
            "rollout_true_site needs rollout_regret_weight above 0: copying each true site's "
            "best action would teach what the lander cannot know"
        )


def check(config: TrainConfig) -> None:
    """Every check that can fail before Ray starts; raises ValueError naming the culprit."""
    make_config(config.env, **config.env_config)  # unknown env, keys or values
    cloning_only = config.framework == "sb3" and (
        config.imitation_episodes > 0 or config.rollout_rounds > 0
    )
    if config.total_env_steps < (0 if cloning_only else 1):
        raise ValueError(
            f"total_env_steps must be at least 1 (0 only for an sb3 run that clones and stops), "
            f"got {config.total_env_steps}"
        )
    for name in (
        "train_batch_size",
        "minibatch_size",
        "num_epochs",
        "checkpoint_every",
        "envs_per_env_runner",
        "max_concurrent_trials",
    ):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
    if config.num_env_runners < 0:
        raise ValueError(f"num_env_runners must be 0 or more, got {config.num_env_runners}")
    _check_learners(config)
    shared_batch = config.framework == "sb3" and config.sampler == "batch"
    if not shared_batch and config.minibatch_size > config.train_batch_size:
        raise ValueError(
            f"minibatch_size {config.minibatch_size} exceeds train_batch_size "
            f"{config.train_batch_size}"
        )
    if not config.hidden or min(config.hidden) < 1:
        raise ValueError(f"hidden must list positive layer sizes, got {config.hidden}")
    if config.lr <= 0 or any(lr <= 0 for lr in config.trial_lrs):
        raise ValueError("learning rates must be positive")
    if config.critic == "central" and config.sampler != "batch":
        raise ValueError(
            "critic 'central' needs sampler 'batch' (the joint state comes from the batch "
            f"core); got framework {config.framework!r}, sampler {config.sampler!r}"
        )
    if config.reward_shaping and not shared_batch:
        raise ValueError("reward_shaping needs framework 'sb3' with sampler 'batch'")
    if config.reward_shaping and shared_batch:
        core = make_batch(config.env, 1, **config.env_config)
        if not hasattr(core, "potential"):
            raise ValueError(f"reward_shaping: the {config.env} batch core defines no potential")
    if config.teacher_kl_coeff < 0:
        raise ValueError(f"teacher_kl_coeff must be 0 or more, got {config.teacher_kl_coeff}")
    if config.teacher_kl_coeff > 0 and not (shared_batch and config.imitation_episodes > 0):
        raise ValueError(
            "teacher_kl_coeff needs a teacher: framework 'sb3', sampler 'batch' and "
            "imitation_episodes > 0 (the cloned policy is the teacher)"
        )
    if config.imitation_episodes > 0:
        _check_imitation_team(config)
    if config.dagger_rounds < 0:
        raise ValueError(f"dagger_rounds must be 0 or more, got {config.dagger_rounds}")
    if config.dagger_rounds > 0:
        if not (shared_batch and config.imitation_episodes > 0):
            raise ValueError(
                "dagger_rounds needs framework 'sb3', sampler 'batch' and imitation_episodes > 0 "
                "(on-policy cloning refines the warm start)"
            )
        for name in ("dagger_episodes", "dagger_epochs"):
            if getattr(config, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
        task_spec(config.env).array_team(config.imitation_team)  # its array twin, or an error
    if config.num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {config.num_envs}")
    if config.cell_network:
        network = config.policy_network
        if not shared_batch:
            raise ValueError(
                f"policy_network {network!r} needs framework 'sb3' with sampler 'batch'"
            )
        core = make_batch(config.env, 1, **config.env_config)
        if not hasattr(core, "cell_structure"):
            raise ValueError(
                f"policy_network {network!r}: the {config.env} observation has no cell blocks; "
                "use policy_network 'mlp'"
            )
        if network == "cells_areas" and not hasattr(core, "area_structure"):
            raise ValueError(
                f"policy_network 'cells_areas': the {config.env} actions have no areas; "
                "use policy_network 'cells'"
            )
    if config.rollout_rounds < 0:
        raise ValueError(f"rollout_rounds must be 0 or more, got {config.rollout_rounds}")
    if config.rollout_rounds > 0:
        for name in ("rollout_episodes", "rollout_horizon", "rollout_epochs", "rollout_workers"):
            if getattr(config, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
        if config.rollout_regret_weight < 0:
            raise ValueError(
                f"rollout_regret_weight must be 0 or more, got {config.rollout_regret_weight}"
            )
        if config.rollout_min_gain < 0:
            raise ValueError(f"rollout_min_gain must be 0 or more, got {config.rollout_min_gain}")
        if not shared_batch:
            raise ValueError("rollout_rounds needs framework 'sb3' with sampler 'batch'")
        core = make_batch(config.env, 1, **config.env_config)
        if not hasattr(core, "branch"):
            raise ValueError(
                f"rollout_rounds: the {config.env} batch core cannot branch, so no rollout "
                "search runs on it; set rollout_rounds: 0"
            )
        hidden = hasattr(core, "believed_sites")
        if config.rollout_true_site:
            _check_true_site(config, hidden)
        elif hidden and config.rollout_samples < 1:
            raise ValueError(
                f"rollout_samples must be at least 1 for {config.env}: its world is hidden "
                "from the lander, so the search imagines sites from the lander's belief"
            )
        if not hidden and config.rollout_samples:
            raise ValueError(
                f"rollout_samples must be 0 for {config.env}: its batch core is known exactly "
                "and the search branches the true episode"
            )
    if config.sampler == "batch":
        if not has_batch(config.env):
            raise ValueError(f"sampler 'batch': {config.env} has no batch core; use sampler 'env'")
        if config.framework == "sb3":
            env = make(config.env, **config.env_config)
            sb3_batch_check(config, len(env.possible_agents))
            env.close()
    if config.framework == "sb3" and not shared_batch:
        env = make(config.env, **config.env_config)
        if config.learner not in env.possible_agents:
            raise ValueError(
                f"learner {config.learner!r} is not an agent of {config.env}; agents: "
                f"{', '.join(env.possible_agents)}"
            )
    if config.framework == "sb3" and not config.trial_seeds:
        raise ValueError("trial_seeds must list at least one seed")


def _check_imitation_team(config: TrainConfig) -> None:
    """The warm start's team must be one of the task's scripted teams."""
    scripted = sorted(task_spec(config.env).teams)
    if config.imitation_team not in scripted:
        raise ValueError(
            f"imitation_team {config.imitation_team!r} is not a scripted team of {config.env}; "
            f"choose from {', '.join(scripted)}"
        )


def run(request: TrainRequest) -> CheckpointInfo:
    """Train as ``request`` says; returns the checkpoint the exported policy came from."""
    config = request.config
    check(config)
    if request.ray_address:
        check_ray_address(request.ray_address)
    folder = RunDir(request.out, config)
    start = folder.start(request.resume, request.force)
    if start is not None and folder.finished(start):
        print(
            f"{request.out} already finished: iteration {start.iteration}, "
            f"{start.env_steps:,} of {config.total_env_steps:,} env steps; its policy is in "
            f"{folder.policy} (raise total_env_steps with --set to train further)",
            flush=True,
        )
        return start
    if start is not None and not request.quiet:
        print(
            f"resuming {request.out} from iteration {start.iteration} at {start.env_steps:,} "
            "env steps",
            flush=True,
        )
    import torch

    # On small machines torch's thread pool fights Ray's workers for the same cores.
    torch.set_num_threads(1)
    per_trial = config.learner_threads + config.extra_rollout_workers
    trials = min(config.max_concurrent_trials, os.cpu_count() or 1)
    # A remote learner holds a CPU of Ray's, as a runner does (PPO's phases take turns).
    cpus = max(2, config.num_env_runners + config.num_learners + 1, trials * per_trial)
    started = init_ray(cpus, request.ray_address)
    try:
        if config.framework == "rllib":
            from phobos.training import rllib_ppo

            def report(row: dict[str, float]) -> None:
                if not request.quiet:
                    print(
                        format_progress(row, config.total_env_steps, config.time_budget_s),
                        flush=True,
                    )

            def announce(line: str) -> None:
                if not request.quiet:
                    print(line, flush=True)

            last = rllib_ppo.train(config, folder, start, report, announce)
        else:
            from phobos.training import sb3_tune

            last = sb3_tune.train(config, folder, request.resume, request.quiet)
    finally:
        folder.close()
        if started:
            import ray

            ray.shutdown()
    if not request.quiet:
        print(
            f"exported {folder.policy} (iteration {last.iteration}, {last.env_steps:,} env steps)",
            file=sys.stdout,
            flush=True,
        )
    return last
