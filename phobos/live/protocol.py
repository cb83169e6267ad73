"""The world server's wire protocol: message kinds and the frames of the lock-step exchange.

Every frame is one :mod:`phobos.comms.codec` message (msgpack, never pickle) on a
ROUTER (world) / DEALER (agent) pair. Every message's sender is its agent id; with CURVE it
must be the name the allow-list gives the key of the connection (its ZAP User-Id), and the
world answers on the connection of the latest hello made with that key, never by a routing id
a client chose. Every field an agent sends is bounded (:data:`MAX_POLICY_CHARS`, the codec's
frame size) and checked before it is used or quoted.

| kind | from | payload |
|---|---|---|
| ``hello`` | agent | ``{"incarnation": int, "pid": int, "policy": str}``; sent on connecting |
| ``welcome`` | world | ``{"env": id, "config": mapping, "agents": [...], "tick": int}`` |
| ``refused`` | world | the reason, a string; the agent exits non-zero |
| ``obs`` | world | ``[episode, seed, step, observation bytes, mask bytes(, sensing)]``; ``seq`` |
| | | is the tick; ``sensing`` (agents that send their own messages, when the task has it): |
| | | what the agent's own sensors read beyond the observation (``env.agent_sensing``) |
| ``act`` | agent | the action (an int); ``seq`` is the tick of the observation it answers |
| ``error`` | world | the reason an action was not used (out of its space, ...) |
| ``ping`` / ``pong`` | agent / world | liveness while the world is paused or between episodes |
| ``rejoin`` | world | the answer to a lost agent's ping or action: say hello again |
| ``control`` | dashboard | ``{"command": "pause" / "resume" / "speed", "value": float}``; |
| | world | the reply: ``{"paused": bool, "speed": float}`` |
| ``end`` | world | the world is shutting down; the agent exits 0 |

Observations travel as the raw bytes of the float32 vector and the int8 action mask: the
agent knows their shapes from its own copy of the environment, and raw bytes cost a fraction
of the codec's array extension on the per-step path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WORLD = "world"
"""Endpoint name (and key name) of the world server."""
DASHBOARD = "dashboard"
"""Endpoint name (and key name) of the dashboard's control client."""

HELLO = "hello"
WELCOME = "welcome"
REFUSED = "refused"
OBS = "obs"
ACT = "act"
ERROR = "error"
PING = "ping"
PONG = "pong"
REJOIN = "rejoin"
CONTROL = "control"
END = "end"

MAX_SPEED = 10_000.0
"""Highest speed (steps per second) a control may set; 0 is throttle off."""
MAX_POLICY_CHARS = 200
"""Longest ``policy`` label a hello may carry."""

TELEMETRY_EPISODE = "episode"
"""Telemetry kind: the static tables of an episode (orbits, site), republished every second."""
TELEMETRY_STATE = "state"
"""Telemetry kind: the world's state, at most ``telemetry_hz`` times a second."""
TELEMETRY_EVENT = "event"
"""Telemetry kind: an agent joined, was lost, restarted, or was refused."""


def observation_payload(
    episode: int, seed: int, step: int, observation: dict[str, np.ndarray], sensing: Any = None
) -> list[Any]:
    """The ``obs`` payload of one agent's observation (a ``Dict`` of vector and mask).

    ``sensing``, when not None, is the side channel: what the agent's own sensors read beyond
    its observation (``env.agent_sensing``), for the task's message rule in the agent process.
    """
    payload = [
        episode,
        seed,
        step,
        observation["observations"].tobytes(),
        observation["action_mask"].tobytes(),
    ]
    if sensing is not None:
        payload.append(sensing)
    return payload


def sensing_from(payload: Any) -> Any:
    """The side channel of an ``obs`` payload (checked by :func:`observation_from`), or None."""
    return payload[5] if len(payload) == 6 else None


def observation_from(payload: Any) -> tuple[int, int, int, dict[str, np.ndarray]]:
    """``(episode, seed, step, observation)`` from an ``obs`` payload.

    Raises:
        ValueError: if the payload is not five (or six) fields with two byte strings.

    """
    if not (isinstance(payload, list) and len(payload) in (5, 6)):
        raise ValueError(
            f"obs payload must be a list of 5 or 6 fields, got {type(payload).__name__}"
        )
    episode, seed, step, vector, mask = payload[:5]
    if not (isinstance(vector, bytes) and isinstance(mask, bytes)):
        raise ValueError("obs payload: observation and mask must be bytes")
    observation = {
        "observations": np.frombuffer(vector, dtype=np.float32),
        "action_mask": np.frombuffer(mask, dtype=np.int8),
    }
    return int(episode), int(seed), int(step), observation
