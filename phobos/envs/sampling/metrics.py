"""Evaluation metrics of one ``phobos-sampling`` episode.

``sample_value``, ``diversity_bonus``, ``failure_penalty`` (parts of the team return) and
``energy_penalty``; ``samples``, ``sample_mass_g``, ``classes_stowed`` (diversity),
``failures``, ``decisions_without_ground``, ``samples_with_advice``, ``energy_violations``.
Evaluation's rollout adds the metrics every task shares.
"""

from __future__ import annotations

from typing import Any

from phobos.envs.task import EpisodeMetrics

RETURN_PARTS = ("sample_value", "diversity_bonus", "failure_penalty")
COUNTS = (
    "samples",
    "sample_mass_g",
    "classes_stowed",
    "failures",
    "decisions_without_ground",
    "samples_with_advice",
    "energy_violations",
)


class SamplingMetrics(EpisodeMetrics):
    """The episode summary's parts and counts, and the summed energy penalty."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.energy_penalty = 0.0

    def step(
        self,
        before: dict[str, Any],
        after: dict[str, Any],
        infos: dict[str, dict[str, Any]],
    ) -> None:
        """Sum the energy penalty."""
        self.energy_penalty += float(next(iter(infos.values())).get("energy_penalty", 0.0))

    def result(self, summary: dict[str, Any]) -> dict[str, float]:
        """The task's metrics, in the report's order."""
        metrics = {key: float(summary[key]) for key in RETURN_PARTS}
        metrics["energy_penalty"] = self.energy_penalty
        metrics.update({key: float(summary[key]) for key in COUNTS})
        return metrics
