"""A teacher better than the policy: rollout search on the batch core, then distilled back.

PPO fine-tuning of the cloned greedy team stays at the greedy team's level (the recipe notes
in ``configs/train``): its gradient from a team reward shared five ways over a day is too
noisy to find the rarer, better choices. The orbit core, though, is deterministic once an
episode is drawn, so a policy's actions can be improved by search instead: from the present
state, try each action of one agent while the others do what the policy does, fly the policy
on for ``horizon`` steps in a branch of the batch
(:meth:`~phobos.envs.orbit_scheduling.batch.OrbitSchedulingBatch.branch`), and keep the
action with the most science delivered (reward earned in the horizon plus value already
downlinked that lands before the episode ends). Agents are
improved one at a time, each seeing the choices made before it: Bertsekas's multiagent
rollout, whose team is never worse than the base policy's when the horizon reaches the end
(Bertsekas 2021, "Multiagent reinforcement learning: rollout and policy iteration").

The network then learns the teacher's actions (cross-entropy, as the greedy warm start does)
on the states the teacher flew, rows of every round kept (DAgger's aggregation), and the next
round searches from the better network: approximate policy iteration. Deployed agents stay
decentralised: the search runs only in training, the policy sees only its own observation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# (observations [n, agents, D], masks [n, agents, A]) -> actions [n, agents]
TeamPolicy = Callable[[np.ndarray, np.ndarray], np.ndarray]

TIE_MARGIN = 1e-6
"""The least ``min_gain``: an alternative no better than the policy's own action never wins."""


@dataclass(frozen=True)
class TeacherEpisodes:
    """What the teacher saw and chose, every step of every episode.

    Attributes:
        observations: ``[steps, n, agents, D]`` float32.
        masks: ``[steps, n, agents, A]`` int8.
        actions: The teacher's actions ``[steps, n, agents]``.
        rewards: Team rewards ``[steps, n]``.
        regrets: ``[steps, n, agents, A]``: the team return each allowed action delivered
            less than the best one in the search (0 for forbidden and unsearched actions).
        changed: Share of agent-steps where the search overruled the policy.

    """

    observations: np.ndarray
    masks: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    regrets: np.ndarray
    changed: float

    @staticmethod
    def concatenate(parts: list[TeacherEpisodes]) -> TeacherEpisodes:
        """Episodes flown apart (one part per worker), side by side on the episode axis.

        Parts whose episodes ended sooner (sampling) are padded to the longest with steps that
        allow nothing and earn nothing, as the steps after an episode's end are within a part.
        """
        sizes = [p.actions.size for p in parts]
        steps = max(len(p.actions) for p in parts)

        def padded(array: np.ndarray) -> np.ndarray:
            extra = [(0, steps - len(array))] + [(0, 0)] * (array.ndim - 1)
            return np.pad(array, extra)

        return TeacherEpisodes(
            *(
                np.concatenate([padded(getattr(p, name)) for p in parts], axis=1)
                for name in ("observations", "masks", "actions", "rewards", "regrets")
            ),
            changed=float(np.average([p.changed for p in parts], weights=sizes)),
        )

    def returns(self, gamma: float) -> np.ndarray:
        """Discounted team return from each step on, ``[steps, n]``."""
        out = np.zeros_like(self.rewards)
        running = np.zeros(self.rewards.shape[1])
        for step in range(len(self.rewards) - 1, -1, -1):
            running = self.rewards[step] + gamma * running
            out[step] = running
        return out


