"""What :class:`~phobos.training.rllib_batch.BatchEnvRunner` hands RLlib, built from arrays.

Per-step batch-core arrays become one ``SingleAgentEpisode`` chunk per (episode, agent),
numpy throughout, with the ``agent_id``, ``module_id`` and a chunk-unique
``multi_agent_episode_id`` that RLlib's multi-agent learner connectors key their batches by;
finished episodes and step counters become the env-runner metrics RLlib's ``MultiAgentEnvRunner``
reports under the same names.

:func:`pickle_chunks_whole` makes Ray ship those chunks as one pickle each.
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import ray
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
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
    WEIGHTS_SEQ_NO,
)

from phobos.agents.rl_module import JOINT_STATE
from phobos.agents.roles import module_id


@dataclass(frozen=True)
class Roster:
    """A task's agents as the runner sees them."""

    agents: tuple[str, ...]
    """Agent ids in the batch core's (and the ParallelEnv's) order."""
    groups: dict[str, tuple[int, ...]]
    """Module id -> indices of its agents, modules in order of their first agent."""
    observation_spaces: dict[str, gymnasium.spaces.Dict]
    """Each agent's observation space."""
    action_spaces: dict[str, gymnasium.spaces.Discrete]
    """Each agent's action space (its mask is the first ``n`` of the core's padded one)."""
    joint_state: bool = False
    """Whether each observation also carries ``joint_state``, every agent's ``observations``
    of that episode and step side by side in agent order (for a central critic)."""

    @classmethod
    def of(cls, env: Any, joint_state: bool = False) -> Roster:
        """The roster of a ParallelEnv; ``joint_state`` adds that key to every agent's space."""
        agents = tuple(env.possible_agents)
        groups: dict[str, list[int]] = defaultdict(list)
        for index, agent in enumerate(agents):
            groups[module_id(agent)].append(index)
        observation_spaces = {a: env.observation_space(a) for a in agents}
        if joint_state:
            own = [observation_spaces[a]["observations"] for a in agents]
            joint = gymnasium.spaces.Box(
                np.concatenate([s.low for s in own]),
                np.concatenate([s.high for s in own]),
                dtype=np.float32,
            )
            observation_spaces = {
                a: gymnasium.spaces.Dict({**space.spaces, JOINT_STATE: joint})
                for a, space in observation_spaces.items()
            }
        return cls(
            agents=agents,
            groups={m: tuple(i) for m, i in groups.items()},
            observation_spaces=observation_spaces,
            action_spaces={a: env.action_space(a) for a in agents},
            joint_state=joint_state,
        )


def chunks(
    roster: Roster,
    buffers: dict[str, list[np.ndarray]],
    span: tuple[int, int],
    group: np.ndarray,
    t_end: np.ndarray,
    episode_ids: list[str],
    terminated: np.ndarray | None,
    seq_no: int,
) -> list[SingleAgentEpisode]:
    """One chunk per (episode in ``group``, agent) over buffer steps ``span = (first, end)``.

    Args:
        roster: The agents.
        buffers: Per step: ``obs`` and ``mask`` ``[n, agents, ...]`` (``end + 1`` of them),
            ``actions``, ``logp`` ``[n, agents]``, ``rewards`` ``[n]`` and, per module, its
            logits ``[n, k, width]`` (``end`` of them).
        span: Buffer indices of the chunk's first observation and its last.
        group: Episodes (batch rows) whose chunk spans exactly ``span``.
        t_end: Each episode's step count at ``end`` (the chunk starts ``end - first`` before).
        episode_ids: Each episode's id.
        terminated: Per episode, whether it terminated at ``end`` (else truncated); ``None``
            when the episodes go on.
        seq_no: Weights sequence number of the module that acted.

    """
    first, end = span
    length = end - first

    def stacked(name: str, extra: int = 0) -> np.ndarray:
        # [T(+1), n, agents, ...] -> [group, agents, T(+1), ...], each slice contiguous.
        data = np.stack(buffers[name][first : end + extra], axis=0)[:, group]
        return np.ascontiguousarray(np.moveaxis(data, 0, 2))

    obs, mask = stacked("obs", 1), stacked("mask", 1)
    actions, logp = stacked("actions"), stacked("logp")
    rewards = np.ascontiguousarray(np.stack(buffers["rewards"][first:end], axis=1)[group])
    logits = {m: stacked(m) for m in roster.groups}
    if roster.joint_state:  # [group, T + 1, agents * D], one array all of an episode's agents read
        joint = np.ascontiguousarray(np.moveaxis(obs, 1, 2)).reshape(len(group), length + 1, -1)
    seq = np.full(length, seq_no, dtype=np.int64)
    out = []
    for g, e in enumerate(group.tolist()):
        t_started = int(t_end[e]) - length
        done = terminated is not None
        for module, indices in roster.groups.items():
            for j, a in enumerate(indices):
                agent = roster.agents[a]
                width = roster.action_spaces[agent].n
                observations = {"observations": obs[g, a], "action_mask": mask[g, a, :, :width]}
                if roster.joint_state:
                    observations[JOINT_STATE] = joint[g]
                out.append(
                    SingleAgentEpisode(
                        # No spaces: nothing downstream checks data against them, and
                        # deriving each buffer's space structure was a third of the cost.
                        observations=InfiniteLookbackBuffer(observations),
                        infos=[{}] * (length + 1),
                        actions=InfiniteLookbackBuffer(actions[g, a]),
                        rewards=InfiniteLookbackBuffer(rewards[g]),
                        extra_model_outputs={
                            Columns.ACTION_DIST_INPUTS: InfiniteLookbackBuffer(
                                logits[module][g, j]
                            ),
                            Columns.ACTION_LOGP: InfiniteLookbackBuffer(logp[g, a]),
                            WEIGHTS_SEQ_NO: InfiniteLookbackBuffer(seq),
                        },
                        terminated=done and bool(terminated[e]),
                        truncated=done and not bool(terminated[e]),
                        t_started=t_started,
                        len_lookback_buffer=0,
                        agent_id=agent,
                        module_id=module,
                        multi_agent_episode_id=f"{episode_ids[e]}@{t_started}",
                    )
                )
    return out


