"""The informed lander: the greedy lander that gathers what it can learn before it digs.

The greedy lander (:class:`~phobos.agents.sampling_policies.GreedyLander`) images each area
once and then trusts its onboard classifier, which names a composition right 45% of the
time. Three cheaper sources of knowledge are in its reach, and :class:`InformedLander` uses
them, in this order:

1. **The ground.** Whenever it holds unsent data and has a link it sends it (one step); the
   science team's classifier is right 80% of the time from the same images, and the values
   of the cells its ranking names replace the lander's own for cells not yet confirmed by
   a spectrum. Until the first ranking arrives, early in the episode and while the link
   lasts, it waits for it rather than confirming or sampling.
2. **A second look.** Each image is a fresh draw for every cell of an area, the onboard and
   the ground classifier alike, so an area whose unsampled cells are still vague (their most
   likely class below :data:`VAGUE` on average) is imaged again while there is time.
3. **The spectrometer**, as the greedy lander spends it: on its best candidate when that is
   not already likely enough.

Its best candidate is also chosen knowing the container, which ends most campaigns (the greedy
lander's fills in 94% of episodes): a scoop bigger than the room left is worth only the share
that fits, each gram taken is priced at :data:`CONTAINER_PRICE`, and a failed attempt may
damage the sampler and forfeit the rest of the campaign (:data:`FORFEIT_VALUE`). And the clock:
late in the campaign it samples its best candidate without a spectrum
(:data:`SPECTRUM_TIME_FACTOR`).

It is a scripted peer, not a learned policy. On the validation seeds 800000-800199 it
returns 1.101x the greedy lander and on 800200-800399 1.063x (docs/benchmarks.md).
:class:`InformedTeamArrays` makes the same choices over a batch core's arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phobos.agents.policy import Policy
from phobos.agents.sampling_policies import (
    CONFIDENT,
    GreedyLander,
    GreedyTeamArrays,
    ScienceTeam,
)
from phobos.envs.sampling.config import SamplingConfig
from phobos.envs.sampling.layout import (
    ADVICE_RANK,
    ADVICE_RECEIVED,
    ADVICE_VALUE,
    CONTACT,
    CONTAINER,
    HAZARD,
    PROBABLE_VALUE,
    SAMPLED,
    SPECTRUM,
    TIME,
    UNSENT,
)

VAGUE = 0.6
"""Mean probability of the most likely class, over an area's unsampled cells, below which the
informed lander images the area again."""
LOOK_AGAIN_UNTIL = 0.7
"""Share of the episode after which it no longer images an area twice."""
WAIT_FOR_GROUND_UNTIL = 0.3
"""Share of the episode during which, linked and with no ranking yet, it waits for one."""
CONTAINER_PRICE = 0.03
"""Science value per gram of container room a scoop takes: the room a poor cell fills is room a
better one cannot have (an average stowed sample is worth about 0.11 a gram)."""
SPECTRUM_TIME_FACTOR = 2.75
"""The spectrometer is skipped once the steps left are fewer than this many times the steps that
sampling alone would take to fill the room left (in scoops of the site's mean mass): nights,
sends and waits take the rest."""
FORFEIT_VALUE = 40.0
"""What a damaged sampler forfeits with the container empty, scaled by the room left: the rest
of the campaign (about twice a full container of the greedy lander's samples, which also pays
for the time and energy it still has)."""


class _Informed:
    """The informed lander's rule over ``[env, ...]`` arrays (one row per lander)."""

    def __init__(self, greedy: GreedyTeamArrays) -> None:
        self.greedy = greedy
        self.layout = layout = greedy.layout
        self._extra = layout.classes + layout.materials
        self._areas = greedy._area_cells
        site = greedy.config.site
        self._mass_g = np.asarray(site.sample_mass_g, dtype=np.float64)
        self._mean_scoop_g = float(np.dot(site.material_prior, self._mass_g))

    def __call__(self, lander: np.ndarray, mask: np.ndarray, greedy: np.ndarray) -> np.ndarray:
        """The informed actions ``[n]`` given the greedy lander's ``greedy`` ones."""
        layout, extra, n = self.layout, self._extra, len(lander)
        rows = np.arange(n)
        cells = lander[:, layout.header :].reshape(n, layout.cells, layout.cell_size)
        sample0, spectrum0 = layout.sample(0), layout.spectrometer(0)
        # The greedy lander would confirm or sample: the informed one may learn more first.
        acting = (greedy >= spectrum0) & (greedy < sample0 + layout.cells)
        unconfirmed = cells[..., extra + SPECTRUM] == 0
        ranked = (cells[..., extra + ADVICE_RANK] > 0) & unconfirmed
        value = np.where(
            ranked, cells[..., extra + ADVICE_VALUE], cells[..., extra + PROBABLE_VALUE]
        ).astype(np.float64)
        hazard = cells[..., extra + HAZARD].astype(np.float64)
        config = self.greedy.config
        materials = cells[..., layout.classes : extra].astype(np.float64)
        mass = np.maximum(materials @ self._mass_g, 1e-9)
        room = config.lander.container_g * (1.0 - lander[:, layout.own_field(CONTAINER)])
        stowed = np.minimum(mass, room[:, None])
        # The env stows only what fits, and values the scoop by the share stowed.
        net = value * self.greedy._value_scale * (stowed / mass) * (1.0 - hazard)
        net -= config.failure_penalty * hazard
        net -= CONTAINER_PRICE * stowed * (1.0 - hazard)
        forfeit = FORFEIT_VALUE * config.site.damage_given_failure / config.lander.container_g
        net -= forfeit * room[:, None] * hazard
        best = np.where(mask[:, sample0 : sample0 + layout.cells], net, -np.inf).argmax(axis=1)
        probable = cells[..., : layout.classes].max(axis=2)
        confirm = (probable[rows, best] < CONFIDENT) & unconfirmed[rows, best]
        confirm &= mask[rows, spectrum0 + best]
        # Late, a spectrum's steps are better spent filling the container.
        steps_left = (1.0 - lander[:, TIME]) * config.horizon_steps
        steps_to_fill = room / self._mean_scoop_g * config.lander.sample_steps
        confirm &= steps_left >= SPECTRUM_TIME_FACTOR * steps_to_fill
        choice = np.where(confirm, spectrum0 + best, sample0 + best)
        # A second look at the vaguest area.
        unsampled = cells[..., extra + SAMPLED] == 0
        vagueness = np.stack(
            [_mean_where(probable[:, area], unsampled[:, area]) for area in self._areas], axis=1
        )
        first_image = layout.image(0) + np.arange(layout.areas)
        again = (vagueness < VAGUE) & mask[:, first_image]
        area = np.where(again, vagueness, np.inf).argmin(axis=1)
        again_now = again.any(axis=1) & (lander[:, TIME] < LOOK_AGAIN_UNTIL)
        choice = np.where(again_now, first_image[area], choice)
        # The ground: wait for its first ranking while linked, early on; send what is unsent.
        linked = lander[:, CONTACT] > 0
        no_ranking = lander[:, layout.own_field(ADVICE_RECEIVED)] == 0
        waiting = linked & no_ranking & (lander[:, TIME] < WAIT_FOR_GROUND_UNTIL)
        choice = np.where(waiting, layout.WAIT, choice)
        sending = (mask[:, layout.SEND] == 1) & (lander[:, layout.own_field(UNSENT)] > 0)
        choice = np.where(sending & linked, layout.SEND, choice)
        return np.where(acting, choice, greedy)


def _mean_where(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Row means of ``values`` over ``where`` (1 for rows with none)."""
    count = where.sum(axis=1)
    total = np.where(where, values, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 1.0)


class InformedLander(Policy):
    """The informed lander, one observation at a time (see the module docstring).

    Args:
        config: The task configuration.

    """

    def __init__(self, config: SamplingConfig) -> None:
        self.config = config
        self._greedy = GreedyLander(config)
        self._rule = _Informed(GreedyTeamArrays(config))

    def act(self, observation: dict[str, Any]) -> int:
        """Send, wait for the ground, look again, or confirm and sample as the greedy does."""
        greedy = self._greedy.act(observation)
        vector, mask = observation["observations"], observation["action_mask"]
        return int(self._rule(vector[None], mask[None] == 1, np.array([greedy]))[0])


class InformedTeamArrays(GreedyTeamArrays):
    """The informed lander and the scripted science team over a batch core's arrays.

    The choices :class:`InformedLander` and :class:`ScienceTeam` make one observation at a
    time, for ``[env, agent, ...]`` arrays: the teacher the lander's recipe clones.

    Args:
        config: The task configuration.

    """

    def __init__(self, config: SamplingConfig) -> None:
        super().__init__(config)
        self._rule = _Informed(self)

    def __call__(self, observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Actions ``[env, agent]`` of the informed lander and the science team."""
        actions = super().__call__(observations, masks)
        actions[:, 0] = self._rule(observations[:, 0], masks[:, 0] == 1, actions[:, 0])
        return actions


def informed_team(env: Any) -> dict[str, Policy]:
    """The task spec's ``informed`` team: the informed lander with the scripted science team."""
    return {"phobos_grunt": InformedLander(env.config), "science_team": ScienceTeam(env.config)}
