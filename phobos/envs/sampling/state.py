"""The two agents' changing state in a sampling episode, and their own features and masks.

:class:`LanderState` is what Phobos-Grunt knows and holds (battery, container, the activity
under way, its beliefs, data not yet sent, the latest advice); :class:`TeamState` is what the
science team has learnt from the data that reached Earth. Each writes its agent's own block
and cell flags into the observation and keeps its action mask current; the environment only
moves data between them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phobos.comms.message import Message
from phobos.envs.sampling.belief import Belief
from phobos.envs.sampling.config import LanderConfig, SamplingConfig
from phobos.envs.sampling.layout import (
    ADVICE_RANK,
    ADVICE_VALUE,
    IMAGED,
    SAMPLED,
    SPECTRUM,
    SamplingLayout,
)
from phobos.envs.sampling.site import reachable_cells

KINDS = ("wait", "send", "image", "spectrometer", "sample")
"""The lander's activities; the constants below index them."""
WAIT, SEND, IMAGE, SPECTROMETER, SAMPLE = range(len(KINDS))


def activity_costs(lander: LanderConfig) -> tuple[list[int], list[float]]:
    """Steps each activity takes and its load on top of the base load (W), in KINDS order."""
    steps = [1, lander.send_steps, lander.image_steps, lander.spectrometer_steps]
    loads = [0.0, lander.send_load_w, lander.image_load_w, lander.spectrometer_load_w]
    return steps + [lander.sample_steps], loads + [lander.sample_load_w]


def activity_needs_wh(config: SamplingConfig) -> list[float]:
    """Energy each activity needs from the battery, ignoring the Sun: the mask's test."""
    lander = config.lander
    steps_of, load_w = activity_costs(lander)
    return [
        (lander.base_load_w + load) * config.step_seconds / 3600.0 * steps
        for steps, load in zip(steps_of, load_w, strict=True)
    ]


def step_battery(
    battery_wh: float, solar_wh: float, load_w: float, config: SamplingConfig
) -> tuple[float, bool]:
    """The battery after one step, and whether the step ended with it flat.

    One function for the environment's energy step and the lander process's data message
    (whose status reports the battery at the step's end), so both give the same float.

    Args:
        battery_wh: Charge at the step's start.
        solar_wh: What the solar array delivers over the step.
        load_w: The activity's load on top of the base load.
        config: The task configuration.

    """
    lander = config.lander
    battery = battery_wh + solar_wh - (lander.base_load_w + load_w) * config.step_seconds / 3600.0
    return min(max(battery, 0.0), lander.battery_wh), battery < 0.0


