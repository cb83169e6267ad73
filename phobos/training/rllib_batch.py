"""RLlib sampling from a task's vectorised batch core: one env runner, hundreds of episodes.

:class:`BatchEnvRunner` is an RLlib ``EnvRunner`` (``config.env_runners(env_runner_cls=...)``)
that steps ``num_envs`` episodes of the task's batch core (for the orbit-scheduling task,
:class:`~phobos.envs.orbit_scheduling.batch.OrbitSchedulingBatch`) in lock-step with arrays,
and runs each role module once per step on the stacked observations of all its agents in
all episodes. ``--num-env-runners N`` gives N such runners (Ray actors), each with its own
batch; with ``N = 0`` the driver samples. Episodes may end apart (a per-episode ``done``, as
the sampling task's core reports): each finished one is cut there, terminated or truncated as
the core's ``info["terminated"]`` says, and restarted alone while the others go on.

What it hands to PPO's learner: one ``SingleAgentEpisode`` chunk per (episode, agent), with
``agent_id``, ``module_id`` and a ``multi_agent_episode_id`` unique to the chunk, numpy data
throughout, and no spaces (nothing downstream checks data against them). RLlib's learner
connectors (``AddOneTsToEpisodesAndTruncate``, the observation and column connectors,
``AgentToModuleMapping``, GAE) only ever look at the single-agent episodes inside a
``MultiAgentEpisode``, so this skips building per-step agent dicts; PPO's learner reads them
with :class:`~phobos.training.rllib_train_batch.ChunksToTrainBatch`, which builds the same
train batch from their arrays (``tests/training/test_rllib_train_batch.py`` runs both).

Counting: ``num_env_steps_sampled`` counts **env steps**, one per episode step (all agents
of one episode acting once), exactly as the ``env`` sampler does, so ``train_batch_size``
still means env steps (each runner samples ``train_batch_size / N`` per iteration, rounded
up to whole steps of its ``num_envs`` episodes). ``num_agent_steps_sampled`` counts agent
steps. One difference: the learner's own ``num_env_steps_trained`` (``sum(len(episode))``
in ``Learner``) counts agent steps here, because each episode it sees is one agent's.

Seeds: episode ``i`` of runner ``w`` (``w = 0`` for the driver) is first reset with
``seed + w * num_envs + i``, afterwards each continues its own generator, as a ParallelEnv
reset without a seed does. Exploration samples from the runner's own torch generator.

Central critic (``critic: central``): each observation the chunks carry also has a
``joint_state`` key, every agent's observation vector of that episode and step in agent
order, which the learner's module feeds its value function; the samplers' modules act on
``observations`` and ``action_mask`` alone, as deployed agents do.

The unused env-to-module and module-to-env connector pipelines are RLlib's defaults, kept
because the algorithm merges, broadcasts and checkpoints their (empty) states.
"""

from __future__ import annotations

import math
import time
import uuid
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
from ray.rllib.utils.checkpoints import Checkpointable
from ray.rllib.utils.metrics import (
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    RLMODULE_INFERENCE_TIMER,
    SAMPLE_TIMER,
    WEIGHTS_SEQ_NO,
)

from phobos.envs import make, make_batch
from phobos.training.config import TrainConfig
from phobos.training.rllib_episodes import (
    Roster,
    chunks,
    log_counts,
    log_episodes,
    pickle_chunks_whole,
)

