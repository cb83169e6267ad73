"""Where each feature sits in an orbit-scheduling observation vector.

Every agent's observation has the same layout, so scripted policies, learned ones and the
dashboard read features by name through :class:`ObservationLayout` instead of magic indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phobos.envs.orbit_scheduling.config import OrbitSchedulingConfig

MAX_ACTIONS = 7
"""Action count of a spacecraft; stations use the first three slots of a mask row."""

INTENT_FIELDS = MAX_ACTIONS + 4
"""Per sender: activity one-hot, battery, storage, age, received flag."""

SELF_FIELDS = 8

CRAFT_LOOKAHEAD_FIELDS = 7
"""Per spacecraft in the lookahead block: eclipse, Earth visibility, contact (in, for each)
and the contact's best rate."""
WINDOW_FIELDS = 2
"""Per station pass and for the occultation window: in, for."""


@dataclass(frozen=True)
class ObservationLayout:
    """Index map of one agent's observation vector (all values lie in [0, 1]).

    Shared block: ``time`` (episode fraction), ``light_time`` (/ 1,400 s), ``occultation_now``,
    ``occultation_soon``, ``spacecraft_link`` (the two spacecraft see each other), then one
    ``station_sees_mars`` flag per station.

    Own block (:data:`SELF_FIELDS` values). A spacecraft: battery, storage, stored value
    (/ 10), sunlit, Earth visible, dayside below, target available (Phobos in range for
    Phobos-Grunt, the induced magnetosphere for Yinghuo-1), best downlink rate now
    (/ its peak). A station: sees Mars, its rate to each spacecraft (/ peak), each
    spacecraft's Earth visibility, then zeros.

    Intent block: for each agent in ``config.agents`` order (zeros in one's own slot), the
    latest intent message received from it: activity one-hot, its battery, its storage, the
    message's age (/ horizon; 1 when none came), and whether any came.

    Lookahead block (version 1 only, after the intent block; the same for every agent: what
    an onboard planner computes from its ephemeris). A *window* is a run of steps in which a
    condition holds; its ``in`` is the steps from now until it starts (0 while it holds) and
    its ``for`` the steps it lasts from its start, both divided by ``horizon_steps`` and
    counted within the episode (a window still open at the end lasts until the end). When no
    window starts before the episode ends, ``in`` is 1 and ``for`` 0: values no window within
    the episode can take. Per spacecraft (:data:`CRAFT_LOOKAHEAD_FIELDS`: eclipse, more than
    half the step in Mars's shadow; Earth visible; contact, a downlink to some station is
    possible), in and for of each, then the contact's best downlink rate (/ the spacecraft's
    peak; over the rest of it while it is open; 0 if none). Per station (its pass: it can
    work Mars, so not in solar conjunction from v1): in, for. Last the occultation window:
    in, for. The final observation (``k = T``) repeats the last step's.
    """

    stations: int
    agents: int
    lookahead: bool = False
    """Whether the vector ends with the lookahead block (version 1 on)."""

    @classmethod
    def for_config(cls, config: OrbitSchedulingConfig) -> ObservationLayout:
        """The layout of ``config``'s observations (its version decides the lookahead)."""
        return cls(len(config.stations), len(config.agents), lookahead=config.version >= 1)

    @property
    def shared(self) -> int:
        """Length of the shared block."""
        return STATION_SEES_MARS + self.stations

    @property
    def own(self) -> slice:
        """Slice of the own block."""
        return slice(self.shared, self.shared + SELF_FIELDS)

    @property
    def intents(self) -> slice:
        """Slice of the whole intent block."""
        begin = self.shared + SELF_FIELDS
        return slice(begin, begin + self.agents * INTENT_FIELDS)

    @property
    def lookahead_block(self) -> slice:
        """Slice of the lookahead block (empty when there is none)."""
        begin = self.intents.stop
        size = 2 * CRAFT_LOOKAHEAD_FIELDS + WINDOW_FIELDS * (self.stations + 1)
        return slice(begin, begin + (size if self.lookahead else 0))

    @property
    def size(self) -> int:
        """Length of the whole vector."""
        return self.lookahead_block.stop

    def station_sees_mars(self, station: int) -> int:
        """Index of a station's visibility flag."""
        return STATION_SEES_MARS + station

    def own_field(self, k: int) -> int:
        """Index of the ``k``-th value of the own block."""
        return self.shared + k

    def intent(self, sender: int) -> slice:
        """Slice of the intent block from agent number ``sender``."""
        begin = self.shared + SELF_FIELDS + sender * INTENT_FIELDS
        return slice(begin, begin + INTENT_FIELDS)

    def lookahead_craft(self, craft: int, field: int) -> int:
        """Index of spacecraft ``craft``'s lookahead ``field`` (``ECLIPSE_IN`` ...)."""
        return self._lookahead(craft * CRAFT_LOOKAHEAD_FIELDS + field)

    def lookahead_station(self, station: int, field: int) -> int:
        """Index of a station's pass ``field`` (``WINDOW_IN`` or ``WINDOW_FOR``)."""
        return self._lookahead(2 * CRAFT_LOOKAHEAD_FIELDS + station * WINDOW_FIELDS + field)

    def lookahead_occultation(self, field: int) -> int:
        """Index of the occultation window's ``field`` (``WINDOW_IN`` or ``WINDOW_FOR``)."""
        return self._lookahead(
            2 * CRAFT_LOOKAHEAD_FIELDS + self.stations * WINDOW_FIELDS + field
        )

    def _lookahead(self, offset: int) -> int:
        if not self.lookahead:
            raise ValueError("this layout has no lookahead block (orbit-scheduling-v1 has one)")
        return self.lookahead_block.start + offset


TIME, LIGHT_TIME, OCCULTATION_NOW, OCCULTATION_SOON, SPACECRAFT_LINK, STATION_SEES_MARS = range(6)
"""Shared-block indices; the stations' flags start at ``STATION_SEES_MARS``, one per station."""
BATTERY, STORAGE, STORED_VALUE, SUNLIT, EARTH_VISIBLE, DAYSIDE, TARGET, DOWNLINK_RATE = range(8)
"""Own-block offsets for a spacecraft (use with :meth:`ObservationLayout.own_field`)."""
SEES_MARS, RATE_PHOBOS_GRUNT, RATE_YINGHUO1, EARTH_PHOBOS_GRUNT, EARTH_YINGHUO1 = range(5)
"""Own-block offsets for a station (each spacecraft's rate, then its Earth visibility)."""
INTENT_BATTERY, INTENT_STORAGE, INTENT_AGE, INTENT_RECEIVED = range(MAX_ACTIONS, INTENT_FIELDS)
"""Offsets inside one sender's intent slice, after the activity one-hot."""
(
    ECLIPSE_IN,
    ECLIPSE_FOR,
    EARTH_IN,
    EARTH_FOR,
    CONTACT_IN,
    CONTACT_FOR,
    CONTACT_BEST_RATE,
) = range(CRAFT_LOOKAHEAD_FIELDS)
"""Offsets of one spacecraft's lookahead (use with :meth:`ObservationLayout.lookahead_craft`)."""
WINDOW_IN, WINDOW_FOR = range(WINDOW_FIELDS)
"""Offsets of a window's start and length in the lookahead block."""
NO_WINDOW_IN = 1.0
"""``in`` of a window that does not start within the episode (its ``for`` is 0)."""
