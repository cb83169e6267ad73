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
    from phobos.training.teacher_kl import TeacherKLMaskablePPO

    policy: Any = "MlpPolicy"
    policy_kwargs: dict[str, Any] = {"net_arch": list(config.hidden)}
    if config.critic == "central":
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


def env_steps(model: Any, env: BatchVecEnv) -> int:
    """Env steps sampled so far (SB3 counts slots, one per agent-step)."""
    return model.num_timesteps // len(env.agents)


def policy_tensors(policy: Any) -> dict[str, Any]:
    """An SB3 ``ActorCriticPolicy``'s actor and critic under the shared format's names."""
    state = policy.state_dict()
    tensors = {}
    sides = (("actor", "mlp_extractor.policy_net"), ("critic", "mlp_extractor.value_net"))
    for side, prefix in sides:
        layers = sorted(
            {int(key.split(".")[2]) for key in state if key.startswith(prefix + ".")}
        )
        for i, index in enumerate(layers):
            for part in ("weight", "bias"):
                tensors[f"{side}.{i}.{part}"] = state[f"{prefix}.{index}.{part}"]
    for part in ("weight", "bias"):
        tensors[f"actor.logits.{part}"] = state[f"action_net.{part}"]
        tensors[f"critic.value.{part}"] = state[f"value_net.{part}"]
    return tensors


def export(model: Any, env: BatchVecEnv, config: TrainConfig, folder: Path) -> None:
    """Write the shared policy of ``model`` into ``folder`` (no pickle in the result)."""
    spec = SharedPolicySpec(hidden=tuple(config.hidden), activation="tanh", **env.spec_base)
    save_shared_policy(folder, spec, policy_tensors(model.policy))


def warm_start(model: Any, env: BatchVecEnv, config: TrainConfig, seed: int) -> dict[str, float]:
    """Clone the greedy team into the shared network, every agent's rows with its role."""
    from phobos.training.imitation import Demonstrations, clone, collect, joint_states

    demonstrations = collect(
        config.env, config.env_config, config.imitation_episodes, seed, config.gamma
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
    policy = model.policy

    def heads(observations: Any, masks: Any) -> tuple[Any, Any]:
        latent_pi, latent_vf = policy.mlp_extractor(policy.extract_features(observations))
        logits = policy.action_net(latent_pi).masked_fill(masks <= 0, -1e8)
        return logits, policy.value_net(latent_vf)

    rows = Demonstrations.concatenate(parts)
    return clone(heads, policy.parameters(), rows, config.imitation_epochs, seed)
