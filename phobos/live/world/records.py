"""Plain data the world server's parts share: settings, per-agent records, counters, progress.

Kept apart from :mod:`phobos.live.world.server` so that the loop, the agent exchange
(:mod:`phobos.live.world.exchange`) and telemetry (:mod:`phobos.live.world.telemetry`) read
and write the same values without reaching into each other's attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SAFE_ACTION = 0
"""Every agent's safe default: idle (orbit scheduling), wait / no advice (sampling)."""

WAITING, ALIVE, LOST = "waiting", "alive", "lost"

PROBATION = 3
"""Answers within the deadline a rejoined or restarted agent gives before it is waited for."""
UNANSWERED = 16
"""Unanswered observations an agent's record remembers the send time of."""


@dataclass(frozen=True)
class WorldSettings:
    """How the world server steps and reports."""

    action_timeout: float = 2.0
    """Seconds each step waits for every live agent's action; late ones get the safe default."""
    join_timeout: float = 30.0
    """Seconds the first episode waits for every agent to join (missing ones get defaults);
    meanwhile telemetry says who is missing, and the world does not step."""
    first_action_grace: float = 0.0
    """Extra seconds the world waits for an agent's first action after it joined or
    restarted: its process may still be building its environment and loading its policy
    after its hello, and a first deadline of only ``action_timeout`` would mark it lost at
    tick 0 (the dashboard showing the science team lost at the start). Later deadlines are
    ``action_timeout``. ``phobos demo`` sets 20 s (``--grace``); 0 here keeps a world served
    to test clients strict."""
    seed: int = 0
    """Seed of the first episode; episode ``k`` uses ``seed + k``."""
    speed: float = 0.0
    """Target steps per second; 0 steps as fast as the agents answer (throttle off)."""
    telemetry_hz: float = 10.0
    """Most state updates published per second, whatever the step rate."""
    relay: Literal["zmq", "memory", "process"] = "zmq"
    """Carry the intents between agents over ZeroMQ through a relay, or in memory; or
    ``process``: each agent process sends its own messages through the DTN relay process at
    ``relay_address`` (:mod:`phobos.live.dtn`), whose deliveries the environment takes."""
    relay_address: str | None = None
    """The DTN relay's address, for ``relay="process"``."""
    record: bool = False
    """Keep every step's actions and defaults in :attr:`WorldStats.records` (for tests)."""

    def validate(self) -> None:
        """Raise ValueError for a setting out of range."""
        if not self.action_timeout > 0 or not self.join_timeout >= 0:
            raise ValueError("action_timeout must be positive and join_timeout not negative")
        if not self.first_action_grace >= 0:
            raise ValueError(
                f"first_action_grace must be at least 0 s, got {self.first_action_grace}"
            )
        if not self.speed >= 0 or not self.telemetry_hz > 0:
            raise ValueError("speed must be at least 0 and telemetry_hz positive")
        if self.relay not in ("zmq", "memory", "process"):
            raise ValueError(f"relay must be 'zmq', 'memory' or 'process', got {self.relay!r}")
        if self.relay != "process" and self.relay_address is not None:
            raise ValueError("only relay='process' takes a relay_address")


@dataclass
class AgentRecord:
    """What the world knows of one agent's process.

    Attributes:
        status: ``waiting`` (never joined), ``alive`` or ``lost``.
        incarnation: The incarnation of its latest hello (one per process run).
        joins: Hellos accepted. restarts: hellos with a new incarnation after the first.
        lost: Times it was marked lost. obs_sent: observations sent. actions: actions used.
        defaults: Steps it got the safe default. errors: actions outside its space.
        stale: Actions for an older step, from a lost agent, or from an old connection.
        late: Answers that came after the deadline. probation: answers within the deadline
        still owed before the world waits for it again (it is sent observations meanwhile,
        and its answers are used when they come before the others').
        abandoned: Observations that will never be answered where they were sent: still
            unanswered when a hello came on a new connection, or pushed out of ``sent``.
        sent: Monotonic send time of the observations still unanswered, by tick (the latest
            :data:`UNANSWERED` only; cleared at a hello on a new connection).
        fresh: It joined or restarted and has not answered yet: its first deadline has the
            settings' ``first_action_grace`` added.

    """

    status: str = WAITING
    incarnation: int | None = None
    ident: bytes = b""
    joins: int = 0
    restarts: int = 0
    lost: int = 0
    obs_sent: int = 0
    actions: int = 0
    defaults: int = 0
    errors: int = 0
    stale: int = 0
    late: int = 0
    probation: int = 0
    abandoned: int = 0
    sent: dict[int, float] = field(default_factory=dict)
    fresh: bool = False

    def note_sent(self, tick: int, when: float) -> None:
        """Remember that the observation of ``tick`` was sent at ``when`` (a few are kept)."""
        self.sent[tick] = when
        if len(self.sent) > UNANSWERED:
            del self.sent[next(iter(self.sent))]
            self.abandoned += 1

    def as_dict(self) -> dict[str, Any]:
        """Plain data for telemetry."""
        return {
            "status": self.status,
            "restarts": self.restarts,
            "joins": self.joins,
            "lost": self.lost,
            "obs_sent": self.obs_sent,
            "actions": self.actions,
            "defaults": self.defaults,
            "errors": self.errors,
            "stale": self.stale,
            "late": self.late,
            "probation": self.probation,
            "abandoned": self.abandoned,
        }


@dataclass
class WorldStats:
    """Counters of a :meth:`~phobos.live.world.server.WorldServer.run`.

    Attributes:
        steps: Steps taken. episodes: Episodes finished. returns: Team return per episode.
        refused: Hellos refused (unknown id). rejected: Frames that were not valid, and
            replies that could not be encoded (never an exit).
        elapsed_s: Wall seconds from the first step to the last.
        records: ``(tick, actions, defaulted agents)`` per step when ``record`` is set.

    """

    steps: int = 0
    episodes: int = 0
    returns: list[float] = field(default_factory=list)
    refused: int = 0
    rejected: int = 0
    elapsed_s: float = 0.0
    records: list[tuple[int, dict[str, int], tuple[str, ...]]] = field(default_factory=list)


@dataclass
class Progress:
    """Where a run stands: advanced by the loop, read by the exchange and telemetry.

    Attributes:
        tick: Steps taken over all episodes (the sequence number of observations).
        episode: Index of the current episode (-1 before the first). seed: its seed.
        step: Step within the episode. team_return: the episode's return so far.
        paused, speed: The dashboard's controls (speed in steps per second, 0 throttle off).
        observations: The current step's observation per agent.
        executed: The actions the environment carried out at the last step.
        defaulted: Agents given the safe default at the last step.
        awaiting: Agents whose action for this tick is still waited for.
        optional: Agents sent this tick's observation but not waited for (on probation).
        actions: Actions received for this tick. in_exchange: an exchange is under way.
        submitted: Per agent that answered this tick with a count, the messages it has
            submitted to the DTN relay this episode (``relay="process"``).

    """

    speed: float = 0.0
    paused: bool = False
    tick: int = 0
    episode: int = -1
    seed: int = 0
    step: int = 0
    team_return: float = 0.0
    observations: dict[str, Any] = field(default_factory=dict)
    executed: dict[str, int] = field(default_factory=dict)
    defaulted: tuple[str, ...] = ()
    awaiting: set[str] = field(default_factory=set)
    optional: set[str] = field(default_factory=set)
    actions: dict[str, int] = field(default_factory=dict)
    in_exchange: bool = False
    submitted: dict[str, int] = field(default_factory=dict)
