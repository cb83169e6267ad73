"""What both tasks' ``ParallelEnv`` adapters share: spaces, the message bus, render and close.

Each task's environment subclasses :class:`MessagingEnv`, calls :meth:`~MessagingEnv._setup`
in its constructor and :meth:`~MessagingEnv._open_bus` in ``reset``; the rest (cached
per-agent spaces, the agent check, ``render``, ``close`` and the message counters of the
episode summary) is written here once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gymnasium
from pettingzoo import ParallelEnv

from phobos.comms.link import LinkModel
from phobos.comms.message_bus import MessageBus, MessageBusFactory
from phobos.comms.router import Router
from phobos.envs.validation import check_agent, masked_spaces


class MessagingEnv(ParallelEnv):
    """A ``ParallelEnv`` whose agents talk through a :class:`~phobos.comms.message_bus.MessageBus`.

    Required of a subclass: set ``possible_agents`` and call :meth:`_setup` in its
    constructor, and :meth:`_open_bus` in ``reset`` (a fresh bus per episode).
    """

    router: MessageBus | None = None
    """The current episode's message bus (None before the first reset)."""

    def _setup(
        self,
        render_mode: str | None,
        message_bus: MessageBusFactory | None,
        action_counts: Mapping[str, int],
        observation_size: int,
    ) -> None:
        """Check the render mode, build the cached spaces and keep the bus factory."""
        if render_mode is not None:
            raise ValueError(f"render_mode {render_mode!r} is not supported; use None")
        self.render_mode = render_mode
        self._observation_spaces, self._action_spaces = masked_spaces(
            action_counts, observation_size
        )
        self._message_bus = message_bus or Router
        self.router = None

    def _open_bus(self, agents: Sequence[str], links: LinkModel, buffer_limit: int) -> None:
        """Close the last episode's bus and build this one's."""
        self.close()
        self.router = self._message_bus(agents, links, buffer_limit)

    def observation_space(self, agent: str) -> gymnasium.spaces.Dict:
        """The (cached) observation space of ``agent``."""
        return self._observation_spaces[self._check_agent(agent)]

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:
        """The (cached) action space of ``agent``."""
        return self._action_spaces[self._check_agent(agent)]

    def message_counts(self) -> dict[str, int]:
        """The bus's counters this episode, as the episode summary names them."""
        stats = self.router.stats
        return {
            "messages_sent": stats.sent,
            "messages_delivered": stats.delivered,
            "messages_rejected": stats.rejected,
            "messages_lost": stats.lost,
        }

    def render(self) -> None:
        """Rendering lives in the live dashboard; this environment draws nothing."""
        return None

    def close(self) -> None:
        """Close the message bus (its sockets, if it has any)."""
        if self.router is not None:
            self.router.close()

    def _check_agent(self, agent: str) -> str:
        return check_agent(agent, self.possible_agents)
