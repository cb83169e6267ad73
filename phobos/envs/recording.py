"""Saved episodes: every step's actions, rewards and messages, as JSON lines; and their replay.

``phobos evaluate --save-episodes`` writes one file per (team, seed); ``phobos demo --replay``
plays one on the dashboard. A file is a header record, then one record per step::

    {"record": "episode", "format": 1, "env": "<env id>", "config": {...},
     "seed": 3, "team": "greedy", "agents": [...], "steps": 288, "team_return": 2.1}
    {"record": "step", "step": 0, "actions": {"phobos_grunt": 4, ...},
     "rewards": {"phobos_grunt": 0.0, ...},
     "messages": [{"from": "yinghuo1", "to": "phobos_grunt", "kind": "intent",
                   "sent_s": 0.0, "delivered_s": 300.0}, ...]}

``messages`` are the copies delivered during that step. A file is outside input: it is read
with bounded sizes, every field checked, and :func:`replay` re-simulates the episode from its
env, config and seed with its actions, refusing a step whose rewards differ from the file's.
Every refusal is a ``ValueError`` naming the line, step and field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phobos import config as config_tools
from phobos.envs.episode import Transition, play
from phobos.envs.registry import config_class, make

FORMAT = 1
"""Version of the file layout; another is refused."""
MAX_BYTES = 64 * 1024 * 1024
"""Largest file read."""
MAX_LINE_BYTES = 1024 * 1024
"""Largest record (one step)."""
MAX_MESSAGES = 10_000
"""Most message records in one step."""
REWARD_TOLERANCE = 1e-9
"""Relative tolerance of the reward check (the file keeps Python's shortest float text)."""


@dataclass(frozen=True)
class SavedEpisode:
    """A saved episode, checked field by field.

    Attributes:
        env_id: Registered environment id.
        config: The environment's configuration.
        seed: The episode's seed.
        team: The team's label.
        agents: The environment's agents.
        steps: Per step, ``{"actions": ..., "rewards": ..., "messages": ...}``.
        source: Where it was read from (for messages).

    """

    env_id: str
    config: Any
    seed: int
    team: str
    agents: tuple[str, ...]
    steps: tuple[dict[str, Any], ...]
    source: str = "episode"


def header(env_id: str, config: Any, seed: int, team: str, agents: list[str]) -> dict[str, Any]:
    """The first record of a file (``steps`` and ``team_return`` are added when it ends)."""
    return {
        "record": "episode",
        "format": FORMAT,
        "env": env_id,
        "config": config_tools.to_mapping(config),
        "seed": int(seed),
        "team": team,
        "agents": list(agents),
    }


def step_record(step: int, transition: Transition, messages: list[dict[str, Any]]) -> dict:
    """The record of one step."""
    return {
        "record": "step",
        "step": step,
        "actions": {agent: int(action) for agent, action in transition.actions.items()},
        "rewards": {agent: float(reward) for agent, reward in transition.rewards.items()},
        "messages": messages,
    }


def write(path: Path, records: list[dict[str, Any]]) -> None:
    """Write ``records`` (header first) as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for record in records:
            handle.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")


def file_name(team: str, seed: int) -> str:
    """``greedy_phobos_grunt-rllib-runs-x-seed3.jsonl``: the team label made file-safe."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", team).strip("-.")[:80] or "team"
    return f"{slug}-seed{seed}.jsonl"


