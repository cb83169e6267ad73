"""On-policy cloning (DAgger, Ross et al. 2011) of a scripted team on a batch core.

Cloning from the scripted team's own episodes teaches the policy only the states that team
visits; once the clone errs it reaches states it never saw labelled, and its errors compound
(the informed lander's clone matched 92.8% of its actions and kept a third of its margin over
greedy). Each round here flies the policy as it is now on fresh episodes of the batch core,
has the team's array twin (``TaskSpec.array_teams``) label every state the policy reached,
and clones the policy again on all rounds' rows. The policy's own actions drive the episodes,
so the rows are the states it will meet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phobos.envs import make_batch
from phobos.envs.registry import task_spec
from phobos.training.batch_vec_env import BatchVecEnv
from phobos.training.config import TrainConfig

DAGGER_SEED_BASE = 40_000_000
"""Round ``r``'s episodes use seeds ``DAGGER_SEED_BASE + 100_000 * seed + r * episodes + i``."""


def expert_of(config: TrainConfig, core: Any) -> Any:
    """The array twin of ``config.imitation_team`` for ``core``; ValueError if it has none."""
    return task_spec(config.env).array_team(config.imitation_team)(core.config)


def imitate_on_policy(
    model: Any, env: BatchVecEnv, config: TrainConfig, seed: int, log: Any = print
) -> list[dict[str, float]]:
    """``config.dagger_rounds`` rounds of on-policy cloning into ``model``.

    Returns:
        Per round: the policy's mean team return on the round's episodes (as flown, before
        the round's cloning), the share of its actions the expert would have changed, and
        its accuracy on all rows after the round's cloning.

    """
    from phobos.training.imitation import Demonstrations, clone
    from phobos.training.sb3_batch import _heads, _team_policy

    core = make_batch(config.env, config.dagger_episodes, **config.env_config)
    expert = expert_of(config, core)
    parts: list[Demonstrations] = []
    rounds = []
    for round_index in range(config.dagger_rounds):
        first = DAGGER_SEED_BASE + 100_000 * seed + round_index * config.dagger_episodes
        seeds = list(range(first, first + config.dagger_episodes))
        flown = _fly_labelled(core, _team_policy(model, env, config), expert, seeds)
        observations, masks, labels, acted, rewards, alive = flown
        returns = _returns_to_go(rewards, alive, config.gamma)  # [steps, n]
        agents = observations.shape[2]
        kept = np.repeat(alive.reshape(-1), agents)
        flat_masks = masks.reshape(-1, masks.shape[-1])
        kept &= flat_masks.any(axis=1)
        slots = env.slots(observations.reshape(-1, agents, observations.shape[-1]))
        parts.append(
            Demonstrations(
                slots[kept],
                flat_masks[kept].astype(np.int8),
                labels.reshape(-1)[kept],
                np.repeat(returns.reshape(-1), agents).astype(np.float32)[kept],
            )
        )
        changed = float((labels.reshape(-1)[kept] != acted.reshape(-1)[kept]).mean())
        fitted = clone(
            _heads(model.policy),
            model.policy.parameters(),
            Demonstrations.concatenate(parts),
            config.dagger_epochs,
            seed + round_index,
        )
        total = (rewards * alive).sum(axis=0)
        summary = {
            "round": round_index + 1,
            "policy_return_mean": float(total.mean()),
            "changed": changed,
            "accuracy": fitted["accuracy"],
        }
        log(
            f"on-policy cloning round {round_index + 1}: the policy returned "
            f"{summary['policy_return_mean']:.2f}, the {config.imitation_team} team would have "
            f"changed {changed:.1%} of its actions; it now matches {fitted['accuracy']:.1%} of "
            f"{sum(len(p.actions) for p in parts):,} rows"
        )
        rounds.append(summary)
    return rounds


def _fly_labelled(core: Any, act: Any, expert: Any, seeds: list[int]) -> tuple[np.ndarray, ...]:
    """Fly ``act`` from ``seeds`` with ``expert``'s labels at every state it reached.

    Returns:
        Observations ``[steps, n, agents, D]``, masks, the expert's and the policy's actions
        ``[steps, n, agents]``, team rewards ``[steps, n]`` and whether each episode was
        still running at each step ``[steps, n]``.

    """
    observations, masks = core.reset(seeds)
    if hasattr(core, "run_on"):
        core.run_on = True  # ended episodes keep stepping; their rows are dropped
    ended = np.zeros(len(seeds), dtype=bool)
    seen, allowed, labels, acted, rewards, alive = [], [], [], [], [], []
    while not ended.all():
        actions = act(observations, masks)
        seen.append(observations)
        allowed.append(masks)
        labels.append(expert(observations, masks))
        acted.append(actions)
        alive.append(~ended)
        observations, masks, reward, done, _ = core.step(actions)
        rewards.append(np.asarray(reward, dtype=np.float64))
        ended = ended | done
    return tuple(np.stack(x) for x in (seen, allowed, labels, acted, rewards, alive))


def _returns_to_go(rewards: np.ndarray, alive: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted team return from each step to the episode's end, ``[steps, n]``."""
    out = np.zeros_like(rewards)
    to_go = np.zeros(rewards.shape[1])
    for step in range(len(rewards) - 1, -1, -1):
        to_go = np.where(alive[step], rewards[step] + gamma * to_go, 0.0)
        out[step] = to_go
    return out
