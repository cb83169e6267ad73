"""Where each feature sits in an orbit-scheduling observation vector.

Every agent's observation has the same layout, so scripted policies, learned ones and the
dashboard read features by name through :class:`ObservationLayout` instead of magic indices.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ACTIONS = 7
"""Action count of a spacecraft; stations use the first three slots of a mask row."""

INTENT_FIELDS = MAX_ACTIONS + 4
"""Per sender: activity one-hot, battery, storage, age, received flag."""

SELF_FIELDS = 8


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
    """

    stations: int
    agents: int

    @property
    def shared(self) -> int:
        """Length of the shared block."""
        return 5 + self.stations

    @property
    def own(self) -> slice:
        """Slice of the own block."""
        return slice(self.shared, self.shared + SELF_FIELDS)

    @property
    def size(self) -> int:
        """Length of the whole vector."""
        return self.shared + SELF_FIELDS + self.agents * INTENT_FIELDS

    def station_sees_mars(self, station: int) -> int:
        """Index of a station's visibility flag."""
        return 5 + station

    def own_field(self, k: int) -> int:
        """Index of the ``k``-th value of the own block."""
        return self.shared + k

    def intent(self, sender: int) -> slice:
        """Slice of the intent block from agent number ``sender``."""
        begin = self.shared + SELF_FIELDS + sender * INTENT_FIELDS
        return slice(begin, begin + INTENT_FIELDS)


TIME, LIGHT_TIME, OCCULTATION_NOW, OCCULTATION_SOON, SPACECRAFT_LINK = range(5)
BATTERY, STORAGE, STORED_VALUE, SUNLIT, EARTH_VISIBLE, DAYSIDE, TARGET, DOWNLINK_RATE = range(8)
"""Own-block offsets for a spacecraft (use with :meth:`ObservationLayout.own_field`)."""
SEES_MARS, RATE_PHOBOS_GRUNT, RATE_YINGHUO1 = range(3)
"""Own-block offsets for a station."""
INTENT_BATTERY, INTENT_STORAGE, INTENT_AGE, INTENT_RECEIVED = range(MAX_ACTIONS, INTENT_FIELDS)
"""Offsets inside one sender's intent slice, after the activity one-hot."""