def read(path: str | Path) -> SavedEpisode:
    """Read and check a saved episode (sizes, types, env, config); see the module docstring."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ValueError(f"{where}: no such file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{where}: {size:,} bytes, more than the {MAX_BYTES:,} a file may have")
    records = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if len(line) > MAX_LINE_BYTES:
                raise ValueError(f"{where} line {number}: longer than {MAX_LINE_BYTES:,} bytes")
            try:
                records.append(json.loads(line))
            except (ValueError, UnicodeDecodeError) as error:
                raise ValueError(f"{where} line {number}: not JSON ({error})") from None
    if not records:
        raise ValueError(f"{where}: empty")
    head = records[0]
    _check(isinstance(head, dict) and head.get("record") == "episode", where, 1, "record",
           "the first record must be the episode header")
    _check(head.get("format") == FORMAT, where, 1, "format",
           f"{head.get('format')!r}, this phobos reads {FORMAT}")
    env_id = head.get("env")
    _check(isinstance(env_id, str), where, 1, "env", "must be an environment id")
    try:
        config = config_tools.from_mapping(config_class(env_id), head.get("config", {}))
    except ValueError as error:  # an unknown env id or a bad config field
        raise ValueError(f"{where} line 1: {error}") from None
    seed = head.get("seed")
    _check(_is_int(seed) and seed >= 0, where, 1, "seed", f"{seed!r} is no seed >= 0")
    team = head.get("team")
    _check(isinstance(team, str) and len(team) <= 1000, where, 1, "team", "must be a label")
    agents = head.get("agents")
    _check(
        isinstance(agents, list) and all(isinstance(a, str) for a in agents),
        where, 1, "agents", "must list agent ids",
    )
    steps = tuple(_check_step(r, i, agents, where) for i, r in enumerate(records[1:]))
    return SavedEpisode(env_id, config, seed, team, tuple(agents), steps, where)


def replay(
    saved: SavedEpisode,
    env: Any = None,
    on_reset: Callable[[dict[str, Any]], None] | None = None,
    step: Callable[[dict[str, Any]], tuple] | None = None,
) -> Iterator[Transition]:
    """Re-simulate ``saved`` with its actions, checking every step's rewards against the file.

    Args:
        saved: The episode.
        env: The environment to step (the live replay passes one with its tracked bus);
            None makes one from ``saved``'s env id and config.
        on_reset: Called with the observations of the reset, before the first step.
        step: What steps the environment (``env.step`` by default), as in
            :func:`~phobos.envs.episode.play`.

    Yields:
        Every step, as :func:`~phobos.envs.episode.play` does.

    Raises:
        ValueError: Naming the step and field where the file and the simulation part.

    """
    where = saved.source
    env = env if env is not None else make(saved.env_id, saved.config)
    if list(env.possible_agents) != list(saved.agents):
        raise ValueError(
            f"{where}: agents {', '.join(saved.agents)}; {saved.env_id} has "
            f"{', '.join(env.possible_agents)}"
        )
    observations, _ = env.reset(seed=saved.seed)
    if on_reset is not None:
        on_reset(observations)
    index = 0

    def act(_: dict[str, Any]) -> dict[str, Any]:
        if index >= len(saved.steps):
            raise ValueError(f"{where}: ends after step {index - 1}; the episode goes on")
        actions = saved.steps[index]["actions"]
        if sorted(actions) != sorted(env.agents):
            raise ValueError(
                f"{where} step {index}: actions for {', '.join(sorted(actions)) or 'nobody'}; "
                f"the live agents are {', '.join(sorted(env.agents))}"
            )
        for agent, action in actions.items():
            if not env.action_space(agent).contains(action):
                raise ValueError(
                    f"{where} step {index}: actions.{agent}: {action} is outside its action space"
                )
        return dict(actions)

    for transition in play(env, act, observations, step=step):
        saved_rewards = saved.steps[index]["rewards"]
        for agent, reward in transition.rewards.items():
            expected = saved_rewards.get(agent)
            if expected is None or not math.isclose(
                float(reward), expected, rel_tol=REWARD_TOLERANCE, abs_tol=REWARD_TOLERANCE
            ):
                raise ValueError(
                    f"{where} step {index}: rewards.{agent}: the file says {expected!r}, the "
                    f"re-simulated episode gives {float(reward)!r} (the file was altered, or "
                    "made by another version of the environment)"
                )
        index += 1
        yield transition
    if index != len(saved.steps):
        raise ValueError(
            f"{where}: {len(saved.steps)} steps, but the episode ended after {index}"
        )


def check(saved: SavedEpisode) -> float:
    """Re-simulate all of ``saved`` (raising as :func:`replay` does); its team return."""
    total = 0.0
    for transition in replay(saved):
        total += float(next(iter(transition.rewards.values()), 0.0))
    return total


def _check_step(record: Any, index: int, agents: list[str], where: str) -> dict[str, Any]:
    line = index + 2
    _check(isinstance(record, dict) and record.get("record") == "step", where, line, "record",
           "must be a step record")
    _check(record.get("step") == index, where, line, "step", f"{record.get('step')!r}, "
           f"expected {index}")
    actions, rewards = record.get("actions"), record.get("rewards")
    _check(
        isinstance(actions, dict) and all(a in agents and _is_int(v) for a, v in actions.items()),
        where, line, "actions", "must map agent ids to integer actions",
    )
    _check(
        isinstance(rewards, dict)
        and all(
            a in agents and isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(v)
            for a, v in rewards.items()
        ),
        where, line, "rewards", "must map agent ids to finite numbers",
    )
    messages = record.get("messages", [])
    _check(
        isinstance(messages, list) and len(messages) <= MAX_MESSAGES
        and all(isinstance(m, dict) for m in messages),
        where, line, "messages", f"must be a list of at most {MAX_MESSAGES:,} records",
    )
    return {"actions": actions, "rewards": {a: float(v) for a, v in rewards.items()},
            "messages": messages}


def _is_int(value: Any) -> bool:
    """An int (not a bool) of at most 62 bits: what numpy and the action spaces can hold."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**62


def _check(ok: bool, where: str, line: int, field: str, problem: str) -> None:
    if not ok:
        raise ValueError(f"{where} line {line}: {field}: {problem}")
