"""RLlib sampling from a task's vectorised batch core: one env runner, hundreds of episodes.

:class:`BatchEnvRunner` is an RLlib ``EnvRunner`` (``config.env_runners(env_runner_cls=...)``)
that steps ``num_envs`` episodes of the task's batch core (for ``orbit-scheduling-v0``,
:class:`~phobos.envs.orbit_scheduling.batch.OrbitSchedulingBatch`) in lock-step with arrays,
and runs each role module once per step on the stacked observations of all its agents in
all episodes. ``--num-env-runners N`` gives N such runners (Ray actors), each with its own
batch; with ``N = 0`` the driver samples.

What it hands to PPO's learner: one ``SingleAgentEpisode`` chunk per (episode, agent), with
``agent_id``, ``module_id`` and a ``multi_agent_episode_id`` unique to the chunk, numpy data
throughout. RLlib's learner connectors (``AddOneTsToEpisodesAndTruncate``, the observation
and column connectors, ``AgentToModuleMapping``, GAE) only ever look at the single-agent
episodes inside a ``MultiAgentEpisode``, so this skips building per-step agent dicts.

Counting: ``num_env_steps_sampled`` counts **env steps**, one per episode step (all agents
of one episode acting once), exactly as the ``env`` sampler does, so ``train_batch_size``
still means env steps (each runner samples ``train_batch_size / N`` per iteration, rounded
up to whole steps of its ``num_envs`` episodes). ``num_agent_steps_sampled`` counts agent
steps. One difference: the learner's own ``num_env_steps_trained`` (``sum(len(episode))``
in ``Learner``) counts agent steps here, because each episode it sees is one agent's.

Seeds: episode ``i`` of runner ``w`` (``w = 0`` for the driver) is first reset with
``seed + w * num_envs + i``, afterwards each continues its own generator, as a ParallelEnv
reset without a seed does. Exploration samples from the runner's own torch generator.

The unused env-to-module and module-to-env connector pipelines are RLlib's defaults, kept
because the algorithm merges, broadcasts and checkpoints their (empty) states.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from collections.abc import Collection
from typing import Any

import gymnasium
import numpy as np
import torch
from ray.rllib.core import (
    COMPONENT_ENV_TO_MODULE_CONNECTOR,
    COMPONENT_MODULE_TO_ENV_CONNECTOR,
    COMPONENT_RL_MODULE,
)
from ray.rllib.core.columns import Columns
from ray.rllib.env import INPUT_ENV_SINGLE_SPACES, INPUT_ENV_SPACES
from ray.rllib.env.env_runner import EnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.utils.checkpoints import Checkpointable
from ray.rllib.utils.metrics import (
    EPISODE_AGENT_RETURN_MEAN,
    EPISODE_AGENT_STEPS,
    EPISODE_DURATION_SEC_MEAN,
    EPISODE_LEN_MAX,
    EPISODE_LEN_MEAN,
    EPISODE_LEN_MIN,
    EPISODE_MODULE_RETURN_MEAN,
    EPISODE_RETURN_MAX,
    EPISODE_RETURN_MEAN,
    EPISODE_RETURN_MIN,
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
    RLMODULE_INFERENCE_TIMER,
    SAMPLE_TIMER,
    WEIGHTS_SEQ_NO,
)

from phobos.agents.roles import module_id
from phobos.envs import make, make_batch
from phobos.training.config import TrainConfig


def env_runner_settings(config: TrainConfig) -> dict[str, Any]:
    """``AlgorithmConfig.env_runners(...)`` arguments for ``config.sampler``.

    ``env`` (the reference): RLlib's ``MultiAgentEnvRunner`` steps ``envs_per_env_runner``
    ParallelEnvs one step at a time. ``batch``: :class:`BatchEnvRunner` steps ``num_envs``
    episodes of the task's batch core; ``num_envs_per_env_runner`` is that count, so RLlib's
    ``"auto"`` fragment length is each episode's share of the runner's part of the batch.
    """
    settings: dict[str, Any] = {
        "num_env_runners": config.num_env_runners,
        "num_envs_per_env_runner": config.envs_per_env_runner,
        "rollout_fragment_length": "auto",
    }
    if config.sampler == "batch":
        settings.update(env_runner_cls=BatchEnvRunner, num_envs_per_env_runner=config.num_envs)
    return settings


class BatchEnvRunner(EnvRunner, Checkpointable):
    """An RLlib env runner that samples a batch core; see the module docstring.

    Args:
        config: The algorithm's config; ``env_config`` is ``{"env": ID, "overrides": {...}}``
            and ``num_envs_per_env_runner`` is the number of episodes in the batch.
        **kwargs: RLlib's (``worker_index``, ``num_workers``, ...).

    """

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config=config, **kwargs)
        if self.worker_index:  # a remote runner is one CPU's worth: no intra-op thread pool
            torch.set_num_threads(1)
        env_config = dict(self.config.env_config)
        self._env_id = env_config["env"]
        self._overrides = dict(env_config.get("overrides") or {})
        self.num_envs = int(self.config.num_envs_per_env_runner)
        env = make(self._env_id, **self._overrides)
        self._agents = list(env.possible_agents)
        self._observation_spaces = {a: env.observation_space(a) for a in self._agents}
        self._action_spaces = {a: env.action_space(a) for a in self._agents}
        env.close()
        groups: dict[str, list[int]] = defaultdict(list)
        for index, agent in enumerate(self._agents):
            groups[module_id(agent)].append(index)
        self._groups = dict(groups)
        self._generator = torch.Generator().manual_seed(self._seed or 0)
        self._batch: Any = None
        self._weights_seq_no = 0
        self._horizon = int(env.config.horizon_steps)
        # Per batch of finished episodes: returns [episode, agent] and wall seconds taken.
        self._done_returns: list[tuple[np.ndarray, float]] = []
        if self.worker_index is None or self.worker_index > 0 or self.config.num_env_runners == 0:
            self.make_env()
        spaces = self.get_spaces()
        self.module = None
        self.make_module()
        self._env_to_module = self.config.build_env_to_module_connector(spaces=spaces)
        self._module_to_env = self.config.build_module_to_env_connector(spaces=spaces)

    # ------------------------------------------------------------------ RLlib's interface
    def make_env(self) -> None:
        """Build the batch core; the first reset happens on the first ``sample()``."""
        self._batch = make_batch(self._env_id, self.num_envs, **self._overrides)
        if list(self._batch.agents) != self._agents:
            raise ValueError(
                f"the batch core of {self._env_id} orders agents {list(self._batch.agents)}, "
                f"its ParallelEnv {self._agents}"
            )
        self._needs_reset = True
        self._first_reset = True

    def make_module(self) -> None:
        """Build the inference-only MultiRLModule from the per-module spaces."""
        spec = self.config.get_multi_rl_module_spec(spaces=self.get_spaces(), inference_only=True)
        self.module = spec.build()

    def get_spaces(self) -> dict[str, Any]:
        """Per-agent env spaces and, per module, the spaces of its first agent."""
        observations = gymnasium.spaces.Dict(self._observation_spaces)
        actions = gymnasium.spaces.Dict(self._action_spaces)
        spaces: dict[str, Any] = {
            INPUT_ENV_SPACES: (observations, actions),
            INPUT_ENV_SINGLE_SPACES: (observations, actions),
        }
        for module, indices in self._groups.items():
            agent = self._agents[indices[0]]
            spaces[module] = (self._observation_spaces[agent], self._action_spaces[agent])
        return spaces

    def assert_healthy(self) -> None:
        """A sampling runner has its batch core and its module."""
        assert self._batch is not None and self.module is not None

    def sample(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool | None = None,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list[SingleAgentEpisode]:
        """Step the batch ``num_timesteps`` env steps, or until ``num_episodes`` episodes end.

        The default is this runner's share of the train batch; ``num_episodes`` starts from a
        fresh reset and runs whole episodes.

        Returns:
            One chunk per (episode, agent) that stepped, finished episodes first.

        """
        if self._batch is None:
            raise ValueError(f"{self} has no batch core; it cannot sample")
        if num_timesteps is not None and num_episodes is not None:
            raise ValueError("give num_timesteps or num_episodes, not both")
        explore = self.config.explore if explore is None else explore
        with self.metrics.log_time(SAMPLE_TIMER):
            if num_episodes is not None:
                horizon = self._horizon
                rounds = max(1, math.ceil(num_episodes / self.num_envs))
                return self._sample(rounds * horizon, explore, random_actions, reset=True)
            if num_timesteps is None:
                per_episode = self.config.get_rollout_fragment_length(self.worker_index or 0)
            else:
                per_episode = max(1, math.ceil(num_timesteps / self.num_envs))
            return self._sample(per_episode, explore, random_actions, reset=force_reset)

    def get_metrics(self) -> dict[str, Any]:
        """Episode statistics of the episodes finished since the last call, and counters."""
        window = max(
            1,
            math.ceil(
                self.config.metrics_num_episodes_for_smoothing / (self.config.num_env_runners or 1)
            ),
        )
        length = self._horizon
        for returns, duration in self._done_returns:
            for per_agent in returns:
                agents = {a: float(r) for a, r in zip(self._agents, per_agent, strict=True)}
                modules: dict[str, float] = defaultdict(float)
                for agent, value in agents.items():
                    modules[module_id(agent)] += value
                total = float(per_agent.sum())
                self.metrics.log_dict(
                    {
                        EPISODE_LEN_MEAN: length,
                        EPISODE_RETURN_MEAN: total,
                        EPISODE_DURATION_SEC_MEAN: duration,
                        EPISODE_AGENT_RETURN_MEAN: agents,
                        EPISODE_AGENT_STEPS: dict.fromkeys(self._agents, length),
                        EPISODE_MODULE_RETURN_MEAN: dict(modules),
                    },
                    window=window,
                )
                self.metrics.log_dict(
                    {EPISODE_LEN_MIN: length, EPISODE_RETURN_MIN: total},
                    reduce="min",
                    window=window,
                )
                self.metrics.log_dict(
                    {EPISODE_LEN_MAX: length, EPISODE_RETURN_MAX: total},
                    reduce="max",
                    window=window,
                )
        self._done_returns.clear()
        return self.metrics.reduce()

    def get_state(
        self,
        components: str | Collection[str] | None = None,
        *,
        not_components: str | Collection[str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Module weights (with their sequence number), connector states, step counter."""
        state: dict[str, Any] = {
            NUM_ENV_STEPS_SAMPLED_LIFETIME: self.num_env_steps_sampled_lifetime
        }
        if self._check_component(COMPONENT_RL_MODULE, components, not_components):
            state[COMPONENT_RL_MODULE] = self.module.get_state(
                components=self._get_subcomponents(COMPONENT_RL_MODULE, components),
                not_components=self._get_subcomponents(COMPONENT_RL_MODULE, not_components),
                **kwargs,
            )
            state[WEIGHTS_SEQ_NO] = self._weights_seq_no
        if self._check_component(COMPONENT_ENV_TO_MODULE_CONNECTOR, components, not_components):
            state[COMPONENT_ENV_TO_MODULE_CONNECTOR] = self._env_to_module.get_state()
        if self._check_component(COMPONENT_MODULE_TO_ENV_CONNECTOR, components, not_components):
            state[COMPONENT_MODULE_TO_ENV_CONNECTOR] = self._module_to_env.get_state()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Take newer weights (sequence number 0 forces), connector states, the counter."""
        import ray

        if COMPONENT_ENV_TO_MODULE_CONNECTOR in state:
            self._env_to_module.set_state(state[COMPONENT_ENV_TO_MODULE_CONNECTOR])
        if COMPONENT_MODULE_TO_ENV_CONNECTOR in state:
            self._module_to_env.set_state(state[COMPONENT_MODULE_TO_ENV_CONNECTOR])
        if COMPONENT_RL_MODULE in state:
            seq_no = state.get(WEIGHTS_SEQ_NO, 0)
            if seq_no == 0 or self._weights_seq_no < seq_no:
                module_state = state[COMPONENT_RL_MODULE]
                if isinstance(module_state, ray.ObjectRef):
                    module_state = ray.get(module_state)
                self.module.set_state(module_state)
            if seq_no > 0:
                self._weights_seq_no = seq_no
        if NUM_ENV_STEPS_SAMPLED_LIFETIME in state:
            self.num_env_steps_sampled_lifetime = state[NUM_ENV_STEPS_SAMPLED_LIFETIME]

    def get_ctor_args_and_kwargs(self) -> tuple[tuple, dict[str, Any]]:
        """How to rebuild this runner from a checkpoint."""
        return (), {"config": self.config}

    def get_checkpointable_components(self) -> list[tuple[str, Any]]:
        """The module and the two (default) connector pipelines."""
        return [
            (COMPONENT_RL_MODULE, self.module),
            (COMPONENT_ENV_TO_MODULE_CONNECTOR, self._env_to_module),
            (COMPONENT_MODULE_TO_ENV_CONNECTOR, self._module_to_env),
        ]

    def stop(self) -> None:
        """Drop the batch core (it holds no external resources)."""
        self._batch = None

    # --------------------------------------------------------------------------- sampling
    def _reset(self) -> None:
        seeds = None
        if self._first_reset and self._seed is not None:
            first = self._seed + (self.worker_index or 0) * self.num_envs
            seeds = [first + i for i in range(self.num_envs)]
        self._obs, self._mask = self._batch.reset(seeds)
        self._first_reset = self._needs_reset = False
        self._episode_ids = [uuid.uuid4().hex for _ in range(self.num_envs)]
        self._returns = np.zeros((self.num_envs, len(self._agents)))
        self._started = time.perf_counter()

    def _sample(
        self, per_episode: int, explore: bool, random_actions: bool, reset: bool
    ) -> list[SingleAgentEpisode]:
        batch, horizon = self._batch, self._horizon
        if reset:
            self._needs_reset = True
        chunks: list[SingleAgentEpisode] = []
        steps = ended = 0
        while steps < per_episode:
            if self._needs_reset:
                self._reset()
            length = min(per_episode - steps, horizon - batch.step_index)
            chunks.extend(self._run_chunk(length, explore, random_actions))
            steps += length
            ended += self.num_envs if self._needs_reset else 0
        self.num_env_steps_sampled_lifetime += steps * self.num_envs
        self._log_counts(steps, ended)
        return sorted(chunks, key=lambda c: not c.is_done)

    def _run_chunk(
        self, length: int, explore: bool, random_actions: bool
    ) -> list[SingleAgentEpisode]:
        n, agents = self.num_envs, len(self._agents)
        start = self._batch.step_index
        obs, mask, actions, logp, rewards = [self._obs], [self._mask], [], [], []
        logits: dict[str, list[np.ndarray]] = {m: [] for m in self._groups}
        truncated = False
        for _ in range(length):
            act = np.zeros((n, agents), dtype=np.int64)
            step_logp = np.zeros((n, agents), dtype=np.float32)
            with self.metrics.log_time(RLMODULE_INFERENCE_TIMER), torch.no_grad():
                for module, indices in self._groups.items():
                    chosen, chosen_logp, inputs = self._act(
                        module, indices, self._obs, self._mask, explore, random_actions
                    )
                    act[:, indices] = chosen
                    step_logp[:, indices] = chosen_logp
                    logits[module].append(inputs)
            self._obs, self._mask, reward, truncated, _ = self._batch.step(act)
            obs.append(self._obs)
            mask.append(self._mask)
            actions.append(act)
            logp.append(step_logp)
            rewards.append(reward)
        reward_array = np.stack(rewards, axis=1).astype(np.float32)  # [n, T]
        self._returns += reward_array.sum(axis=1, dtype=np.float64)[:, None]
        if truncated:
            duration = time.perf_counter() - self._started
            self._done_returns.append((self._returns.copy(), duration))
            self._needs_reset = True
        # [n, agents, T(+1), ...] so that every (episode, agent) slice is contiguous.
        obs_array = np.ascontiguousarray(np.stack(obs, axis=0).transpose(1, 2, 0, 3))
        mask_array = np.ascontiguousarray(np.stack(mask, axis=0).transpose(1, 2, 0, 3))
        action_array = np.ascontiguousarray(np.stack(actions, axis=0).transpose(1, 2, 0))
        logp_array = np.ascontiguousarray(np.stack(logp, axis=0).transpose(1, 2, 0))
        logit_arrays = {
            m: np.ascontiguousarray(np.stack(v, axis=0).transpose(1, 2, 0, 3))
            for m, v in logits.items()
        }
        seq_no = np.full(length, self._weights_seq_no, dtype=np.int64)
        chunks = []
        for e in range(n):
            chunk_id = f"{self._episode_ids[e]}@{start}"
            for module, indices in self._groups.items():
                for j, a in enumerate(indices):
                    agent = self._agents[a]
                    width = self._action_spaces[agent].n
                    chunks.append(
                        SingleAgentEpisode(
                            observations=InfiniteLookbackBuffer(
                                {
                                    "observations": obs_array[e, a],
                                    "action_mask": mask_array[e, a, :, :width],
                                },
                                space=self._observation_spaces[agent],
                            ),
                            observation_space=self._observation_spaces[agent],
                            actions=InfiniteLookbackBuffer(action_array[e, a]),
                            action_space=self._action_spaces[agent],
                            rewards=InfiniteLookbackBuffer(reward_array[e]),
                            extra_model_outputs={
                                Columns.ACTION_DIST_INPUTS: InfiniteLookbackBuffer(
                                    logit_arrays[module][e, j]
                                ),
                                Columns.ACTION_LOGP: InfiniteLookbackBuffer(logp_array[e, a]),
                                WEIGHTS_SEQ_NO: InfiniteLookbackBuffer(seq_no),
                            },
                            truncated=truncated,
                            t_started=start,
                            len_lookback_buffer=0,
                            agent_id=agent,
                            module_id=module,
                            multi_agent_episode_id=chunk_id,
                        )
                    )
        return chunks

    def _act(
        self,
        module: str,
        indices: list[int],
        obs: np.ndarray,
        mask: np.ndarray,
        explore: bool,
        random_actions: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One forward pass for a module's ``k`` agents in every episode.

        Returns:
            Actions ``[n, k]``, their log-probabilities and the logits ``[n, k, width]``.

        """
        n, k = obs.shape[0], len(indices)
        width = self._action_spaces[self._agents[indices[0]]].n
        rows = {
            "observations": torch.from_numpy(obs[:, indices].reshape(n * k, -1)),
            "action_mask": torch.from_numpy(mask[:, indices, :width].reshape(n * k, width)),
        }
        rl_module = self.module[module]
        forward = rl_module.forward_exploration if explore else rl_module.forward_inference
        inputs = forward({Columns.OBS: rows})[Columns.ACTION_DIST_INPUTS]
        if random_actions:  # uniform among the allowed actions
            inputs = torch.where(rows["action_mask"] > 0, 0.0, inputs)
        dist = rl_module.get_exploration_action_dist_cls().from_logits(inputs)
        if explore or random_actions:
            chosen = torch.multinomial(torch.softmax(inputs, dim=-1), 1, generator=self._generator)
            chosen = chosen[:, 0]
        else:
            chosen = torch.argmax(inputs, dim=-1)
        return (
            chosen.numpy().reshape(n, k),
            dist.logp(chosen).numpy().reshape(n, k),
            inputs.numpy().reshape(n, k, width),
        )

    def _log_counts(self, steps: int, ended: int) -> None:
        env_steps = steps * self.num_envs
        log = self.metrics.log_value
        log(NUM_ENV_STEPS_SAMPLED, env_steps, reduce="sum")
        log(NUM_ENV_STEPS_SAMPLED_LIFETIME, env_steps, reduce="lifetime_sum", with_throughput=True)
        for agent in self._agents:
            log((NUM_AGENT_STEPS_SAMPLED, agent), env_steps, reduce="sum")
            log((NUM_AGENT_STEPS_SAMPLED_LIFETIME, agent), env_steps, reduce="lifetime_sum")
        for module, indices in self._groups.items():
            log((NUM_MODULE_STEPS_SAMPLED, module), env_steps * len(indices), reduce="sum")
            log(
                (NUM_MODULE_STEPS_SAMPLED_LIFETIME, module),
                env_steps * len(indices),
                reduce="lifetime_sum",
            )
        if ended:
            log(NUM_EPISODES, ended, reduce="sum")
            log(NUM_EPISODES_LIFETIME, ended, reduce="lifetime_sum")
