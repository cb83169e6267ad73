"""Link models: when a message from A to B can leave, when it arrives, and whether it is lost.

A link model is the contact plan of delay-tolerant networking: it knows, for any send time,
the next time the link from A to B exists (line of sight, station visibility), the one-way
light time at that moment, and the channel's loss. The router asks it; nothing else does.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import numpy as np

TransitTimes = tuple[float, float, bool]
"""How one message crosses one link: ``(depart_time, arrival_time, lost)``.

``depart_time`` is when it leaves the sender's buffer (the link's next contact),
``arrival_time`` is ``depart_time`` plus the light time then, and ``lost`` whether the channel
loses it in flight. A plain tuple: building a named one would cost more than the lookup itself
on the environments' hot path.
"""


class LinkModel(abc.ABC):
    """Contact plan between named endpoints.

    Required: :meth:`transit`. Optional hook: :meth:`rate_bps`, the link's data rate
    (unlimited by default), with which the router serialises messages on a busy link.
    """

    @abc.abstractmethod
    def transit(self, sender: str, receiver: str, send_time: float) -> TransitTimes | None:
        """Transit of a message sent at ``send_time``, or None if no contact comes in the plan."""

    rate_limited: bool = False
    """Whether any link has a finite :meth:`rate_bps`; set it when overriding that hook."""

    def rate_bps(self, sender: str, receiver: str, time: float) -> float:
        """Data rate of the link at ``time`` in bits per second; unlimited unless overridden."""
        return math.inf


class TabulatedLinks(LinkModel):
    """Contact plan tabulated on a fixed step grid, as the environments precompute it.

    Step ``s`` spans ``[s * step_seconds, (s + 1) * step_seconds)``. A message sent during
    step ``s`` leaves at the start of the first step ``s' >= s`` whose link is open and arrives
    one light time later. Loss is decided by a table drawn from the episode's own generator, so
    that a seeded episode loses the same messages over every transport.

    Args:
        endpoints: Endpoint ids, in the order of the tables' last two axes.
        step_seconds: Length of one step.
        open_: Bool array ``[steps, sender, receiver]``: link exists during that step.
        delay: Float array ``[steps, sender, receiver]``: one-way light time in seconds.
        lost: Bool array ``[steps, sender, receiver]``: a message sent during that step is lost
            in flight (the environments send at most one message per link and step).
        rate_bps: Optional float array ``[steps, sender, receiver]``: the link's data rate;
            unlimited when omitted (intent messages are tiny beside any link's rate).

    """

    def __init__(
        self,
        endpoints: Sequence[str],
        step_seconds: float,
        open_: np.ndarray,
        delay: np.ndarray,
        lost: np.ndarray,
        rate_bps: np.ndarray | None = None,
    ) -> None:
        steps = open_.shape[0]
        self.step_seconds = float(step_seconds)
        self.endpoints = tuple(endpoints)
        self.tables = (open_, delay, lost, rate_bps)
        """The tables as given, for a relay in another process to build the same plan."""
        self._index = {name: i for i, name in enumerate(endpoints)}
        next_open = next_open_step(open_)
        # Python lists: scalar lookups in the env's hot path are 5x cheaper than numpy's.
        self._next_open = next_open.tolist()
        self._delay = delay.tolist()
        self._lost = lost.tolist() if lost.any() else None
        self._steps = steps
        self._rate = None if rate_bps is None else rate_bps.tolist()
        self.rate_limited = rate_bps is not None

    def transit(self, sender: str, receiver: str, send_time: float) -> TransitTimes | None:
        """See :meth:`LinkModel.transit`."""
        i, j = self._index[sender], self._index[receiver]
        step = math.floor(send_time / self.step_seconds)
        if step >= self._steps:
            return None
        depart = self._next_open[step][i][j]
        if depart >= self._steps:
            return None
        depart_time = depart * self.step_seconds
        lost = self._lost is not None and self._lost[step][i][j]
        return (depart_time, depart_time + self._delay[depart][i][j], lost)

    def rate_bps(self, sender: str, receiver: str, time: float) -> float:
        """The tabulated rate during the step holding ``time`` (unlimited without a table)."""
        if self._rate is None:
            return math.inf
        step = min(math.floor(time / self.step_seconds), self._steps - 1)
        return self._rate[step][self._index[sender]][self._index[receiver]]


def next_open_step(open_: np.ndarray) -> np.ndarray:
    """For each step (axis -3), the first step at or after it whose link is open.

    Works on ``[steps, A, A]`` or ``[envs, steps, A, A]``; a link that never reopens gets
    ``steps`` (one past the end).
    """
    steps = open_.shape[-3]
    index = np.arange(steps).reshape((steps, 1, 1))
    candidate = np.where(open_, index, steps)
    # Suffix minimum along the step axis: flip, running minimum, flip back.
    flipped = np.flip(candidate, axis=-3)
    return np.flip(np.minimum.accumulate(flipped, axis=-3), axis=-3)
