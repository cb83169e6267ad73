"""The orbit-scheduling task's message rule: what an agent says to the others each step.

Every agent broadcasts one ``intent`` per step: the activity it carries out (its action, or
idle when its mask forbids the action, as the environment carries it out), and for a
spacecraft its battery and storage fractions as its own observation shows them (stations say
0 for both). The rule reads only what the agent itself sees, so one function serves the
environment (in-process training and evaluation) and an agent process that builds and sends
its own messages (the live demonstration): both give the same messages, bit for bit.

The fractions are the float32 values of the observation. The environment used to send the
float64 values of its state; the intent block of every observation is cast to float32, so
the observations (and every trajectory) are the same either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phobos.comms.message import BROADCAST, Message
from phobos.envs.orbit_scheduling.layout import BATTERY, STORAGE, ObservationLayout

INTENT = "intent"
"""Message kind of the per-step intent: (activity, battery fraction, storage fraction)."""
KINDS = (INTENT,)
"""Every message kind an agent of this task sends."""


def executed_action(action: int, mask: np.ndarray) -> int:
    """The activity the environment carries out for ``action``: idle (0) if masked."""
    return int(action) if mask[action] else 0


def intent_payload(
    spacecraft: bool, executed: int, vector: np.ndarray, layout: ObservationLayout
) -> tuple[int, float, float]:
    """``(activity, battery, storage)`` of one intent, from the sender's observation vector."""
    if not spacecraft:
        return (executed, 0.0, 0.0)
    return (
        executed,
        float(vector[layout.own_field(BATTERY)]),
        float(vector[layout.own_field(STORAGE)]),
    )


def messages_for(
    agent: str,
    action: int,
    observation: dict[str, Any],
    *,
    spacecraft: bool,
    layout: ObservationLayout,
    step: int,
    step_seconds: float,
    seq: int,
) -> list[Message]:
    """The messages ``agent`` sends at ``step`` after choosing ``action``.

    Args:
        agent: The sender.
        action: Its action (in its space).
        observation: Its observation of this step (``observations`` and ``action_mask``).
        spacecraft: Whether it is a spacecraft (stations report no battery or storage).
        layout: The observation layout.
        step: The step (the send time is ``step * step_seconds``).
        step_seconds: Length of a step.
        seq: Its sequence number for the message (one message per step: the step).

    """
    executed = executed_action(action, observation["action_mask"])
    payload = intent_payload(spacecraft, executed, observation["observations"], layout)
    return [Message(agent, BROADCAST, INTENT, step * step_seconds, seq, payload)]
