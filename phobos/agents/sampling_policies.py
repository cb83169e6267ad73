"""Scripted policies for the sampling task: the lander three ways, and the science team.

- :class:`GreedyLander` acts on its own estimates only, AEGIS-style: it images every area,
  ranks the cells by its onboard estimate of value net of the hazard, confirms the best with
  the spectrometer, and samples it if the confirmation holds. It never waits for the ground.
- :class:`CautiousLander` always waits for the ground: it images every area, sends the data
  in the next contact window, and samples only the cells of the latest ranking the science
  team sent, in its order; when none is left it reports and waits for a new ranking.
- :class:`OracleLander` reads the hidden site (values, compositions, failure probabilities)
  through the environment. It is an upper bound for evaluation, not a deployable policy.
- :class:`ScienceTeam` advises, whenever new data has reached Earth, the cell its better
  classifier rates highest; the environment adds the next best cells to the ranking.

All of them read observations by name through
:class:`~phobos.envs.sampling.layout.SamplingLayout`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phobos.agents.policy import Policy
from phobos.envs.sampling.config import MATERIALS, SamplingConfig
from phobos.envs.sampling.layout import (
    ADVICE_RANK,
    BATTERY,
    HAZARD,
    IMAGED,
    NEW_DATA,
    PROBABLE_VALUE,
    SPECTRUM,
    SUN,
    UNSENT,
    SamplingLayout,
)

NIGHT_RESERVE = 0.45
"""Battery fraction below which a lander starts nothing after sunset: the night's base load
must not run it flat (each flat step costs ``energy_violation_penalty``)."""
CONFIDENT = 0.85
"""Probability of the most likely class above which the greedy lander skips the spectrometer."""


def layout_of(config: SamplingConfig) -> SamplingLayout:
    """The observation and action layout of a sampling configuration."""
    site = config.site
    return SamplingLayout(site.cells, site.areas, len(site.compositions), len(MATERIALS))


class _SamplingPolicy(Policy):
    """Shared reading of a sampling observation (one agent's view)."""

    def __init__(self, config: SamplingConfig) -> None:
        self.config = config
        self.layout = layout = layout_of(config)
        self._extra = layout.classes + layout.materials
        self._value_scale = max(config.site.composition_value)

    def cells(self, vector: np.ndarray) -> np.ndarray:
        """``[cells, cell_size]`` view of the cell blocks."""
        layout = self.layout
        return vector[layout.header :].reshape(layout.cells, layout.cell_size)

    def field(self, cells: np.ndarray, k: int) -> np.ndarray:
        """Field ``k`` (after the probabilities) of every cell."""
        return cells[:, self._extra + k]

    def net_value(self, cells: np.ndarray) -> np.ndarray:
        """Expected value of sampling each cell, net of the failure risk, by these beliefs."""
        value = self.field(cells, PROBABLE_VALUE).astype(np.float64) * self._value_scale
        hazard = self.field(cells, HAZARD).astype(np.float64)
        return value * (1.0 - hazard) - self.config.failure_penalty * hazard

    def dark_and_low(self, vector: np.ndarray) -> bool:
        """Night has fallen and the battery must be kept for it."""
        layout = self.layout
        return bool(vector[SUN] <= 0.0 and vector[layout.own_field(BATTERY)] < NIGHT_RESERVE)

    def image_unseen(self, cells: np.ndarray, mask: np.ndarray) -> int | None:
        """The first area with an unimaged cell that may be imaged now, if any."""
        layout = self.layout
        imaged = self.field(cells, IMAGED)
        for area in range(layout.areas):
            action = layout.image(area)
            if mask[action] and self._area_unseen(area, imaged):
                return action
        return None

    def _area_unseen(self, area: int, imaged: np.ndarray) -> bool:
        k, cols = self.config.site.area_cells, self.config.site.cols
        per_row = cols // k
        top, left = (area // per_row) * k, (area % per_row) * k
        return any(
            imaged[r * cols + c] == 0 for r in range(top, top + k) for c in range(left, left + k)
        )


class GreedyLander(_SamplingPolicy):
    """Onboard target selection on the lander's own estimates (see the module docstring).

    Args:
        config: The task configuration.

    """

    def act(self, observation: dict[str, Any]) -> int:
        """Image, confirm the best candidate with the spectrometer, sample it."""
        vector, mask = observation["observations"], observation["action_mask"]
        layout = self.layout
        if mask.sum() <= 1 or self.dark_and_low(vector):
            return layout.WAIT
        cells = self.cells(vector)
        image = self.image_unseen(cells, mask)
        if image is not None:
            return image
        sampleable = mask[layout.sample(0) : layout.sample(0) + layout.cells] == 1
        if not sampleable.any():
            return layout.WAIT
        score = np.where(sampleable, self.net_value(cells), -np.inf)
        best = int(np.argmax(score))
        confident = cells[best, : layout.classes].max() >= CONFIDENT
        spectrum = layout.spectrometer(best)
        if not confident and self.field(cells, SPECTRUM)[best] == 0 and mask[spectrum]:
            return spectrum
        return layout.sample(best)


class CautiousLander(_SamplingPolicy):
    """Samples only what the ground advised (see the module docstring).

    Args:
        config: The task configuration.

    """

    def act(self, observation: dict[str, Any]) -> int:
        """Image, send, wait for the ranking, sample it in order."""
        vector, mask = observation["observations"], observation["action_mask"]
        layout = self.layout
        if mask.sum() <= 1:
            return layout.WAIT
        cells = self.cells(vector)
        image = self.image_unseen(cells, mask)
        if image is not None:
            return image
        if mask[layout.SEND] and vector[layout.own_field(UNSENT)] > 0:
            return layout.SEND
        if self.dark_and_low(vector):
            return layout.WAIT
        rank = self.field(cells, ADVICE_RANK)
        sampleable = mask[layout.sample(0) : layout.sample(0) + layout.cells] == 1
        advised = np.flatnonzero((rank > 0) & sampleable)
        if len(advised):
            return layout.sample(int(advised[np.argmax(rank[advised])]))
        return layout.WAIT


class OracleLander(_SamplingPolicy):
    """Samples the truly best cells, read from the environment's hidden site.

    An upper bound for evaluation: it knows every cell's value, composition and failure
    probability (not the draws that decide a given attempt) and which classes it has stowed.
    No lander could; never deploy it.

    Args:
        env: The ``PhobosSamplingEnv`` whose hidden state it reads at every step.

    """

    def __init__(self, env: Any) -> None:
        super().__init__(env.config)
        self.env = env

    def act(self, observation: dict[str, Any]) -> int:
        """Sample the cell with the best value net of its true risk, plus any new-class bonus."""
        vector, mask = observation["observations"], observation["action_mask"]
        layout = self.layout
        if mask.sum() <= 1 or self.dark_and_low(vector):
            return layout.WAIT
        site, config = self.env.site, self.config
        sampleable = mask[layout.sample(0) : layout.sample(0) + layout.cells] == 1
        if not sampleable.any():
            return layout.WAIT
        risk = site.failure_probability
        stowed = set(self.env.stowed_compositions)
        new_class = np.array([c not in stowed for c in site.composition.tolist()])
        gain = site.value + config.diversity_bonus * new_class
        score = gain * (1.0 - risk) - config.failure_penalty * risk
        return layout.sample(int(np.argmax(np.where(sampleable, score, -np.inf))))


class ScienceTeam(_SamplingPolicy):
    """Advises the best cell by the ground's classifier whenever new data has arrived.

    Args:
        config: The task configuration.

    """

    def act(self, observation: dict[str, Any]) -> int:
        """No advice, or advise the cell the ground rates best."""
        vector, mask = observation["observations"], observation["action_mask"]
        if vector[self.layout.own_field(NEW_DATA)] < 0.5:
            return 0
        advisable = mask[1:] == 1
        if not advisable.any():
            return 0
        score = np.where(advisable, self.net_value(self.cells(vector)), -np.inf)
        return 1 + int(np.argmax(score))


class GreedyTeamArrays(_SamplingPolicy):
    """The greedy lander and the scripted science team over a batch core's arrays.

    The same choices as :class:`GreedyLander` and :class:`ScienceTeam` make one observation
    at a time, for ``[env, agent, ...]`` observations and masks (agents in the task's
    order, masks padded to the lander's action count) in one pass: the base policy of the
    rollout teacher's experiments and tests, where thousands of imagined episodes step
    together.

    Args:
        config: The task configuration.

    """

    def act(self, observation: dict[str, Any]) -> int:
        """Not for one agent's observation: call the object on arrays."""
        raise TypeError("GreedyTeamArrays acts on [env, agent] arrays: call it")

    def __call__(self, observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Actions ``[env, agent]`` of the lander and the science team."""
        layout, n = self.layout, len(observations)
        rows = np.arange(n)
        lander, lander_mask = observations[:, 0], masks[:, 0] == 1
        cells = lander[:, layout.header :].reshape(n, layout.cells, layout.cell_size)
        extra = self._extra
        actions = np.zeros((n, 2), dtype=np.int64)
        # The lander: image the first unseen area, else confirm or sample the best cell.
        unseen = np.stack(
            [(cells[:, area, extra + IMAGED] == 0).any(axis=1) for area in self._area_cells],
            axis=1,
        )
        first_image = 2 + np.arange(layout.areas)
        can_image = unseen & lander_mask[:, first_image]
        sample0 = layout.sample(0)
        sampleable = lander_mask[:, sample0 : sample0 + layout.cells]
        score = np.where(sampleable, self._net_values(cells), -np.inf)
        best = score.argmax(axis=1)
        confident = cells[rows, best, : layout.classes].max(axis=1) >= CONFIDENT
        spectrum = layout.spectrometer(0) + best
        confirm = ~confident & (cells[rows, best, extra + SPECTRUM] == 0)
        confirm &= lander_mask[rows, spectrum]
        choice = np.where(confirm, spectrum, sample0 + best)
        choice = np.where(sampleable.any(axis=1), choice, layout.WAIT)
        choice = np.where(can_image.any(axis=1), first_image[can_image.argmax(axis=1)], choice)
        dark = (lander[:, SUN] <= 0.0) & (lander[:, layout.own_field(BATTERY)] < NIGHT_RESERVE)
        idle = (lander_mask.sum(axis=1) <= 1) | dark
        actions[:, 0] = np.where(idle, layout.WAIT, choice)
        # The science team: advise its best cell when new data has come.
        team, team_mask = observations[:, 1], masks[:, 1, 1 : 1 + layout.cells] == 1
        team_cells = team[:, layout.header :].reshape(n, layout.cells, layout.cell_size)
        advice = np.where(team_mask, self._net_values(team_cells), -np.inf).argmax(axis=1)
        fresh = (team[:, layout.own_field(NEW_DATA)] >= 0.5) & team_mask.any(axis=1)
        actions[:, 1] = np.where(fresh, 1 + advice, 0)
        return actions

    @property
    def _area_cells(self) -> list[np.ndarray]:
        from phobos.envs.sampling.site import area_cells

        return area_cells(self.config.site)

    def _net_values(self, cells: np.ndarray) -> np.ndarray:
        extra = self._extra
        value = cells[..., extra + PROBABLE_VALUE].astype(np.float64) * self._value_scale
        hazard = cells[..., extra + HAZARD].astype(np.float64)
        return value * (1.0 - hazard) - self.config.failure_penalty * hazard


def sampling_team(name: str, env: Any) -> dict[str, Policy]:
    """The ``greedy``, ``cautious`` or ``oracle`` lander with the scripted science team."""
    config: SamplingConfig = env.config
    landers = {
        "greedy": lambda: GreedyLander(config),
        "cautious": lambda: CautiousLander(config),
        "oracle": lambda: OracleLander(env),
    }
    if name not in landers:
        raise ValueError(f"unknown sampling team {name!r}; choose from {', '.join(landers)}")
    return {"phobos_grunt": landers[name](), "science_team": ScienceTeam(config)}


def greedy_team(env: Any) -> dict[str, Policy]:
    """The task spec's ``greedy`` team: the onboard lander with the scripted science team."""
    return sampling_team("greedy", env)


def cautious_team(env: Any) -> dict[str, Policy]:
    """The task spec's ``cautious`` team: the lander that samples only what was advised."""
    return sampling_team("cautious", env)


def oracle_team(env: Any) -> dict[str, Policy]:
    """The task spec's ``oracle`` team: the lander that reads the hidden site (a bound)."""
    return sampling_team("oracle", env)
