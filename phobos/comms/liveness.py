"""Liveness of peers from the messages heard from them: alive, lost, back again.

Both ends of a relay link beat: each sends a heartbeat every interval, and counts anything it
hears from the other (a heartbeat or any message) as a sign of life. A peer silent for
``lost_after`` intervals is marked lost; the next thing heard from it marks it alive again
(rejoined). A heartbeat carries the sender's incarnation (one per process run), so a peer
that restarted faster than it could be marked lost is still noticed (restarted).

An owner that decides loss itself (the world server loses an agent that misses a deadline,
however recently it was heard) calls :meth:`Liveness.lose` instead of relying on silence; the
peer keeps its incarnation then, so its next hello still tells a restart (a new incarnation)
from the same process coming back (rejoined).

The class here only keeps the books and logs the changes; what a change means (hold its
messages, send them again) is up to the owner, which acts on the returned :class:`Change`.
"""

from __future__ import annotations

import enum
import logging
import math

from phobos.comms.reliable import ReliableStats

log = logging.getLogger(__name__)


class Change(enum.Enum):
    """What hearing from a peer, or not, changed."""

    JOINED = "joined"
    """First heard from (since this process started, for peers not known before)."""
    REJOINED = "rejoined"
    """Heard from again after being marked lost (or after this process restarted)."""
    RESTARTED = "restarted"
    """Heard from alive, with a new incarnation: its process restarted."""
    LOST = "lost"
    """Silent for ``lost_after`` heartbeat intervals."""


class _Peer:
    __slots__ = ("alive", "heard", "incarnation")

    def __init__(self, heard: float, alive: bool) -> None:
        self.heard = heard
        self.alive = alive
        self.incarnation: int | None = None


class Liveness:
    """Alive or lost, for every peer heard from.

    Args:
        owner: Name of the endpoint keeping the books, for the log.
        interval: Heartbeat interval in seconds; infinite (the default) for an owner that
            loses peers only by :meth:`lose`.
        lost_after: Silent intervals before a peer is lost.
        stats: Counters whose ``peers_lost`` and ``peers_rejoined`` this updates; fresh ones
            when omitted.
        log_changes: Log each change (an owner that logs richer lines itself turns it off).

    """

    def __init__(
        self,
        owner: str,
        interval: float = math.inf,
        lost_after: int = 1,
        stats: ReliableStats | None = None,
        *,
        log_changes: bool = True,
    ) -> None:
        self.owner = owner
        self.timeout = interval * lost_after
        self.stats = stats if stats is not None else ReliableStats()
        self._peers: dict[str, _Peer] = {}
        self._log_changes = log_changes

    def known(self) -> list[str]:
        """Every peer heard from or remembered, alive or lost."""
        return list(self._peers)

    def alive(self, name: str) -> bool:
        """Whether ``name`` was heard from within the timeout (as of the last :meth:`check`)."""
        peer = self._peers.get(name)
        return peer is not None and peer.alive

    def remember(self, name: str) -> None:
        """Know ``name`` as a lost peer until heard from (peers of a previous run)."""
        self._peers.setdefault(name, _Peer(float("-inf"), alive=False))

    def expect(self, name: str, now: float) -> None:
        """Count ``name`` alive from ``now`` until it stays silent for the timeout.

        For a peer this end talks to before hearing from it (an endpoint's relay).
        """
        self._peers.setdefault(name, _Peer(now, alive=True))

    def heard(self, name: str, now: float, incarnation: int | None = None) -> Change | None:
        """Note a sign of life from ``name`` at ``now``; return what changed, if anything."""
        peer = self._peers.get(name)
        change = None
        new_process = (
            peer is not None
            and incarnation is not None
            and peer.incarnation is not None
            and incarnation != peer.incarnation
        )
        if peer is None:
            peer = self._peers[name] = _Peer(now, alive=True)
            change = Change.JOINED
        elif not peer.alive or new_process:
            # Back from a loss: a restart when its incarnation was kept (lose()) and is new.
            change = Change.RESTARTED if new_process else Change.REJOINED
            peer.alive = True
            self.stats.peers_rejoined += 1
        peer.heard = now
        if incarnation is not None:
            peer.incarnation = incarnation
        if change is not None and self._log_changes:
            log.info("%s: peer %s %s", self.owner, name, change.value)
        return change

    def lose(self, name: str) -> bool:
        """Mark ``name`` lost now, whatever the clock; return whether it was alive.

        For an owner that loses peers by a missed deadline rather than by silence. The peer's
        incarnation is kept (module notes). An unknown or already lost peer is left as it is.
        """
        peer = self._peers.get(name)
        if peer is None or not peer.alive:
            return False
        peer.alive = False
        self.stats.peers_lost += 1
        if self._log_changes:
            log.warning("%s: peer %s lost", self.owner, name)
        return True

    def check(self, now: float) -> list[str]:
        """Mark peers silent since ``now - timeout`` lost; return the newly lost ones."""
        lost = []
        for name, peer in self._peers.items():
            if peer.alive and now - peer.heard >= self.timeout:
                peer.alive = False
                # Whatever it is when heard again, its return counts once (as rejoined).
                peer.incarnation = None
                lost.append(name)
                self.stats.peers_lost += 1
                log.warning(
                    "%s: peer %s lost (silent for %.2f s)", self.owner, name, now - peer.heard
                )
        return lost

    def next_check(self) -> float:
        """Earliest time a peer alive now could be marked lost (inf if none is alive)."""
        return min(
            (peer.heard + self.timeout for peer in self._peers.values() if peer.alive),
            default=float("inf"),
        )
