"""The arguments every task shares: when episodes start, their steps, the stations, the channel.

Both tasks' configurations extend :class:`EpisodeConfig`. The field names (and so the YAML
keys) are the same in every task; each task sets its own defaults by declaring the field
again with its value, and keeps the docstring here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EpisodeConfig:
    """Timing, ground-station and message-channel arguments of a task (module notes)."""

    start: str
    """Earliest episode start (UTC)."""
    start_window_days: float
    """Each episode starts at a whole step drawn uniformly within this many days of ``start``."""
    step_seconds: float
    """Length of one decision step."""
    horizon_steps: int
    """Steps per episode."""
    substeps: int
    """Geometry samples per step (eclipses, occultation sweeps, the Sun for solar energy)."""
    message_buffer: int
    """Messages that may wait per link for a contact; more are rejected and counted."""
    stations: tuple[str, ...] = ("bear_lakes", "ussuriysk", "miyun")
    """Ground stations taking part, keys of ``constants.GROUND_STATIONS``."""
    elevation_mask_deg: float = 10.0
    """A station sees Mars only above this elevation."""
    message_loss: float = 0.0
    """Probability that the channel loses one message in flight."""

    def validate(self) -> None:
        """Raise ValueError naming the first shared field that cannot work."""
        from phobos.envs.physics.constants import GROUND_STATIONS

        if not self.stations:
            raise ValueError("stations: at least one ground station is needed")
        for key in self.stations:
            if key not in GROUND_STATIONS:
                raise ValueError(
                    f"stations: unknown station {key!r}; choose from {', '.join(GROUND_STATIONS)}"
                )
        for name in ("step_seconds", "horizon_steps", "substeps", "message_buffer"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.start_window_days >= 0:
            raise ValueError(f"start_window_days must be >= 0, got {self.start_window_days}")
        if not 0.0 <= self.message_loss <= 1.0:
            raise ValueError(f"message_loss must lie in [0, 1], got {self.message_loss}")
