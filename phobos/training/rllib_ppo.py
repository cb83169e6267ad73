"""RLlib PPO on the new API stack: every agent of a task at once, one module per role.

Modules are :class:`~phobos.agents.rl_module.MaskedPPOTorchModule`, mapped by
:func:`~phobos.agents.rl_module.module_id` (``ground`` for every station). Each agent gets the
team reward, so a module's return is the team's. Failed env runners are restarted by RLlib.

With ``critic: central`` (batch sampler only) each module's value function also sees the
joint state, every agent's observation of that step (MAPPO); the actor keeps its own
observation, so the export flies a ParallelEnv as a local-critic one does.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from typing import Any

from phobos.agents.rl_module import MaskedPPOTorchModule
from phobos.agents.roles import module_id
from phobos.envs import make
from phobos.training.config import TrainConfig
from phobos.training.multi_agent import PhobosMultiAgentEnv
from phobos.training.run_dir import CheckpointInfo, RunDir

MODULE_PATH = ("learner_group", "learner", "rl_module")
"""Where an algorithm checkpoint keeps its MultiRLModule."""


def policy_mapping(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """RLlib's ``policy_mapping_fn``: the agent's role module."""
    return module_id(agent_id)


def build_algorithm(config: TrainConfig) -> Any:
    """A PPO algorithm for ``config`` (Ray must be initialised)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.util import log_once

    from phobos.training.rllib_batch import env_runner_settings

    # RLlib warns once per process that PPO runs on the new API stack, the stack this project
    # chose on purpose; taking that one turn of its log_once key keeps the console for us.
    log_once("PPO_on_new_api_stack")

    env = make(config.env, **config.env_config)
    modules = sorted({module_id(agent) for agent in env.possible_agents})
    env.close()
    model_config: dict[str, Any] = {
        "fcnet_hiddens": list(config.hidden),
        "fcnet_activation": "tanh",
    }
    env_config: dict[str, Any] = {"env": config.env, "overrides": dict(config.env_config)}
    if config.critic == "central":  # the batch runner adds the joint state for the critic
        env_config["joint_state"] = True
        # PPO's default too, explicit here: the actor must not share the critic's encoder.
        model_config["vf_share_layers"] = False
    ppo = (
        PPOConfig()
        .environment(PhobosMultiAgentEnv, env_config=env_config)
        .env_runners(**env_runner_settings(config))
        .learners(**learner_settings(config))
        .training(
            lr=config.lr,
            gamma=config.gamma,
            lambda_=config.gae_lambda,
            clip_param=config.clip_param,
            entropy_coeff=config.entropy_coeff,
            vf_loss_coeff=config.vf_loss_coeff,
            train_batch_size_per_learner=config.train_batch_size,
            minibatch_size=config.minibatch_size,
            num_epochs=config.num_epochs,
        )
        .multi_agent(policies=set(modules), policy_mapping_fn=policy_mapping)
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={
                    m: RLModuleSpec(module_class=MaskedPPOTorchModule, model_config=model_config)
                    for m in modules
                }
            )
        )
        .fault_tolerance(restart_failed_env_runners=True)
        # No system-usage monitor: it needs gputil, and says so on every build.
        .debugging(seed=config.seed, log_level="ERROR", log_sys_usage=False)
        .reporting(metrics_num_episodes_for_smoothing=20)
    )
    return ppo.build_algo()


def learner_settings(config: TrainConfig) -> dict[str, Any]:
    """``AlgorithmConfig.learners(...)`` arguments for ``config``.

    The epoch-true learner; for the batch sampler also the array-built train batch
    (:mod:`phobos.training.rllib_train_batch`) in place of RLlib's episode-by-episode pipeline.
    """
    from phobos.training.rllib_learner import TORCH_THREADS, EpochPPOTorchLearner
    from phobos.training.rllib_train_batch import ChunksToTrainBatch

    settings: dict[str, Any] = {
        "num_learners": config.num_learners,
        "learner_class": EpochPPOTorchLearner,  # every role module gets num_epochs passes
        "learner_config_dict": {TORCH_THREADS: config.learner_threads},
    }
    if config.sampler == "batch":
        settings.update(
            learner_connector=functools.partial(
                ChunksToTrainBatch, gamma=config.gamma, lambda_=config.gae_lambda
            ),
            add_default_connectors_to_learner_pipeline=False,
        )
    return settings


