"""The DTN relay's wire protocol: who sends what to whom, and in which order.

Every frame is one :mod:`phobos.comms.codec` message on the relay's ROUTER (tcp+CURVE): the
envelope's sender must be the name of the connection's key (the ZAP User-Id), so no agent
can send under another's name. Each lock-step tick goes:

1. The world, at each ``reset``, sends ``plan`` (the episode's contact plan) and waits for
   ``ok``: the relay journals it and starts a fresh store-and-forward router on it.
2. Each agent answers its observation of step ``t``: it builds its messages with the task's
   rule, sends them to the relay in one ``submit`` (then, to the world, its action with the
   count of messages it has authored this episode). The relay answers ``refused`` at once for
   each one it will not take (the reason: late, unknown receiver or kind, too large, a reused
   sequence number, bad fields), and acknowledges the others once they are journaled.
3. The world, once it has every action, sends ``tick`` (episode, step, the simulated time
   the step ends, and each agent's count). The relay waits (bounded) until it holds every
   message counted, offers the step's messages to the router in a canonical order (sender
   in the plan's order, then sequence number), collects the copies due by then, journals
   them as owed and commits the step (its messages, the tick and the copies owed, in one
   transaction); then it sends each agent one ``deliver`` (its copies and the
   acknowledgements of its messages: custody has passed) and answers the world ``routed``
   with the same copies, which the world's environment takes as delivered. A ``tick`` asked
   again (the world's retry after a relay restart) gets the same answer.
4. Each receiver records its copies in its ledger, then acknowledges them with its next
   ``submit`` (or a ``got`` when the world is silent); the relay then forgets them.
5. At the end of a run the world sends ``flush``; the relay answers ``flushed`` with its
   counters once nothing is owed (or its wait ends).

| kind | from | payload |
|---|---|---|
| ``hello`` | agent | ``{"incarnation": int}``; answered ``welcome`` and what is owed |
| ``submit`` | agent | ``[episode, [[receiver, kind, send_time, seq, payload], ...], got]`` |
| | | (``got`` as ``got``'s payload; optional) |
| ``refused`` | relay | ``[episode, seq, reason]`` (``seq`` -1: the whole frame) |
| ``deliver`` | relay | ``[episode, [copy, ...], [[episode, [seq, ...]], ...]]``: copies as |
| | | ``routed``'s, then the acknowledged messages of this agent |
| ``got`` | agent | ``[[episode, sender, seq], ...]`` |
| ``plan`` | world | ``{"endpoints", "step_seconds", "buffer", "kinds", "open", "delay", "lost",`` |
| | | ``"rate"}``, ``seq`` the episode; answered ``ok`` |
| ``tick`` | world | ``[episode, step, until, {agent: count}, capture]``; answered ``routed`` |
| ``routed`` | relay | ``[episode, step, [copy, ...], stats, flights]``: a copy ``[receiver,`` |
| | | ``sender, addressee, kind, send_time, seq, payload]`` (:func:`copy_fields`), the |
| | | router's ``[sent, delivered, rejected, lost, held]``, and when ``capture`` the step's |
| | | copies in flight ``[sender, receiver, depart, arrive]`` (the dashboard's schema) |
| ``replan`` | relay | the relay has no plan for that episode: send ``plan`` again |
| ``flush`` | world | seconds to wait for receivers; answered ``flushed`` with the counters |
"""

from __future__ import annotations

from typing import Any

from phobos.comms.message import Message

RELAY = "relay"
"""Endpoint name (and key name) of the DTN relay."""

HELLO, WELCOME = "hello", "welcome"
SUBMIT, REFUSED = "submit", "refused"
ACK = "ack"
"""An acknowledgement on its own: ``[episode, [seq, ...]]`` (the relay sends them in
``deliver``; an agent takes either)."""
DELIVER, GOT = "deliver", "got"
PLAN, OK, REPLAN = "plan", "ok", "replan"
TICK, ROUTED = "tick", "routed"
FLUSH, FLUSHED = "flush", "flushed"

MAX_MESSAGE_BYTES = 16 * 1024
"""Largest encoded message an agent may submit."""
MAX_PER_SUBMIT = 64
"""Most messages one ``submit`` may carry."""
MAX_FRAME_BYTES = 16 << 20
"""Largest frame on the relay's socket (a long episode's plan is the largest)."""


def wire(message: Message) -> list[Any]:
    """A submitted message without its sender (the relay takes it from the key)."""
    return [message.receiver, message.kind, message.send_time, message.seq, message.payload]


def copy_fields(receiver: str, message: Message) -> list[Any]:
    """One delivered copy as plain fields: its receiver, then the message (its addressee too)."""
    return [
        receiver,
        message.sender,
        message.receiver,
        message.kind,
        message.send_time,
        message.seq,
        message.payload,
    ]


def copy_from(fields: Any) -> tuple[str, Message]:
    """``(receiver, message)`` from :func:`copy_fields`' list.

    Raises:
        ValueError: if it is not six fields of the right types.

    """
    if not (isinstance(fields, list) and len(fields) == 7):
        raise ValueError("a copy must be 7 fields")
    receiver, sender, addressee, kind, send_time, seq, payload = fields
    if not all(isinstance(v, str) for v in (receiver, sender, addressee, kind)):
        raise ValueError("a copy's receiver, sender, addressee and kind must be strings")
    if type(seq) is not int or not isinstance(send_time, float | int):
        raise ValueError("a copy's seq must be an int and its send time a number")
    return receiver, Message(sender, addressee, kind, float(send_time), seq, payload)
