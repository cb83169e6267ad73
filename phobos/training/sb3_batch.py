"""MaskablePPO on a task's batch core: one shared network flies the whole team.

The fast Stable-Baselines3 path (``framework: sb3``, ``sampler: batch``). The core steps
``num_envs`` episodes at once and every (episode, agent) is a slot of a
:class:`~phobos.training.batch_vec_env.BatchVecEnv`; the policy is an ``MlpPolicy`` over the
agent's observation and role one-hot, so every agent learns at once from the team reward.
Sizes: ``train_batch_size`` env steps per update, ``train_batch_size // num_envs`` steps per
episode slot, ``train_batch_size * agents`` samples per update; ``minibatch_size`` counts
samples (agent-steps). The export is a
:mod:`~phobos.agents.shared_policy` folder (safetensors and JSON: it loads without pickle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from phobos.agents.shared_policy import SharedPolicySpec, save_shared_policy
from phobos.envs import make_batch
from phobos.training.batch_vec_env import BatchVecEnv, training_seeds
from phobos.training.config import TrainConfig


def make_env(config: TrainConfig, seed: int) -> BatchVecEnv:
    """The run's slots: ``num_envs`` episodes of ``config.env`` seeded from ``seed``."""
    core = make_batch(config.env, config.num_envs, **config.env_config)
    seeds = training_seeds(seed, config.num_envs)
    return BatchVecEnv(
        core,
        config.env,
        seeds,
        joint_state=config.critic == "central",
        shaping_gamma=config.gamma if config.reward_shaping else None,
    )


def steps_per_slot(config: TrainConfig) -> int:
    """SB3's ``n_steps``: env steps per update shared out over the batch's episodes."""
    return config.train_batch_size // config.num_envs


def check(config: TrainConfig, agents: int) -> None:
    """Sizes the batch path cannot honour; raises ValueError naming the field."""
    if config.train_batch_size % config.num_envs:
        raise ValueError(
            f"train_batch_size {config.train_batch_size} must be a multiple of num_envs "
            f"{config.num_envs} on the batch sampler (each episode slot steps equally)"
        )
    samples = config.train_batch_size * agents
    if config.minibatch_size > samples:
        raise ValueError(
            f"minibatch_size {config.minibatch_size} exceeds the {samples} samples of an update "
            f"(train_batch_size {config.train_batch_size} x {agents} agents)"
        )


def new_model(config: TrainConfig, env: BatchVecEnv, seed: int, lr: float) -> Any:
    """A fresh MaskablePPO over the slots."""
    from phobos.agents.activations import Tanh
    from phobos.training.teacher_kl import TeacherKLMaskablePPO

    policy: Any = "MlpPolicy"
    policy_kwargs: dict[str, Any] = {"net_arch": list(config.hidden), "activation_fn": Tanh}
    if config.cell_network:
        from phobos.training.cell_network import CellSetPolicy

        spec = policy_spec(env, config)
        policy = CellSetPolicy
        policy_kwargs |= {
            "actor_inputs": env.actor_inputs,
            "cells": spec.cells,
            "roles": spec.roles,
            "cell_actions": spec.cell_actions,
            "areas": spec.areas,
            "area_actions": spec.area_actions,
        }
    elif config.critic == "central":
        from phobos.training.central_critic import CentralCriticPolicy

        policy = CentralCriticPolicy
        policy_kwargs["actor_inputs"] = env.actor_inputs
    model = TeacherKLMaskablePPO(
        policy,
        env,
        learning_rate=lr,
        n_steps=steps_per_slot(config),
        policy_kwargs=policy_kwargs,
        stats_window_size=config.num_envs,  # one finished batch of episodes
        seed=seed,
        **config.sb3_ppo_arguments(),
    )
    model.teacher_kl_coeff = config.teacher_kl_coeff
    return model


def load_model(config: TrainConfig, env: BatchVecEnv, folder: Path) -> Any:
    """A checkpointed model (and its teacher) back on ``env``."""
    from phobos.training.teacher_kl import TeacherKLMaskablePPO

    model = TeacherKLMaskablePPO.load(folder / "model.zip", env=env, device="cpu")
    model.teacher_kl_coeff = config.teacher_kl_coeff
    model.load_teacher(folder)
    return model