SAMPLE_CPU_S = "sample_cpu_s"
"""Env-runner metric: CPU seconds spent in ``sample()`` (summed over calls and runners)."""


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
            (with ``"joint_state": True`` for a central critic: every agent's observation
            then also carries the team's joint state) and ``num_envs_per_env_runner`` is the
            number of episodes in the batch.
        **kwargs: RLlib's (``worker_index``, ``num_workers``, ...).

    """

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config=config, **kwargs)
        if self.worker_index:  # a remote runner is one CPU's worth: no intra-op thread pool
            torch.set_num_threads(1)
        pickle_chunks_whole()  # its samples go to the driver, and on to remote learners
        env_config = dict(self.config.env_config)
        self._env_id = env_config["env"]
        self._overrides = dict(env_config.get("overrides") or {})
        self.num_envs = int(self.config.num_envs_per_env_runner)
        env = make(self._env_id, **self._overrides)
        self._roster = roster = Roster.of(env, bool(env_config.get("joint_state")))
        env.close()
        self._agents = list(roster.agents)
        self._groups = {m: list(i) for m, i in roster.groups.items()}
        self._observation_spaces, self._action_spaces = (
            roster.observation_spaces,
            roster.action_spaces,
        )
        self._generator = torch.Generator().manual_seed(self._seed or 0)
        self._batch: Any = None
        self._weights_seq_no = 0
        # Per finished episode: its return per agent, its length and the wall seconds it took.
        self._done_episodes: list[tuple[np.ndarray, int, float]] = []
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
        cpu = time.thread_time()
        with self.metrics.log_time(SAMPLE_TIMER):
            if num_episodes is not None:
                sampled = self._sample(None, num_episodes, explore, random_actions, reset=True)
            else:
                if num_timesteps is None:
                    steps = self.config.get_rollout_fragment_length(self.worker_index or 0)
                else:
                    steps = max(1, math.ceil(num_timesteps / self.num_envs))
                sampled = self._sample(steps, None, explore, random_actions, reset=force_reset)
        # CPU seconds of this thread in sample(): what it costs on an idle machine.
        self.metrics.log_value(SAMPLE_CPU_S, time.thread_time() - cpu, reduce="sum")
        return sampled

    def get_metrics(self) -> dict[str, Any]:
        """Episode statistics of the episodes finished since the last call, and counters."""
        window = max(
            1,
            math.ceil(
                self.config.metrics_num_episodes_for_smoothing / (self.config.num_env_runners or 1)
            ),
        )
        log_episodes(self.metrics, self._roster, self._done_episodes, window)
        self._done_episodes.clear()
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
    def _reset(self, envs: np.ndarray | None = None) -> None:
        """Restart every episode (``envs=None``) or those in ``envs``; seeds only the first."""
        n = self.num_envs
        if envs is None or len(envs) == n:
            seeds = None
            if self._first_reset and self._seed is not None:
                first = self._seed + (self.worker_index or 0) * n
                seeds = [first + i for i in range(n)]
            obs, mask = self._batch.reset(seeds)
            envs = np.arange(n)
            self._first_reset = self._needs_reset = False
            self._episode_ids = [""] * n
            self._t = np.zeros(n, dtype=np.int64)
            self._returns = np.zeros((n, len(self._agents)))
            self._began = np.zeros(n)
            self._obs, self._mask = obs.copy(), mask.copy()
        else:  # the others go on: only the restarted rows change
            obs, mask = self._batch.reset(indices=envs)
            self._obs[envs], self._mask[envs] = obs[envs], mask[envs]
        for e in envs.tolist():
            self._episode_ids[e] = uuid.uuid4().hex
        self._t[envs] = 0
        self._returns[envs] = 0.0
        self._began[envs] = time.perf_counter()

    def _sample(
        self,
        steps: int | None,
        episodes: int | None,
        explore: bool,
        random_actions: bool,
        reset: bool,
    ) -> list[SingleAgentEpisode]:
        """Step ``steps`` times, or until ``episodes`` ended; chunks of everything sampled."""
        if reset or self._needs_reset:
            self._reset()
        n, agents = self.num_envs, len(self._agents)
        buffers: dict[str, list[Any]] = {"obs": [self._obs], "mask": [self._mask]}
        for name in ("actions", "logp", "rewards"):
            buffers[name] = []
        for module in self._groups:
            buffers[module] = []
        start = np.zeros(n, dtype=np.int64)  # buffer index of each episode's chunk start
        sampled: list[SingleAgentEpisode] = []
        taken = ended = 0
        while (taken < steps) if episodes is None else (ended < episodes):
            act = np.zeros((n, agents), dtype=np.int64)
            logp = np.zeros((n, agents), dtype=np.float32)
            with self.metrics.log_time(RLMODULE_INFERENCE_TIMER), torch.no_grad():
                for module, indices in self._groups.items():
                    chosen, chosen_logp, inputs = self._act(
                        module, indices, self._obs, self._mask, explore, random_actions
                    )
                    act[:, indices] = chosen
                    logp[:, indices] = chosen_logp
                    buffers[module].append(inputs)
            obs, mask, reward, done, info = self._batch.step(act)
            self._obs, self._mask = obs.copy(), mask.copy()
            buffers["obs"].append(self._obs)
            buffers["mask"].append(self._mask)
            buffers["actions"].append(act)
            buffers["logp"].append(logp)
            buffers["rewards"].append(np.asarray(reward, dtype=np.float32))
            taken += 1
            self._t += 1
            self._returns += np.asarray(reward, dtype=np.float64)[:, None]
            done = np.broadcast_to(np.asarray(done, dtype=bool), (n,))
            if done.any():
                terminated = np.broadcast_to(
                    np.asarray(info.get("terminated", False), dtype=bool), (n,)
                )
                finished = np.flatnonzero(done)
                now = time.perf_counter()
                for e in finished.tolist():
                    self._done_episodes.append(
                        (self._returns[e].copy(), int(self._t[e]), now - self._began[e])
                    )
                sampled += self._cut(buffers, start, finished, taken, terminated)
                ended += len(finished)
                self._reset(None if len(finished) == n else finished)
                buffers["obs"][-1], buffers["mask"][-1] = self._obs, self._mask
                start[finished] = taken
        if episodes is not None:
            self._needs_reset = True  # the next call starts afresh; drop unfinished ones
        else:
            ongoing = np.flatnonzero(start < taken)
            sampled += self._cut(buffers, start, ongoing, taken, None)
        self.num_env_steps_sampled_lifetime += taken * n
        log_counts(self.metrics, self._roster, taken * n, ended)
        return sorted(sampled, key=lambda c: not c.is_done)

    def _cut(
        self,
        buffers: dict[str, list[Any]],
        start: np.ndarray,
        envs: np.ndarray,
        end: int,
        terminated: np.ndarray | None,
    ) -> list[SingleAgentEpisode]:
        """Chunks of episodes ``envs``, each from its ``start`` to buffer index ``end``.

        ``terminated``: per episode, whether the step to ``end`` terminated it (else it was
        truncated); ``None`` when they go on in the next chunk.
        """
        out = []
        for first in np.unique(start[envs]).tolist():
            group = envs[start[envs] == first]
            out += chunks(
                self._roster,
                buffers,
                (first, end),
                group,
                self._t,
                self._episode_ids,
                terminated,
                self._weights_seq_no,
            )
        return out

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