class RolloutTeacher:
    """The rollout search of the module notes over one batch core.

    Args:
        core: An orbit batch core (``branch``, ``sync``, ``step``, ``delivered_by_horizon``).
        policy: The base team policy the search improves.
        horizon: Steps each rollout flies (its first step included).
        min_gain: Science an alternative must deliver beyond the policy's own action to
            replace it. Half the changes a search makes gain almost nothing (under 0.05 of a
            typical day's 100); leaving those to the policy keeps the labels the network learns
            from to the choices that matter.

    """

    def __init__(
        self, core: Any, policy: TeamPolicy, horizon: int, min_gain: float = TIE_MARGIN
    ) -> None:
        if horizon < 1:
            raise ValueError(f"rollout_horizon must be at least 1, got {horizon}")
        self.core, self.policy, self.horizon = core, policy, horizon
        self.min_gain = max(min_gain, TIE_MARGIN)
        self._branches: dict[int, Any] = {}

    def _branch(self, width: int) -> Any:
        branch = self._branches.get(width)
        if branch is None:
            branch = self._branches[width] = self.core.branch(width)
        else:
            branch.sync(self.core)
        return branch

    def improve(self, observations: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, ...]:
        """The teacher's joint actions ``[n, agents]`` from the core's present state.

        Returns:
            The actions, the policy's own actions, and the regrets ``[n, agents, A]``.

        """
        base = np.array(self.policy(observations, masks), dtype=np.int64)
        actions = base.copy()
        n, agents = actions.shape
        rows = np.arange(n)
        regrets = np.zeros(masks.shape, dtype=np.float32)
        for agent in range(agents):
            allowed = masks[:, agent].astype(bool)
            width = int(np.flatnonzero(allowed.any(axis=0)).max()) + 1
            if (allowed.sum(axis=1) <= 1).all():
                continue  # nothing to choose this step (a station not seeing Mars)
            first = np.repeat(actions, width, axis=0)
            first[:, agent] = np.tile(np.arange(width), n)
            value = self._deliveries(self._branch(width), first).reshape(n, width)
            value[~allowed[:, :width]] = -np.inf
            best = value.max(axis=1, keepdims=True)
            regrets[:, agent, :width] = np.where(allowed[:, :width], best - value, 0.0)
            value[rows, actions[:, agent]] += self.min_gain
            actions[:, agent] = value.argmax(axis=1)
        return actions, base, regrets

    def _deliveries(self, branch: Any, first: np.ndarray) -> np.ndarray:
        observations, masks, reward, done, _ = branch.step(first)
        total = np.array(reward, dtype=np.float64)
        for _ in range(self.horizon - 1):
            if done:
                break
            observations, masks, reward, done, _ = branch.step(self.policy(observations, masks))
            total += reward
        return total if done else total + branch.delivered_by_horizon()

    def fly(self, seeds: list[int]) -> TeacherEpisodes:
        """Whole episodes of the teacher from ``seeds`` (one per episode of the core)."""
        observations, masks = self.core.reset(seeds)
        self._branches.clear()  # branches hold the previous episodes' draws
        seen, allowed, chosen, rewards, regrets, changed = [], [], [], [], [], 0
        done = False
        while not done:
            actions, base, regret = self.improve(observations, masks)
            changed += int((actions != base).sum())
            regrets.append(regret)
            seen.append(observations)
            allowed.append(masks)
            chosen.append(actions)
            observations, masks, reward, done, _ = self.core.step(actions)
            rewards.append(np.asarray(reward, dtype=np.float64))
        stacked = np.stack(chosen)
        return TeacherEpisodes(
            np.stack(seen),
            np.stack(allowed),
            stacked,
            np.stack(rewards),
            np.stack(regrets),
            changed / stacked.size,
        )


def actor_policy(actor: Any, role_features: np.ndarray) -> TeamPolicy:
    """A :class:`~phobos.agents.shared_policy.SharedActor`'s deterministic team actions."""

    def act(observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        n, agents, _ = observations.shape
        roles = np.broadcast_to(role_features, (n, agents, role_features.shape[-1]))
        inputs = np.concatenate([observations, roles], axis=-1, dtype=np.float32)
        logits = actor.logits(inputs.reshape(n * agents, -1)).reshape(n, agents, -1)
        return np.where(masks > 0, logits, -np.inf).argmax(axis=-1)

    return act


def fly_teacher(
    env_id: str,
    env_config: dict[str, Any],
    spec: Any,
    tensors: dict[str, np.ndarray],
    seeds: list[int],
    horizon: int,
    min_gain: float,
    samples: int = 0,
    seed: int = 0,
    true_site: bool = False,
) -> TeacherEpisodes:
    """The teacher over a shared policy's actor, on episodes ``seeds``: one worker's share.

    Args:
        env_id: The task.
        env_config: Its config overrides.
        spec: The policy's :class:`~phobos.agents.shared_policy.SharedPolicySpec`.
        tensors: Its actor's weights as numpy arrays (``actor.K.weight`` ...).
        seeds: The episodes to fly, stepped together.
        horizon: Rollout steps.
        min_gain: As :class:`RolloutTeacher`.
        samples: Sites imagined per decision where the world is hidden
            (:class:`~phobos.training.belief_teacher.BeliefRolloutTeacher`); 0: exact.
        seed: Seeds the imagined sites.
        true_site: Where the world is hidden, search the true site instead
            (:class:`~phobos.training.belief_teacher.SiteRolloutTeacher`).

    """
    from phobos.agents.shared_policy import SharedActor
    from phobos.envs import make_batch

    core = make_batch(env_id, len(seeds), **env_config)
    actor = SharedActor(spec, tensors, "the policy in training")
    policy = actor_policy(actor, spec.role_features(core.agents))
    if true_site:
        from phobos.training.belief_teacher import SiteRolloutTeacher

        return SiteRolloutTeacher(core, policy, horizon, min_gain).fly(list(seeds))
    if samples:
        from phobos.training.belief_teacher import BeliefRolloutTeacher

        teacher = BeliefRolloutTeacher(core, policy, samples, horizon, min_gain, seed)
        return teacher.fly(list(seeds))
    return RolloutTeacher(core, policy, horizon, min_gain=min_gain).fly(list(seeds))