def policy_spec(env: BatchVecEnv, config: TrainConfig) -> SharedPolicySpec:
    """The exported policy's spec: the MLP, or the cell-set actor over the core's cells."""
    fields: dict[str, Any] = {}
    if config.cell_network:
        from phobos.agents.roles import module_id

        cells, per_agent = env.core.cell_structure()
        fields = {
            "cells": cells,
            "cell_actions": {module_id(agent): pairs for agent, pairs in per_agent.items()},
        }
        if config.policy_network == "cells_areas":
            areas, firsts = env.core.area_structure()
            fields["areas"] = areas
            fields["area_actions"] = {module_id(agent): a for agent, a in firsts.items()}
    return SharedPolicySpec(
        hidden=tuple(config.hidden), activation="tanh", **env.spec_base, **fields
    )


def env_steps(model: Any, env: BatchVecEnv) -> int:
    """Env steps sampled so far (SB3 counts slots, one per agent-step)."""
    return model.num_timesteps // len(env.agents)


def policy_tensors(policy: Any) -> dict[str, Any]:
    """An SB3 ``ActorCriticPolicy``'s actor and critic under the shared format's names."""
    from phobos.training.cell_network import CellSetPolicy, actor_tensors

    if isinstance(policy, CellSetPolicy):
        return actor_tensors(policy)
    state = policy.state_dict()
    tensors = {}
    sides = (("actor", "mlp_extractor.policy_net"), ("critic", "mlp_extractor.value_net"))
    for side, prefix in sides:
        layers = sorted({int(key.split(".")[2]) for key in state if key.startswith(prefix + ".")})
        for i, index in enumerate(layers):
            for part in ("weight", "bias"):
                tensors[f"{side}.{i}.{part}"] = state[f"{prefix}.{index}.{part}"]
    for part in ("weight", "bias"):
        tensors[f"actor.logits.{part}"] = state[f"action_net.{part}"]
        tensors[f"critic.value.{part}"] = state[f"value_net.{part}"]
    return tensors


def export(model: Any, env: BatchVecEnv, config: TrainConfig, folder: Path) -> None:
    """Write the shared policy of ``model`` into ``folder`` (no pickle in the result)."""
    save_shared_policy(folder, policy_spec(env, config), policy_tensors(model.policy))


def warm_start(model: Any, env: BatchVecEnv, config: TrainConfig, seed: int) -> dict[str, float]:
    """Clone the scripted team into the shared network, every agent's rows with its role."""
    from phobos.training.imitation import Demonstrations, clone, collect, joint_states

    demonstrations = collect(
        config.env,
        config.env_config,
        config.imitation_episodes,
        seed,
        config.gamma,
        config.imitation_team,
    )
    width = env.action_space.n
    joint = joint_states(demonstrations, list(env.agents))
    parts = []
    for i, agent in enumerate(env.agents):
        rows = demonstrations[agent]
        count = len(rows.actions)
        role = np.broadcast_to(env.role_features[i], (count, env.role_features.shape[1]))
        masks = np.zeros((count, width), dtype=np.int8)
        masks[:, : rows.masks.shape[1]] = rows.masks
        columns = [rows.observations, role] + ([joint] if env.joint_state else [])
        observations = np.concatenate(columns, axis=1, dtype=np.float32)
        parts.append(Demonstrations(observations, masks, rows.actions, rows.returns))
    rows = Demonstrations.concatenate(parts)
    policy = model.policy
    return clone(_heads(policy), policy.parameters(), rows, config.imitation_epochs, seed)


def _heads(policy: Any) -> Any:
    def heads(observations: Any, masks: Any) -> tuple[Any, Any]:
        latent_pi, latent_vf = policy.mlp_extractor(policy.extract_features(observations))
        logits = policy.action_net(latent_pi).masked_fill(masks <= 0, -1e8)
        return logits, policy.value_net(latent_vf)

    return heads


def _actor_now(model: Any, env: BatchVecEnv, config: TrainConfig) -> tuple[Any, dict]:
    """The policy's spec and its actor's weights as numpy arrays, as they are now."""
    spec = policy_spec(env, config)
    tensors = policy_tensors(model.policy).items()
    return spec, {k: v.detach().numpy().copy() for k, v in tensors if k.startswith("actor.")}