def train(
    config: TrainConfig,
    run: RunDir,
    start: CheckpointInfo | None,
    report: Callable[[dict[str, float]], None],
    announce: Callable[[str], None] = print,
) -> CheckpointInfo:
    """Train until ``total_env_steps`` (or the time budget), checkpointing; returns the last."""
    algorithm = build_algorithm(config)
    iteration, env_steps, elapsed = 0, 0, 0.0
    last = start
    try:
        if start is not None:
            restore(algorithm, start)
            iteration, env_steps, elapsed = start.iteration, start.env_steps, start.elapsed_s
            run.truncate_log(iteration)
        else:
            began = time.perf_counter()
            warm_start(algorithm, config, announce)
            elapsed = time.perf_counter() - began  # the warm start counts in the time budget
            overrun = config.warm_start_overrun(elapsed)
            if overrun is not None:
                raise ValueError(overrun)
        while not config.finished(env_steps, elapsed):
            began = time.perf_counter()
            result = algorithm.train()
            seconds = time.perf_counter() - began
            iteration += 1
            elapsed += seconds
            runners = result["env_runners"]
            sampled = runners.get("num_env_steps_sampled", 0)
            # NaN when every runner failed this iteration (it is being restarted): none counted.
            sampled = int(sampled) if sampled == sampled else 0
            env_steps += sampled
            row = _row(iteration, env_steps, elapsed, sampled, seconds, result)
            run.log(row)
            report(row)
            done = config.finished(env_steps, elapsed)
            if iteration % config.checkpoint_every == 0 or done:
                last = save(
                    algorithm,
                    run,
                    CheckpointInfo(run.checkpoint_path(iteration), iteration, env_steps, elapsed),
                )
                announce(f"checkpoint {last.path} ({env_steps:,} env steps)")
    finally:
        algorithm.stop()
    if last is None:
        raise ValueError(
            "training stopped before its first iteration; raise total_env_steps or time_budget_s"
        )
    export(run, last)
    return last


def warm_start(algorithm: Any, config: TrainConfig, announce: Callable[[str], None]) -> None:
    """Clone the greedy team into every module (``imitation_episodes`` > 0), then sync runners.

    With a central critic each demonstration row is the agent's observation followed by the
    joint state of its step (every agent's row of that step), split again for the module.
    """
    if config.imitation_episodes <= 0:
        return
    from dataclasses import replace

    import numpy as np
    from ray.rllib.core.columns import Columns

    from phobos.agents.rl_module import JOINT_STATE
    from phobos.training.imitation import by_module, clone, collect, joint_states

    announce(config.warm_start_line())
    collected = collect(
        config.env,
        config.env_config,
        config.imitation_episodes,
        config.seed,
        config.gamma,
        config.imitation_team,
    )
    if config.critic == "central":
        joint = joint_states(collected, list(collected))  # collect keeps the env's agent order
        collected = {
            agent: replace(rows, observations=np.concatenate([rows.observations, joint], axis=1))
            for agent, rows in collected.items()
        }
    demonstrations = by_module(collected)

    def fit(learner: Any) -> dict[str, dict[str, float]]:
        results = {}
        for module_name, rows in sorted(demonstrations.items()):
            module = learner.module[module_name]
            own = module.policy_observation_space["observations"].shape[0]

            def heads(
                observations: Any, masks: Any, module: Any = module, own: int = own
            ) -> tuple[Any, Any]:
                inputs = {"observations": observations[:, :own], "action_mask": masks}
                if module.central:
                    inputs[JOINT_STATE] = observations[:, own:]
                batch = {Columns.OBS: inputs}
                logits = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
                return logits, module.compute_values(batch)

            results[module_name] = clone(
                heads, module.parameters(), rows, config.imitation_epochs, config.seed
            )
        return results

    fitted = next(iter(algorithm.learner_group.foreach_learner(fit))).get()
    # Several learners each cloned the same rows; they must also hold the same float bits.
    agree = algorithm.learner_group.foreach_learner(lambda learner: learner.agree_on_weights())
    for agreed in agree:
        agreed.get()  # raises what a learner raised
    sync_env_runners(algorithm)
    for module_name, metrics in fitted.items():
        announce(
            f"imitation {module_name}: {metrics['accuracy']:.1%} of the greedy team's actions "
            f"matched ({config.imitation_episodes} episodes)"
        )


