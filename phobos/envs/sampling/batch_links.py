"""The store-and-forward router's timing for the sampling batch core, in arrays.

Each episode has two directed links, lander to science team (0) and back (1), open together
while there is a contact. :class:`LinkBatch` decides, at send time and for many episodes at
once, what :class:`~phobos.comms.router.Router` over
:class:`~phobos.comms.link.TabulatedLinks` would do with one message: reject it (``buffer``
messages already wait for the contact), hold it until the next open step and let it arrive one
light time later, or hold it for good (no contact left). It returns the observation index at
which the receiver sees it, so the caller files the payload under that index.
"""

from __future__ import annotations

import numpy as np

from phobos.comms.link import next_open_step

LANDER_TO_TEAM, TEAM_TO_LANDER = 0, 1


class LinkBatch:
    """Contact plans and buffers of the two links in ``n`` episodes of ``steps`` steps.

    Args:
        n: Episodes.
        steps: Steps per episode (the horizon).
        step_seconds: Length of a step.
        buffer: Messages that may wait per link (``SamplingConfig.message_buffer``).

    """

    def __init__(self, n: int, steps: int, step_seconds: float, buffer: int) -> None:
        self.steps, self.step_seconds, self.buffer = steps, step_seconds, buffer
        self.next_open = np.zeros((n, steps), dtype=np.int64)
        self.light_time_s = np.zeros((n, steps))
        self.lost = np.zeros((n, steps, 2), dtype=bool)
        self.waiting = np.zeros((n, 2), dtype=np.int64)
        self.waiting_depart = np.zeros((n, 2), dtype=np.int64)
        # Copies seen (delivered) and lost at each observation index; steps + 1: never.
        self.delivered_at = np.zeros((n, steps + 2), dtype=np.int64)
        self.lost_at = np.zeros((n, steps + 2), dtype=np.int64)

    def reset(
        self, envs: np.ndarray, contact: np.ndarray, light_time_s: np.ndarray, lost: np.ndarray
    ) -> None:
        """New contact plans for ``envs``, with empty buffers.

        ``contact`` and ``light_time_s`` are ``[m, T]``; ``lost`` is ``[m, T, sender,
        receiver]`` as the episode plan draws it.
        """
        open_ = np.zeros(contact.shape + (1, 1), dtype=bool)
        open_[..., 0, 0] = contact
        self.next_open[envs] = next_open_step(open_)[..., 0, 0]
        self.light_time_s[envs] = light_time_s
        self.lost[envs, :, LANDER_TO_TEAM] = lost[:, :, 0, 1]
        self.lost[envs, :, TEAM_TO_LANDER] = lost[:, :, 1, 0]
        self.waiting[envs] = 0
        self.waiting_depart[envs] = 0
        self.delivered_at[envs] = 0
        self.lost_at[envs] = 0

    def send(
        self, envs: np.ndarray, link: int, step: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Send one message on ``link`` from each of ``envs`` (distinct) during ``step``.

        Returns:
            Whether each was rejected (buffer full), and the observation index at which it is
            seen (``steps + 1`` when never: rejected, lost, held for good or too late).

        """
        steps, dt = self.steps, self.step_seconds
        depart = self.next_open[envs, step]
        # Messages still waiting left, or will leave, together at one open step: the router
        # drops from its buffer those whose departure time has come.
        held = np.where(self.waiting_depart[envs, link] > step, self.waiting[envs, link], 0)
        rejected = held >= self.buffer
        self.waiting[envs, link] = np.where(rejected, held, held + 1)
        self.waiting_depart[envs, link] = np.where(
            rejected, self.waiting_depart[envs, link], depart
        )
        leaves = ~rejected & (depart < steps)
        depart = np.minimum(depart, steps - 1)
        arrival = depart * dt + self.light_time_s[envs, depart]
        # The first observation time k * dt at or after arrival, compared as the router does.
        seen = np.ceil(arrival / dt).astype(np.int64)
        seen -= (seen - 1) * dt >= arrival
        seen += seen * dt < arrival
        seen = np.where(leaves, np.minimum(np.maximum(seen, step + 1), steps + 1), steps + 1)
        lost = self.lost[envs, step, link] & (seen <= steps)
        self.lost_at[envs, seen] += lost
        self.delivered_at[envs, seen] += ~lost & (seen <= steps)
        return rejected, np.where(lost, steps + 1, seen)