def _fly_teacher(
    env: BatchVecEnv, config: TrainConfig, spec: Any, actor: dict, seeds: list[int], seed: int
) -> Any:
    """The rollout teacher over ``actor``, its episodes shared by ``rollout_workers``.

    Every share runs the same numpy actor, the first in this process and the others as Ray
    tasks of one CPU each, so the labels do not depend on where a share ran.
    """
    from phobos.training.rollout_teacher import TeacherEpisodes, fly_teacher

    shares = [list(s) for s in np.array_split(seeds, config.rollout_workers) if len(s)]
    arguments = [
        (config.env, config.env_config, spec, actor, [int(x) for x in share])
        + (config.rollout_horizon, config.rollout_min_gain, config.rollout_samples, seed)
        + (config.rollout_true_site,)
        for share in shares
    ]
    if len(arguments) == 1:
        return fly_teacher(*arguments[0])
    import ray

    task = ray.remote(num_cpus=1)(fly_teacher)
    remote = [task.remote(*args) for args in arguments[1:]]
    return TeacherEpisodes.concatenate([fly_teacher(*arguments[0]), *ray.get(remote)])


def _team_policy(model: Any, env: BatchVecEnv, config: TrainConfig) -> Any:
    """The policy as it is now, as the team's deterministic actions on a core's arrays."""
    from phobos.agents.shared_policy import SharedActor
    from phobos.training.rollout_teacher import actor_policy

    spec, actor = _actor_now(model, env, config)
    return actor_policy(SharedActor(spec, actor, "the policy in training"), env.role_features)


def fly(core: Any, act: Any, seeds: list[int]) -> np.ndarray:
    """Team returns ``[n]`` of ``act`` flying the core's episodes from ``seeds``.

    Where episodes end at different steps (sampling) the ended ones run on, ignored.
    """
    observations, masks = core.reset(seeds)
    if hasattr(core, "run_on"):
        core.run_on = True
    total, ended = np.zeros(core.num_envs), np.zeros(core.num_envs, dtype=bool)
    while not ended.all():
        observations, masks, reward, done, _ = core.step(act(observations, masks))
        total += np.where(ended, 0.0, reward)
        ended |= done
    return total


ROLLOUT_SEED_BASE = 30_000_000
"""The rollout teacher's episodes use seeds ``ROLLOUT_SEED_BASE + 100_000 * seed + i``."""


def improve_by_rollouts(
    model: Any,
    env: BatchVecEnv,
    config: TrainConfig,
    seed: int,
    log: Any = print,
    after_round: Any = None,
) -> list[dict[str, float]]:
    """Rounds of distilling the rollout teacher into ``model`` (:mod:`.rollout_teacher`).

    Returns:
        Per round: the teacher's mean team return, the share of actions it changed, and the
        policy's action accuracy on all rows after the round's cloning.

    """
    from phobos.training.imitation import Demonstrations, clone

    core = make_batch(config.env, config.rollout_episodes, **config.env_config)
    parts: list[Demonstrations] = []
    rounds = []
    for round_index in range(config.rollout_rounds):
        first = ROLLOUT_SEED_BASE + 100_000 * seed + round_index * config.rollout_episodes
        seeds = list(range(first, first + config.rollout_episodes))
        flown = _fly_teacher(env, config, *_actor_now(model, env, config), seeds, seed)
        steps, n, agents, size = flown.observations.shape
        slots = env.slots(flown.observations.reshape(steps * n, agents, size))
        returns = np.repeat(flown.returns(config.gamma).reshape(-1), agents)
        masks = flown.masks.reshape(steps * n * agents, -1)
        kept = masks.any(axis=1)  # rows after an episode ended have no allowed action
        parts.append(
            Demonstrations(
                slots[kept],
                masks[kept],
                flown.actions.reshape(-1)[kept],
                returns.astype(np.float32)[kept],
                flown.regrets.reshape(steps * n * agents, -1)[kept],
            )
        )
        fitted = clone(
            _heads(model.policy),
            model.policy.parameters(),
            Demonstrations.concatenate(parts),
            config.rollout_epochs,
            seed + round_index,
            regret_weight=config.rollout_regret_weight,
        )
        summary = {
            "round": round_index + 1,
            "teacher_return_mean": float(flown.rewards.sum(axis=0).mean()),
            "policy_return_mean": float(fly(core, _team_policy(model, env, config), seeds).mean()),
            "changed": flown.changed,
            "accuracy": fitted["accuracy"],
        }
        # The true-site search flies the policy's own actions: its return is the policy's.
        flew = "the policy flew" if config.rollout_true_site else "teacher return"
        log(
            f"rollout round {round_index + 1}: {flew} {summary['teacher_return_mean']:.2f}"
            f", {flown.changed:.1%} of actions changed; policy matches {fitted['accuracy']:.1%} "
            f"and returns {summary['policy_return_mean']:.2f} on the same episodes"
        )
        rounds.append(summary)
        if after_round is not None:
            after_round(model, summary)
    return rounds
