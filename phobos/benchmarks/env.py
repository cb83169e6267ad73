"""Environment throughput: the orbit-scheduling and sampling tasks (v0) beside MPE.

The peer is PettingZoo MPE ``simple_spread_v3``. Measured in one process, in alternating
rounds so that a busy machine slows all alike:

- env-steps/s and agent-steps/s of each ``ParallelEnv`` driven the same way: actions drawn
  in advance uniformly from each agent's action space (a masked action runs as idle, or as a
  wait), and a reset whenever the episode ends (resets count in the time: the sampling
  task's episodes end early when the container fills, so its resets weigh more);
- the batch core's agent-steps/s at 1, 64 and 1,024 environments, stepping only and with
  its resets included;
- the sampling batch core's agent-steps/s at 1 and 256 environments with random allowed
  actions, stepping only and with the restarts of finished episodes included (episodes end
  apart, and only the finished ones are restarted, as a training loop's auto-reset does);
- the batch core at 256 environments driven by random *allowed* actions (drawn each step from
  a seeded generator among those the mask permits), stepping alone beside stepping with its
  resets counted, in one run: the share of the time that planning new episodes takes;
- the per-episode preparation once the ephemeris is cached (``plan_episodes`` for one
  episode: orbits, eclipses, visibility, contact plan) and a whole ``reset()``.

Targets:
    - Each ``ParallelEnv``: at least 5x MPE ``simple_spread_v3``'s env-steps/s.
    - Batch: at least 1,000,000 agent-steps/s at 1,024 environments on one core.
    - A full episode's ephemeris preparation, once cached: under 50 ms.
    - At 256 environments, with resets counted, within 1.5x of stepping alone.

Benchmarks are not tests: CI checks that :func:`run` runs, not how fast.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from typing import Any

import numpy as np

from phobos.benchmarks.targets import Target, table
from phobos.comms.router import RouterStats
from phobos.envs import make
from phobos.envs.orbit_scheduling import OrbitSchedulingEnv
from phobos.envs.orbit_scheduling.batch import OrbitSchedulingBatch
from phobos.envs.orbit_scheduling.plan import ephemeris_for, plan_episodes
from phobos.envs.orbit_scheduling.task import ID_V0 as ORBIT
from phobos.envs.sampling.batch import PhobosSamplingBatch
from phobos.envs.sampling.task import ID_V0 as SAMPLING

BATCH_SIZES = (1, 64, 1024)
SAMPLING_BATCH_SIZES = (1, 256)
RESET_SHARE_ENVS = 256
RESET_SHARE_TARGET = 1.5


def run(seconds: float = 2.0, rounds: int = 3) -> dict[str, Any]:
    """Measure everything above; ``seconds`` per measurement and round."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        from mpe2 import simple_spread_v3
    except ImportError as error:  # a dev dependency: the peer must be measured, not assumed
        raise RuntimeError("the MPE peer needs the 'mpe2' package (pip install mpe2)") from error

    ours = make(ORBIT)
    # Diagnostic, not a configuration anyone should train with: the same env with a bus that
    # carries no intents, to show what share of the step the messaging takes.
    silent = OrbitSchedulingEnv(ours.config, message_bus=_SilentBus)
    sampling = make(SAMPLING)
    peer = simple_spread_v3.parallel_env(max_cycles=25)
    ours_rates, silent_rates, sampling_rates, peer_rates = [], [], [], []
    sampling_counts = {"steps": 0, "episodes": 0}
    for _ in range(rounds):
        ours_rates.append(_parallel_rate(ours, seconds))
        silent_rates.append(_parallel_rate(silent, seconds))
        sampling_rates.append(_parallel_rate(sampling, seconds, sampling_counts))
        peer_rates.append(_parallel_rate(peer, seconds))
    ours_rate, peer_rate = statistics.median(ours_rates), statistics.median(peer_rates)
    sampling_rate = statistics.median(sampling_rates)

    batch = {}
    for size in BATCH_SIZES:
        batch[size] = _batch_rates(size, seconds)
    sampling_batch = {size: _sampling_batch_rates(size, seconds) for size in SAMPLING_BATCH_SIZES}

    reset_share = _reset_share(RESET_SHARE_ENVS, seconds, rounds)
    reset_share_ahead = _reset_share(RESET_SHARE_ENVS, seconds, rounds, plan_ahead=True)

    config = ours.config
    ephemeris_for(config)  # warm the cache: the target is for cached tables
    plan_ms = _median_ms(lambda: plan_episodes(config, [np.random.default_rng(1)]), 50)
    reset_ms = _median_ms(ours.reset, 50)
    sampling_reset_ms = _median_ms(sampling.reset, 50)
    return {
        "orbit_env_steps_per_s": ours_rate,
        "orbit_agent_steps_per_s": ours_rate * len(ours.possible_agents),
        "orbit_silent_env_steps_per_s": statistics.median(silent_rates),
        "mpe_env_steps_per_s": peer_rate,
        "mpe_agent_steps_per_s": peer_rate * len(peer.possible_agents),
        "ratio_env_steps": ours_rate / peer_rate,
        "batch": batch,
        "sampling_batch": sampling_batch,
        "reset_share": reset_share,
        "reset_share_ahead": reset_share_ahead,
        "episode_plan_ms": plan_ms,
        "reset_ms": reset_ms,
        "horizon_steps": config.horizon_steps,
        "agents": len(ours.possible_agents),
        "sampling_env_steps_per_s": sampling_rate,
        "sampling_agent_steps_per_s": sampling_rate * len(sampling.possible_agents),
        "sampling_ratio_env_steps": sampling_rate / peer_rate,
        "sampling_agents": len(sampling.possible_agents),
        "sampling_episode_steps": sampling_counts["steps"] / max(sampling_counts["episodes"], 1),
        "sampling_reset_ms": sampling_reset_ms,
    }