def log_episodes(
    metrics: Any, roster: Roster, done: list[tuple[np.ndarray, int, float]], window: int
) -> None:
    """Log finished episodes ``(return per agent, length, wall seconds)`` as RLlib does."""
    for per_agent, length, duration in done:
        agents = {a: float(r) for a, r in zip(roster.agents, per_agent, strict=True)}
        modules: dict[str, float] = defaultdict(float)
        for agent, value in agents.items():
            modules[module_id(agent)] += value
        total = float(per_agent.sum())
        metrics.log_dict(
            {
                EPISODE_LEN_MEAN: length,
                EPISODE_RETURN_MEAN: total,
                EPISODE_DURATION_SEC_MEAN: duration,
                EPISODE_AGENT_RETURN_MEAN: agents,
                EPISODE_AGENT_STEPS: dict.fromkeys(roster.agents, length),
                EPISODE_MODULE_RETURN_MEAN: dict(modules),
            },
            window=window,
        )
        metrics.log_dict(
            {EPISODE_LEN_MIN: length, EPISODE_RETURN_MIN: total}, reduce="min", window=window
        )
        metrics.log_dict(
            {EPISODE_LEN_MAX: length, EPISODE_RETURN_MAX: total}, reduce="max", window=window
        )


def log_counts(metrics: Any, roster: Roster, env_steps: int, ended: int) -> None:
    """Log ``env_steps`` env steps (every agent acting in each) and ``ended`` episodes."""
    log = metrics.log_value
    log(NUM_ENV_STEPS_SAMPLED, env_steps, reduce="sum")
    log(NUM_ENV_STEPS_SAMPLED_LIFETIME, env_steps, reduce="lifetime_sum", with_throughput=True)
    for agent in roster.agents:
        log((NUM_AGENT_STEPS_SAMPLED, agent), env_steps, reduce="sum")
        log((NUM_AGENT_STEPS_SAMPLED_LIFETIME, agent), env_steps, reduce="lifetime_sum")
    for module, indices in roster.groups.items():
        steps = env_steps * len(indices)
        log((NUM_MODULE_STEPS_SAMPLED, module), steps, reduce="sum")
        log((NUM_MODULE_STEPS_SAMPLED_LIFETIME, module), steps, reduce="lifetime_sum")
    if ended:
        log(NUM_EPISODES, ended, reduce="sum")
        log(NUM_EPISODES_LIFETIME, ended, reduce="lifetime_sum")


def pickle_chunks_whole() -> None:
    """Make this process's Ray serialise each ``SingleAgentEpisode`` with ``pickle``, in band.

    Ray's own serialiser hands every numpy array of an object to the object store as a
    buffer of its own; an orbit update's 1,280 chunks hold about ten thousand small arrays,
    and ``ray.put`` of them took 0.46 s where ``pickle.dumps`` took 0.09 (7.8 MB either way).
    Registered, the put took 0.10 s. It matters twice an iteration: env runner to driver, and
    driver to remote learners. Only the sending process registers (the receiver finds
    :func:`pickle.loads` by name). Nothing new is trusted: Ray unpickles between its own
    workers already.
    """
    ray.util.register_serializer(
        SingleAgentEpisode, serializer=_whole_pickle, deserializer=pickle.loads
    )


def _whole_pickle(episode: SingleAgentEpisode) -> bytes:
    return pickle.dumps(episode, protocol=pickle.HIGHEST_PROTOCOL)