class LanderState:
    """Phobos-Grunt's state on the surface.

    Args:
        config: The task configuration.
        layout: The observation and action layout.
        block: ``[cells, cell_size]`` view of the lander's observation cell blocks.
        start_battery: Battery fraction at landing.

    """

    def __init__(
        self,
        config: SamplingConfig,
        layout: SamplingLayout,
        block: np.ndarray,
        start_battery: float,
    ) -> None:
        lander = config.lander
        self.config, self.layout, self.block = config, layout, block
        self.belief: Belief | None = None
        self.capacity_wh = lander.battery_wh
        self.battery_wh = start_battery * lander.battery_wh
        self.container_g = 0.0
        self.busy_left, self.activity, self.target = 0, WAIT, 0
        self.sampler_ok = True
        self.stowed_classes: set[int] = set()
        self.stowed: list[tuple[int, int, float, float]] = []
        self.advice_rank: dict[int, int] = {}
        self.advice_seq, self.advice_step = -1, -1
        self._images: list[tuple[list[int], list[int], list[int], list[float]]] = []
        self._spectra: list[tuple[int, int]] = []
        self._attempted_unsent: list[int] = []
        self._unsent_cells: set[int] = set()
        self._cell_ok = reachable_cells(config.site).astype(np.int8)
        self._extra = layout.classes + layout.materials
        self._longest = max(activity_costs(lander)[0])
        self._need = activity_needs_wh(config)
        self._busy_mask = np.zeros(layout.lander_actions, dtype=np.int8)
        self._busy_mask[0] = 1
        self.mask = self._busy_mask
        self.totals: dict[str, Any] = {
            "sample_value": 0.0,
            "diversity_bonus": 0.0,
            "samples": 0,
            "sample_mass_g": 0.0,
            "failures": 0,
            "failure_penalty": 0.0,
            "decisions_without_ground": 0,
            "samples_with_advice": 0,
            "energy_violations": 0,
            "masked_actions": 0,
            "data_messages": 0,
            "advice_messages": 0,
        }

    @property
    def room_g(self) -> float:
        """Room left in the container."""
        return self.config.lander.container_g - self.container_g

    @property
    def sealed(self) -> bool:
        """The container is too full for another sample."""
        return self.room_g < self.config.lander.min_sample_g

    def start(self, kind: int, target: int, steps: int) -> None:
        """Begin an activity lasting ``steps`` steps."""
        self.activity, self.target, self.busy_left = kind, target, steps

    def count_decision(self, cell: int) -> None:
        """Count a sampling decision as taken with or without the ground's advice on ``cell``."""
        key = "samples_with_advice" if cell in self.advice_rank else "decisions_without_ground"
        self.totals[key] += 1

    def record_image(
        self, cells: np.ndarray, material: np.ndarray, ground: np.ndarray, slope: np.ndarray
    ) -> None:
        """Keep an image's data (as the ground will read it) until the next transmission."""
        self._images.append((cells.tolist(), material.tolist(), ground.tolist(), slope.tolist()))
        self._unsent_cells.update(self._images[-1][0])

    def record_spectrum(self, cell: int, label: int) -> None:
        """Keep a spectrum until the next transmission."""
        self._spectra.append((cell, label))
        self._unsent_cells.add(cell)

    def mark_attempted(self, cell: int) -> None:
        """A sampling attempt disturbed ``cell``: no second attempt, no more spectra of it."""
        self._cell_ok[cell] = 0
        self.block[cell, self._extra + SAMPLED] = 1.0
        self._attempted_unsent.append(cell)
        self._unsent_cells.add(cell)

    def record_failure(self, damaged: bool) -> None:
        """Count a failed attempt; a damaged sampler ends the campaign."""
        self.totals["failures"] += 1
        self.totals["failure_penalty"] += self.config.failure_penalty
        if damaged:
            self.sampler_ok = False

    def stow(self, cell: int, composition: int, mass: float, value: float) -> bool:
        """Stow a sample; return whether its class is new in the container."""
        new_class = composition not in self.stowed_classes
        self.stowed_classes.add(composition)
        self.stowed.append((cell, composition, mass, value))
        self.container_g += mass
        totals = self.totals
        totals["samples"] += 1
        totals["sample_value"] += value
        totals["sample_mass_g"] += mass
        if new_class:
            totals["diversity_bonus"] += self.config.diversity_bonus
        return new_class

    def target_fraction(self, target: np.ndarray) -> float:
        """Share of the stowed samples whose class is a target class (0 when none)."""
        if not self.stowed:
            return 0.0
        return sum(bool(target[c]) for _, c, _, _ in self.stowed) / len(self.stowed)

    def onboard(self) -> dict[str, Any]:
        """What the lander's own instruments and housekeeping hold now (its sensing).

        The records of its instruments not yet transmitted (images as the ground will read
        them, spectra, the cells its arm disturbed), its battery gauge and container, and the
        activity under way: what a lander process needs to build its data message with the
        task's rule (:mod:`phobos.envs.sampling.messages`), exactly as the environment does.
        """
        return {
            "images": self._images,
            "spectra": self._spectra,
            "attempted": self._attempted_unsent,
            "battery_wh": self.battery_wh,
            "container_g": self.container_g,
            "classes": len(self.stowed_classes),
            "sampler_ok": self.sampler_ok,
            "busy_left": self.busy_left,
            "activity": self.activity,
        }

    def clear_sent(self) -> None:
        """The unsent records went out with a data message: start new ones."""
        self._images, self._spectra, self._attempted_unsent = [], [], []
        self._unsent_cells = set()

    def receive_advice(self, message: Message, step_seconds: float) -> None:
        """Adopt an arrived ranking unless a newer one came first."""
        if message.seq <= self.advice_seq:
            return
        self.advice_seq = message.seq
        self.advice_step = round(message.send_time / step_seconds)
        ranking, values = message.payload["ranking"], message.payload["values"]
        rank_col, value_col = self._extra + ADVICE_RANK, self._extra + ADVICE_VALUE
        self.block[:, rank_col] = 0.0
        self.block[:, value_col] = 0.0
        scale = self.belief.value_scale
        for r, (cell, value) in enumerate(zip(ranking, values, strict=True)):
            self.block[cell, rank_col] = 1.0 - r / len(ranking)
            self.block[cell, value_col] = min(max(value / scale, 0.0), 1.0)
        self.advice_rank = {cell: r for r, cell in enumerate(ranking)}

    def write(self, row: np.ndarray, step: int, contact: bool, image_ok: bool) -> np.ndarray:
        """Write the own block into observation ``row``; return the new action mask."""
        config, layout = self.config, self.layout
        horizon = config.horizon_steps
        own = layout.own_field(0)
        row[own : own + 8] = (
            self.battery_wh / self.capacity_wh,
            min(self.container_g / config.lander.container_g, 1.0),
            self.busy_left / self._longest,
            len(self._unsent_cells) / layout.cells,
            self.advice_seq >= 0,
            min((step - self.advice_step) / horizon, 1.0) if self.advice_seq >= 0 else 1.0,
            len(self.stowed_classes) / layout.classes,
            self.sampler_ok,
        )
        if self.busy_left:
            self.mask = self._busy_mask.copy()
            return self.mask
        battery, need = self.battery_wh, self._need
        mask = np.zeros(layout.lander_actions, dtype=np.int8)
        mask[0] = 1
        mask[1] = contact and bool(self._unsent_cells) and battery >= need[SEND]
        areas, cells = layout.areas, layout.cells
        if image_ok and battery >= need[IMAGE]:
            mask[2 : 2 + areas] = 1
        if battery >= need[SPECTROMETER]:
            mask[2 + areas : 2 + areas + cells] = self._cell_ok
        if self.sampler_ok and not self.sealed and battery >= need[SAMPLE]:
            mask[2 + areas + cells :] = self._cell_ok
        self.mask = mask
        return mask.copy()