def report(results: dict[str, Any]) -> str:
    """Markdown tables of :func:`run`'s results."""
    r = results
    share, ahead = r["reset_share"], r["reset_share_ahead"]
    lines = [
        "| environment | env-steps/s | agent-steps/s | agents |",
        "|---|---:|---:|---:|",
        f"| `{ORBIT}` ParallelEnv | {r['orbit_env_steps_per_s']:,.0f} | "
        f"{r['orbit_agent_steps_per_s']:,.0f} | {r['agents']} |",
        f"| `{SAMPLING}` ParallelEnv | {r['sampling_env_steps_per_s']:,.0f} | "
        f"{r['sampling_agent_steps_per_s']:,.0f} | {r['sampling_agents']} |",
        f"| `{ORBIT}`, diagnostic: no intents carried | "
        f"{r['orbit_silent_env_steps_per_s']:,.0f} | "
        f"{r['orbit_silent_env_steps_per_s'] * r['agents']:,.0f} | {r['agents']} |",
        f"| MPE `simple_spread_v3` (peer, same run) | {r['mpe_env_steps_per_s']:,.0f} | "
        f"{r['mpe_agent_steps_per_s']:,.0f} | 3 |",
        "",
        f"Ratio of env-steps/s: **{r['ratio_env_steps']:.2f}x** for `{ORBIT}`, "
        f"**{r['sampling_ratio_env_steps']:.2f}x** for `{SAMPLING}` "
        "(target: at least 5x each).",
        "",
        f"`{SAMPLING}` under this driver: episodes of {r['sampling_episode_steps']:.0f} "
        f"steps on average (the random arm fills the container early), `reset()` "
        f"{r['sampling_reset_ms']:.2f} ms (a new site and the sky over it).",
        "",
        "| batch core, environments | agent-steps/s stepping | agent-steps/s with resets |",
        "|---:|---:|---:|",
    ]
    for size, rates in r["batch"].items():
        lines.append(f"| {size:,} | {rates['stepping']:,.0f} | {rates['with_resets']:,.0f} |")
    lines += [
        "",
        "Target: at least 1,000,000 agent-steps/s at 1,024 environments on one core.",
        "",
        "| sampling batch core, environments | agent-steps/s stepping | agent-steps/s with "
        "resets | steps per episode |",
        "|---:|---:|---:|---:|",
    ]
    for size, rates in r["sampling_batch"].items():
        lines.append(
            f"| {size:,} | {rates['stepping']:,.0f} | {rates['with_resets']:,.0f} | "
            f"{rates['episode_steps']:.0f} |"
        )
    lines += [
        "",
        f"| batch core, {RESET_SHARE_ENVS} environments, random allowed actions | "
        "agent-steps/s stepping alone | agent-steps/s with resets counted | ratio | "
        "`reset()` ms |",
        "|---|---:|---:|---:|---:|",
        f"| episodes prepared at reset | {share['stepping']:,.0f} | "
        f"{share['with_resets']:,.0f} | {share['ratio']:.2f}x | {share['reset_ms']:.0f} |",
        f"| episodes prepared ahead (`plan_ahead=True`, a background process) | "
        f"{ahead['stepping']:,.0f} | {ahead['with_resets']:,.0f} | **{ahead['ratio']:.2f}x** | "
        f"{ahead['reset_ms']:.0f} |",
        "",
        f"Target: a ratio of at most {RESET_SHARE_TARGET}x (planning {RESET_SHARE_ENVS} new "
        f"episodes costs at most half an episode of stepping), for the prepared-ahead row "
        f"(it needs a free core; the row above is one core alone); "
        f"{share['episodes']} episodes per round, median of the rounds.",
        "",
        f"Episode preparation once the ephemeris is cached ({r['horizon_steps']} steps): "
        f"plan {r['episode_plan_ms']:.1f} ms, whole `reset()` {r['reset_ms']:.1f} ms "
        "(target: under 50 ms).",
        "",
        table(targets(r)),
    ]
    return "\n".join(lines)


