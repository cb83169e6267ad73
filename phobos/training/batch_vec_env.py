"""A Stable-Baselines3 ``VecEnv`` over a task's batch core: every (episode, agent) is a slot.

``num_envs`` episodes step at once in the core's arrays, and each of their agents is one slot
of the ``VecEnv`` (slot ``episode * agents + agent``), so MaskablePPO trains one network for
the whole team from ``num_envs * agents`` samples a step with no per-agent dicts on the hot
path. The network's input is the agent's observation vector followed by a one-hot of its role
(:class:`~phobos.agents.shared_policy.SharedPolicySpec`); masks come straight from the core
(padded to the widest agent, so a station's missing actions are masked like forbidden ones)
through ``action_masks()``, as MaskablePPO expects. Rewards are the team's, every slot.

Episodes of a batch that all end together (a shared horizon) are reset together; a core whose
episodes end apart (``done`` per episode) restarts only the finished ones with
``reset(indices=...)``. Each finished slot carries ``terminal_observation`` and
``TimeLimit.truncated`` like SB3's own vector envs, and the first agent's slot of each
finished episode carries ``episode`` (team return and length), as ``Monitor`` writes it.

The first reset seeds episode ``i`` with ``seeds[i]`` (default :func:`training_seeds`, apart
from the seeds evaluation holds out); later episodes continue each episode's own generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from phobos.agents.roles import module_id
from phobos.agents.shared_policy import SharedPolicySpec

SEED_BASE = 20_000_000
"""Training episodes start from seeds ``SEED_BASE + 100_000 * run_seed + i``."""


def training_seeds(run_seed: int, count: int) -> list[int]:
    """The first-episode seeds of a training run's batch (never evaluation's held-out ranges)."""
    if count > 100_000:
        raise ValueError(f"num_envs {count} exceeds the 100,000 seeds a run reserves")
    return [SEED_BASE + 100_000 * run_seed + i for i in range(count)]


def roles_of(agents: Sequence[str]) -> tuple[str, ...]:
    """Role names in first-seen agent order (the one-hot order)."""
    return tuple(dict.fromkeys(module_id(agent) for agent in agents))


class BatchVecEnv(VecEnv):
    """Slots of (episode, agent) over a batch core, for MaskablePPO.

    Args:
        core: A batch core (``reset(seeds)``, ``step(actions)``, ``agents``, ``num_envs``,
            ``layout``-independent: only the arrays are read).
        env_id: The registered id the core belongs to (recorded in the exported spec).
        seeds: First-episode seeds, one per episode of the core.
        joint_state: Append the team's joint state (every agent's observation of the
            episode) to each slot's observation, for a centralised critic; the actor reads
            only the first :attr:`actor_inputs` values.
        shaping_gamma: Add potential-based shaping ``gamma * phi' - phi`` to the rewards the
            learner sees, with the core's ``potential()`` as ``phi`` (0 after an episode's
            end). It leaves the optimal policy unchanged (Ng, Harada and Russell 1999) and
            credits an observation when it is stored rather than hours later when it
            arrives; the ``episode`` returns in infos stay the task's own. ``None``: off.

    """

    def __init__(
        self,
        core: Any,
        env_id: str,
        seeds: Sequence[int],
        joint_state: bool = False,
        shaping_gamma: float | None = None,
    ) -> None:
        self.core = core
        self.joint_state = joint_state
        self.shaping_gamma = shaping_gamma
        if shaping_gamma is not None and not hasattr(core, "potential"):
            raise ValueError(f"reward shaping: the {env_id} batch core defines no potential")
        self.episodes = core.num_envs
        self.agents = tuple(core.agents)
        if len(seeds) != self.episodes:
            raise ValueError(f"got {len(seeds)} seeds for {self.episodes} episodes")
        observations, masks = core.reset(list(seeds))
        size, actions = observations.shape[-1], masks.shape[-1]
        self.spec_base = dict(
            env=env_id, roles=roles_of(self.agents), observation_size=size, action_count=actions
        )
        spec = SharedPolicySpec(hidden=(1,), **self.spec_base)
        self.role_features = spec.role_features(self.agents)  # [agents, roles]
        self.actor_inputs = spec.input_size
        width = spec.input_size + (len(self.agents) * size if joint_state else 0)
        observation_space = gymnasium.spaces.Box(0.0, 1.0, (width,), dtype=np.float32)
        self.render_mode = None
        super().__init__(
            self.episodes * len(self.agents), observation_space, gymnasium.spaces.Discrete(actions)
        )
        self._first = (observations, masks)
        self._potential = core.potential() if shaping_gamma is not None else None
        self._masks = masks.reshape(self.num_envs, actions)
        self._returns = np.zeros(self.episodes)
        self._lengths = np.zeros(self.episodes, dtype=np.int64)
        self._actions: np.ndarray | None = None

    # ------------------------------------------------------------------------- slots
    def slots(self, observations: np.ndarray) -> np.ndarray:
        """Slot inputs ``[n * agents, width]`` of a core's ``[n, agents, D]`` observations."""
        shape = observations.shape[:2] + self.role_features.shape[-1:]
        roles = np.broadcast_to(self.role_features, shape)
        parts = [observations, roles]
        if self.joint_state:
            joint = observations.reshape(observations.shape[0], 1, -1)
            parts.append(np.broadcast_to(joint, observations.shape[:2] + joint.shape[-1:]))
        joined = np.concatenate(parts, axis=-1, dtype=np.float32)
        return joined.reshape(shape[0] * shape[1], -1)

    def action_masks(self) -> np.ndarray:
        """``[slots, actions]`` bool: what each slot may do now."""
        return self._masks.astype(bool)

    # ----------------------------------------------------------------------- VecEnv API
    def reset(self) -> np.ndarray:
        """Slots' observations; the first call returns the seeded batch built at construction."""
        if self._first is not None:
            observations, masks = self._first
            self._first = None
        else:
            observations, masks = self.core.reset()
        if self.shaping_gamma is not None:
            self._potential = self.core.potential()
        self._masks = masks.reshape(self.num_envs, -1)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self.slots(observations)

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the slots' actions."""
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.episodes, -1)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step every episode; reset the finished ones (their last observations in infos)."""
        observations, masks, reward, done, info = self.core.step(self._actions)
        done = np.broadcast_to(np.asarray(done, dtype=bool), (self.episodes,))
        self._returns += reward
        self._lengths += 1
        agents = len(self.agents)
        learned = reward
        if self.shaping_gamma is not None:
            after = np.where(done, 0.0, self.core.potential())
            learned = reward + self.shaping_gamma * after - self._potential
        rewards = np.repeat(learned.astype(np.float32), agents)
        dones = np.repeat(done, agents)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done.any():
            final = self.slots(observations)
            truncated = np.broadcast_to(
                np.asarray(info.get("truncated", done), dtype=bool), (self.episodes,)
            )
            for episode in np.flatnonzero(done):
                for slot in range(episode * agents, (episode + 1) * agents):
                    infos[slot]["terminal_observation"] = final[slot]
                    infos[slot]["TimeLimit.truncated"] = bool(truncated[episode])
                infos[episode * agents]["episode"] = {
                    "r": float(self._returns[episode]),
                    "l": int(self._lengths[episode]),
                }
            if done.all():
                observations, masks = self.core.reset()
            else:
                observations, masks = self.core.reset(indices=np.flatnonzero(done))
            self._returns[done] = 0.0
            self._lengths[done] = 0
        if self.shaping_gamma is not None:
            self._potential = self.core.potential()  # restarted episodes start afresh
        self._masks = masks.reshape(self.num_envs, -1)
        return self.slots(observations), rewards, dones, infos

    def close(self) -> None:
        """Nothing to release: the core holds only arrays."""

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The attribute of this VecEnv for every slot asked for (slots share one object)."""
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Slots share one object: setting per slot is not supported."""
        raise AttributeError(f"BatchVecEnv slots share one core; cannot set {attr_name!r}")

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        """``action_masks`` per slot (what MaskablePPO asks for); other methods per slot."""
        if method_name == "action_masks":
            masks = self.action_masks()
            return list(masks[list(self._get_indices(indices))]) if indices is not None else masks
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """No slot is wrapped."""
        return [False for _ in self._get_indices(indices)]

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seeding happens at construction (``seeds``); SB3's per-slot seeds do not apply."""
        return [None] * self.num_envs