class TeamState:
    """What the science team knows: the data that has reached Earth, and its own advice.

    Args:
        config: The task configuration.
        layout: The observation and action layout.
        block: ``[cells, cell_size]`` view of the team's observation cell blocks.

    """

    def __init__(self, config: SamplingConfig, layout: SamplingLayout, block: np.ndarray) -> None:
        self.config, self.layout, self.block = config, layout, block
        self.belief: Belief | None = None
        self.reported = [0.0, 0.0, 0.0, 1.0]  # battery, container, classes share, sampler ok
        self.data_step = -1
        self.new_data = False
        self.advised = False
        self.known_attempted = np.zeros(layout.cells, dtype=bool)
        self._extra = layout.classes + layout.materials
        self._data_seq = -1
        self.mask = np.zeros(layout.team_actions, dtype=np.int8)
        self.mask[0] = 1

    def receive_data(
        self,
        message: Message,
        step: int,
        log_material: np.ndarray,
        log_ground: np.ndarray,
        log_spectrum: np.ndarray,
    ) -> None:
        """Classify an arrived data message with the ground's classifier."""
        report = message.payload
        belief = self.belief
        for cells, material, ground, slope in report["images"]:
            index = np.asarray(cells)
            belief.add_image(
                index, log_material[material], log_ground[ground], np.asarray(slope, dtype=float)
            )
        for cell, label in report["spectra"]:
            belief.add_spectrum(cell, log_spectrum[label])
        for cell in report["attempted"]:
            self.known_attempted[cell] = True
            self.block[cell, self._extra + SAMPLED] = 1.0
        if message.seq > self._data_seq:  # a late, older status must not overwrite a newer one
            self._data_seq = message.seq
            self.reported = [
                report["battery"],
                report["container"],
                report["classes"] / self.layout.classes,
                float(report["sampler_ok"]),
            ]
        self.data_step = step
        self.new_data = True
        measured = (self.block[:, self._extra + IMAGED] > 0) | (
            self.block[:, self._extra + SPECTRUM] > 0
        )
        self.mask[1:] = measured & ~self.known_attempted

    def ranking(self, first: int) -> tuple[list[int], list[float]]:
        """``first``, then the ground's next best cells by expected value net of the hazard."""
        belief = self.belief
        value, hazard = belief.expected_value(), belief.hazard()
        score = value * (1.0 - hazard) - self.config.failure_penalty * hazard
        score = np.where(self.mask[1:] == 1, score, -np.inf)
        score[first] = -np.inf
        order = np.argsort(-score, kind="stable")[: self.config.advice_length - 1]
        ranking = [first] + [int(c) for c in order if np.isfinite(score[c])]
        return ranking, [float(value[c]) for c in ranking]

    def advise(self, cell: int) -> dict[str, list]:
        """Build an advice message's payload and mark it as this team's latest advice."""
        ranking, values = self.ranking(cell)
        rank_col, value_col = self._extra + ADVICE_RANK, self._extra + ADVICE_VALUE
        self.block[:, rank_col] = 0.0
        self.block[:, value_col] = 0.0
        scale = self.belief.value_scale
        for r, (c, v) in enumerate(zip(ranking, values, strict=True)):
            self.block[c, rank_col] = 1.0 - r / len(ranking)
            self.block[c, value_col] = min(max(v / scale, 0.0), 1.0)
        self.advised = True
        self.new_data = False
        return {"ranking": ranking, "values": values}

    def write(self, row: np.ndarray, step: int) -> np.ndarray:
        """Write the own block into observation ``row``; return the action mask."""
        own = self.layout.own_field(0)
        battery, container, classes, sampler_ok = self.reported
        age = (
            min((step - self.data_step) / self.config.horizon_steps, 1.0)
            if self.data_step >= 0
            else 1.0
        )
        row[own : own + 8] = (
            battery,
            container,
            self.data_step >= 0,
            age,
            self.new_data,
            self.advised,
            classes,
            sampler_ok,
        )
        return self.mask.copy()