def targets(r: dict[str, Any]) -> list[Target]:
    """:func:`run`'s results against the suite's targets (docs/benchmarks.md)."""
    batch = r["batch"].get(1024)
    ahead = r["reset_share_ahead"]["ratio"]
    return [
        Target(
            f"`{ORBIT}` ParallelEnv / MPE, env-steps/s",
            ">= 5x",
            f"{r['ratio_env_steps']:.2f}x",
            r["ratio_env_steps"] >= 5,
        ),
        Target(
            f"`{SAMPLING}` ParallelEnv / MPE, env-steps/s",
            ">= 5x",
            f"{r['sampling_ratio_env_steps']:.2f}x",
            r["sampling_ratio_env_steps"] >= 5,
        ),
        Target(
            "batch core at 1,024 environments, agent-steps/s stepping",
            ">= 1,000,000",
            "-" if batch is None else f"{batch['stepping']:,.0f}",
            None if batch is None else batch["stepping"] >= 1_000_000,
        ),
        Target(
            f"batch core at {RESET_SHARE_ENVS} environments, with resets / stepping alone "
            "(prepared ahead)",
            f"<= {RESET_SHARE_TARGET}x",
            f"{ahead:.2f}x",
            ahead <= RESET_SHARE_TARGET,
        ),
        Target(
            "episode preparation, whole `reset()`, ephemeris cached",
            "< 50 ms",
            f"{r['reset_ms']:.1f} ms",
            r["reset_ms"] < 50,
        ),
    ]


class _SilentBus:
    """A bus that accepts intents and never delivers them (benchmark diagnostic only)."""

    def __init__(self, *_: Any) -> None:
        self.stats = RouterStats()

    def send(self, message: Any) -> int:
        return 0

    def deliver(self, until: float) -> list:
        return []

    def capturing(self, into: Any) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def close(self) -> None:
        pass


def _parallel_rate(env: Any, seconds: float, counts: dict[str, int] | None = None) -> float:
    """Env-steps/s; ``counts`` (when given) accumulates the steps and finished episodes."""
    rng = np.random.default_rng(0)
    pool = [
        {agent: int(rng.integers(env.action_space(agent).n)) for agent in env.possible_agents}
        for _ in range(256)
    ]
    env.reset(seed=0)
    steps = episodes = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            if not env.agents:
                env.reset()
                episodes += 1
            env.step(pool[steps % 256])
            steps += 1
        if time.perf_counter() >= deadline:
            rate = steps / (time.perf_counter() - start)
            if counts is not None:
                counts["steps"] += steps
                counts["episodes"] += episodes
            return rate