def restore(algorithm: Any, checkpoint: CheckpointInfo) -> None:
    """Load ``checkpoint`` into ``algorithm``: learner, optimizer, connectors, every runner."""
    algorithm.restore_from_path(str(checkpoint.path.resolve()))
    sync_env_runners(algorithm)  # RLlib's own sync after a restore may skip runners


def sync_env_runners(algorithm: Any) -> None:
    """Give every env runner (local and remote) the learner's weights; return once all hold them.

    RLlib's own ``EnvRunnerGroup.sync_weights`` (which ``restore_from_path`` calls) is
    fire-and-forget and allows one ``set_state`` request in flight per runner: a runner still
    applying the one ``build_algo`` sent it is skipped without a word, and samples the next
    batch with the fresh random weights it was built with. This call waits instead; Ray runs
    an actor's calls in the order they were sent, so it lands after any still in flight.
    """
    import ray
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE
    from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

    learner = algorithm.learner_group.get_state(
        components=f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}", inference_only=True
    )[COMPONENT_LEARNER]
    # A runner takes weights whose sequence number is newer than its own, or numbered 0.
    state = {
        COMPONENT_RL_MODULE: ray.put(learner[COMPONENT_RL_MODULE]),
        WEIGHTS_SEQ_NO: learner[WEIGHTS_SEQ_NO],
    }
    algorithm.env_runner_group.foreach_env_runner(
        lambda runner: runner.set_state(state), local_env_runner=True
    )


def save(algorithm: Any, run: RunDir, info: CheckpointInfo) -> CheckpointInfo:
    """Write a resumable checkpoint and seal it."""
    info.path.mkdir(parents=True, exist_ok=True)
    algorithm.save_to_path(str(info.path.resolve()))
    run.seal_checkpoint(info)
    return info


def export(run: RunDir, checkpoint: CheckpointInfo) -> None:
    """Copy the checkpoint's MultiRLModule to ``policy/``: loadable without Ray or the algo."""
    source = checkpoint.path.joinpath(*MODULE_PATH)
    if run.policy.exists():
        shutil.rmtree(run.policy)
    shutil.copytree(source, run.policy)
    shutil.copy(checkpoint.path / "phobos.json", run.policy / "phobos.json")


def _row(
    iteration: int, env_steps: int, elapsed: float, sampled: int, seconds: float, result: dict
) -> dict[str, float]:
    runners = result["env_runners"]
    agent_returns = runners.get("agent_episode_returns_mean") or {}
    nan = float("nan")
    # Every agent receives the team reward, so any agent's return is the team return.
    team = sum(agent_returns.values()) / len(agent_returns) if agent_returns else nan
    sampling_s = result.get("timers", {}).get("env_runner_sampling_timer", nan)
    row = {
        "iteration": iteration,
        "env_steps": env_steps,
        "time_s": round(elapsed, 2),
        "team_return_mean": team,
        "episode_len_mean": runners.get("episode_len_mean", nan),
        "episodes": runners.get("num_episodes", nan),
        "env_steps_per_s": sampled / seconds if seconds > 0 else nan,
        "sampling_env_steps_per_s": sampled / sampling_s if sampling_s == sampling_s else nan,
    }
    for module, stats in (result.get("learners") or {}).items():
        if isinstance(stats, dict) and "policy_loss" in stats:
            row[f"{module}/policy_loss"] = float(stats["policy_loss"])
            row[f"{module}/entropy"] = float(stats.get("entropy", nan))
    return row
