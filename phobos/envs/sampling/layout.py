"""Where each feature sits in a sampling observation, and what each action index means.

Both agents' observations share one layout, so scripted policies, learned ones and the
dashboard read features by name through :class:`SamplingLayout` instead of magic indices.
Every value lies in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

SHARED_FIELDS = 6
OWN_FIELDS = 8
CELL_EXTRA_FIELDS = 9
"""Per-cell fields after the class and material probabilities."""

LIGHT_TIME_SCALE = 1400.0
"""Light times are observed as a fraction of this (above the 1,338 s maximum)."""
SLOPE_SCALE_DEG = 45.0
"""Slopes are observed as a fraction of this (the steepest a site holds)."""

TIME, SUN, EARTH_VISIBLE, CONTACT, NEXT_CONTACT, LIGHT_TIME = range(SHARED_FIELDS)
"""Shared block: episode fraction, sine of the Sun's elevation (0 below the horizon), Earth
above the lander's antenna mask and not behind Mars, a link exists now, steps until the next
contact (/ horizon; 1 when none comes), light time."""

BATTERY, CONTAINER, BUSY, UNSENT, ADVICE_RECEIVED, ADVICE_AGE, CLASSES_STOWED, SAMPLER_OK = range(
    OWN_FIELDS
)
"""Own block of the lander: battery fraction, container fill fraction, steps left of the
current activity (/ the longest), share of cells with data not yet sent, whether any advice
has arrived, the latest advice's age (/ horizon; 1 when none), share of composition classes
stowed, the sampler works."""

(
    REPORTED_BATTERY,
    REPORTED_CONTAINER,
    DATA_RECEIVED,
    DATA_AGE,
    NEW_DATA,
    ADVICE_SENT,
    REPORTED_CLASSES,
    REPORTED_SAMPLER_OK,
) = range(OWN_FIELDS)
"""Own block of the science team: the lander's battery and container as last reported, whether
any data has arrived, the latest data's age (/ horizon; 1 when none), data arrived since the
team's last advice, whether it has advised, and the stowed classes and sampler state as last
reported."""

PROBABLE_VALUE, HAZARD, SLOPE, IMAGED, SPECTRUM, SAMPLED, REACHABLE, ADVICE_RANK, ADVICE_VALUE = (
    range(CELL_EXTRA_FIELDS)
)
"""Per-cell fields after the probabilities (offsets for :meth:`SamplingLayout.cell_field`):
expected science value by the observer's own classifier (/ the highest class value), expected
failure probability, measured slope (/ 45 deg), imaged (the team: image data received),
spectrum taken (received), sampling attempted (as reported), the arm reaches it, rank score in
the latest advice (1 for the first cell, 0 when unranked), the ground's expected value quoted in
that advice (/ the highest class value)."""


@dataclass(frozen=True)
class SamplingLayout:
    """Index map of an observation vector and of the lander's actions.

    Observation: the shared block (``SHARED_FIELDS``), the agent's own block
    (``OWN_FIELDS``), then one block per cell: the observer's class probabilities
    (``classes``), its material probabilities (``materials``), and the fields named by
    ``PROBABLE_VALUE`` ... ``ADVICE_VALUE``. The lander's cell blocks hold its onboard
    beliefs; the science team's hold what it concluded from the data that reached Earth.

    Lander actions (``Discrete(lander_actions)``): 0 wait, 1 send data, then one "image area"
    per area, one "spectrometer on cell" per cell, one "sample cell" per cell. Science team
    (``Discrete(1 + cells)``): 0 no advice, then "advise cell" per cell.
    """

    cells: int
    areas: int
    classes: int
    materials: int

    @property
    def cell_size(self) -> int:
        """Fields per cell."""
        return self.classes + self.materials + CELL_EXTRA_FIELDS

    @property
    def header(self) -> int:
        """Length of the shared and own blocks."""
        return SHARED_FIELDS + OWN_FIELDS

    @property
    def size(self) -> int:
        """Length of the whole vector."""
        return self.header + self.cells * self.cell_size

    def own_field(self, k: int) -> int:
        """Index of the ``k``-th value of the own block."""
        return SHARED_FIELDS + k

    def cell(self, c: int) -> slice:
        """Slice of cell ``c``'s block."""
        begin = self.header + c * self.cell_size
        return slice(begin, begin + self.cell_size)

    def cell_field(self, c: int, k: int) -> int:
        """Index of field ``k`` (after the probabilities) of cell ``c``."""
        return self.header + c * self.cell_size + self.classes + self.materials + k

    # Lander actions.
    WAIT = 0
    SEND = 1

    def image(self, area: int) -> int:
        """Action that images ``area``."""
        return 2 + area

    def spectrometer(self, cell: int) -> int:
        """Action that runs the spectrometer on ``cell``."""
        return 2 + self.areas + cell

    def sample(self, cell: int) -> int:
        """Action that samples ``cell`` and stows what the arm collects."""
        return 2 + self.areas + self.cells + cell

    @property
    def lander_actions(self) -> int:
        """Size of the lander's action space."""
        return 2 + self.areas + 2 * self.cells

    @property
    def team_actions(self) -> int:
        """Size of the science team's action space."""
        return 1 + self.cells

    def decode(self, action: int) -> tuple[str, int]:
        """``(kind, target)`` of a lander action.

        Kind is wait, send, image, spectrometer or sample; target the area or cell (0 for
        wait and send).
        """
        if action < 2:
            return ("wait", "send")[action], 0
        action -= 2
        if action < self.areas:
            return "image", action
        action -= self.areas
        if action < self.cells:
            return "spectrometer", action
        return "sample", action - self.cells

    def describe_lander_actions(self) -> str:
        """The lander's action ranges in words (for error messages)."""
        a, c = self.areas, self.cells
        return (
            f"0=wait, 1=send_data, 2..{1 + a}=image area 0..{a - 1}, "
            f"{2 + a}..{1 + a + c}=spectrometer cell 0..{c - 1}, "
            f"{2 + a + c}..{1 + a + 2 * c}=sample cell 0..{c - 1}"
        )

    def describe_team_actions(self) -> str:
        """The science team's action ranges in words."""
        return f"0=no_advice, 1..{self.cells}=advise cell 0..{self.cells - 1}"