def _batch_rates(size: int, seconds: float) -> dict[str, float]:
    batch = OrbitSchedulingBatch(num_envs=size)
    agents = len(batch.agents)
    rng = np.random.default_rng(0)
    counts = np.array([7, 7] + [3] * (agents - 2))
    pool = (rng.random((16, size, agents)) * counts).astype(np.int64)
    stepping_time = reset_time = 0.0
    steps = 0
    t0 = time.perf_counter()
    batch.reset(list(range(size)))
    reset_time += time.perf_counter() - t0
    while stepping_time + reset_time < seconds or steps == 0:
        t0 = time.perf_counter()
        truncated = False
        while not truncated:
            _, _, _, truncated, _ = batch.step(pool[steps % 16])
            steps += 1
        stepping_time += time.perf_counter() - t0
        t0 = time.perf_counter()
        batch.reset()
        reset_time += time.perf_counter() - t0
    agent_steps = steps * size * agents
    return {
        "stepping": agent_steps / stepping_time,
        "with_resets": agent_steps / (stepping_time + reset_time),
    }


def _reset_share(
    size: int, seconds: float, rounds: int, plan_ahead: bool = False
) -> dict[str, float]:
    """Stepping alone and with resets counted, timed apart in the same episodes.

    Actions are drawn uniformly among the allowed ones each step from a seeded generator
    (drawing counts as stepping), so the episodes are the ones a learner's random policy
    would see. Each round runs whole episodes for about ``seconds``; the medians are kept.
    With ``plan_ahead`` the next episodes are prepared in a background process
    (:mod:`phobos.envs.plan_ahead`); a reset then counts the wait for them, if any.
    """
    batch = OrbitSchedulingBatch(num_envs=size, plan_ahead=plan_ahead)
    rng = np.random.default_rng(0)
    _, mask = batch.reset(list(range(size)))
    ratios, stepping_rates, reset_rates, reset_ms, episodes = [], [], [], [], 0
    for _ in range(rounds):
        stepping_time = reset_time = 0.0
        steps = count = 0
        while stepping_time + reset_time < seconds or count == 0:
            t0 = time.perf_counter()
            truncated = False
            while not truncated:
                _, mask, _, truncated, _ = batch.step(_allowed_random(rng, mask))
                steps += 1
            t1 = time.perf_counter()
            _, mask = batch.reset()
            stepping_time += t1 - t0
            reset_time += time.perf_counter() - t1
            count += 1
        agent_steps = steps * size * len(batch.agents)
        stepping_rates.append(agent_steps / stepping_time)
        reset_rates.append(agent_steps / (stepping_time + reset_time))
        ratios.append((stepping_time + reset_time) / stepping_time)
        reset_ms.append(reset_time / count * 1000.0)
        episodes = count
    batch.close()
    return {
        "stepping": statistics.median(stepping_rates),
        "with_resets": statistics.median(reset_rates),
        "ratio": statistics.median(ratios),
        "reset_ms": statistics.median(reset_ms),
        "episodes": episodes,
    }


def _allowed_random(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """One action per ``[env, agent]``, uniform among those ``mask`` allows."""
    allowed = mask.astype(bool)
    rank = (rng.random(mask.shape[:2]) * allowed.sum(axis=-1)).astype(np.int64)
    return (np.cumsum(allowed, axis=-1) <= rank[..., None]).sum(axis=-1)


def _sampling_batch_rates(size: int, seconds: float) -> dict[str, float]:
    """Random allowed actions; finished episodes restart alone (``reset(indices=...)``)."""
    batch = PhobosSamplingBatch(num_envs=size)
    agents = len(batch.agents)
    _, masks = batch.reset(list(range(size)))
    pool = np.random.default_rng(0).random((16,) + masks.shape)
    stepping_time = reset_time = 0.0
    steps = episodes = 0
    while stepping_time + reset_time < seconds or steps == 0:
        actions = (pool[steps % 16] * masks).argmax(axis=2)  # uniform over the allowed
        t0 = time.perf_counter()
        _, masks, _, done, _ = batch.step(actions)
        t1 = time.perf_counter()
        stepping_time += t1 - t0
        steps += 1
        if done.any():
            finished = np.flatnonzero(done)
            episodes += len(finished)
            _, masks = batch.reset(indices=finished)
            reset_time += time.perf_counter() - t1
    agent_steps = steps * size * agents
    return {
        "stepping": agent_steps / stepping_time,
        "with_resets": agent_steps / (stepping_time + reset_time),
        "episode_steps": steps * size / max(episodes, 1),
    }


def _median_ms(call: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def markdown(seconds: float) -> str:
    """Measure and return the section for ``docs/benchmarks.md``."""
    return report(run(seconds=seconds))
