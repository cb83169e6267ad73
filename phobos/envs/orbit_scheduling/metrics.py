"""Evaluation metrics of one ``orbit-scheduling`` episode (every version).

``science`` and ``occultation`` (value delivered to Earth, the parts of the team return),
``energy_penalty``; ``occultations`` (joint occultations completed), ``data_volume_mbit``
(bits the spacecraft downlinked to a tracking station, read from the storage fractions the
spacecraft observe around each downlink step), ``energy_violations``, ``storage_violations``
(spacecraft-steps ending with less free memory than the spacecraft's largest observation
needs, so that observation is masked). Evaluation's rollout adds the metrics every task shares.
"""

from __future__ import annotations

from typing import Any

from phobos.envs.orbit_scheduling.config import DOWNLINK, SPACECRAFT
from phobos.envs.orbit_scheduling.layout import STORAGE
from phobos.envs.task import EpisodeMetrics


class OrbitMetrics(EpisodeMetrics):
    """Downlinked volume and full-storage steps from the observations; the rest from the summary."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.energy_penalty = 0.0
        self.downlinked_bits = 0.0
        self.full = 0
        self._column = env.layout.own_field(STORAGE)

    def step(
        self,
        before: dict[str, Any],
        after: dict[str, Any],
        infos: dict[str, dict[str, Any]],
    ) -> None:
        """Sum the energy penalty; measure downlinks and full storage of each spacecraft."""
        self.energy_penalty += float(next(iter(infos.values())).get("energy_penalty", 0.0))
        column = self._column
        for craft in SPACECRAFT:
            config = getattr(self.env.config, craft)
            capacity = config.storage_mbit * 1e6
            # A downlink step adds no data of its own (data_mbit[downlink] is 0 in every
            # shipped config), so the fall in stored bits is what was sent.
            if infos[craft]["executed_action"] == DOWNLINK:
                fall = float(
                    before[craft]["observations"][column] - after[craft]["observations"][column]
                )
                self.downlinked_bits += max(fall, 0.0) * capacity
            room = (1.0 - float(after[craft]["observations"][column])) * capacity
            if room < max(config.data_mbit) * 1e6 * (1.0 - 1e-9):
                self.full += 1

    def result(self, summary: dict[str, Any]) -> dict[str, float]:
        """The task's metrics, in the report's order."""
        return {
            "science": float(summary["science"]),
            "occultation": float(summary["occultation"]),
            "energy_penalty": self.energy_penalty,
            "occultations": float(summary["occultations"]),
            "data_volume_mbit": self.downlinked_bits / 1e6,
            "energy_violations": float(summary["energy_violations"]),
            "storage_violations": float(self.full),
        }
