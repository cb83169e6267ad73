"""The informed lander: one observation at a time and over arrays it makes the same choices."""

from __future__ import annotations

import numpy as np

from phobos.agents.sampling_informed import InformedLander, InformedTeamArrays
from phobos.agents.sampling_policies import GreedyLander, ScienceTeam
from phobos.agents.teams import make_team
from phobos.envs import make, make_batch
from phobos.envs.sampling.layout import (
    ADVICE_RANK,
    ADVICE_RECEIVED,
    ADVICE_VALUE,
    BATTERY,
    CONTAINER,
    HAZARD,
    IMAGED,
    PROBABLE_VALUE,
    SPECTRUM,
    SUN,
    TIME,
)


def test_the_array_informed_team_chooses_as_the_informed_lander_and_science_team_do():
    n = 24
    core = make_batch("phobos-sampling-v0", n)
    config = core.config
    team, lander, science = InformedTeamArrays(config), InformedLander(config), ScienceTeam(config)
    observations, masks = core.reset(list(range(900, 900 + n)))
    core.run_on = True
    ended = np.zeros(n, dtype=bool)
    kinds: dict[str, int] = {}
    while not ended.all():
        actions = team(observations, masks)
        for i in np.flatnonzero(~ended):
            one = {"observations": observations[i, 0], "action_mask": masks[i, 0]}
            assert actions[i, 0] == lander.act(one)
            kind = core.layout.decode(int(actions[i, 0]))[0]
            kinds[kind] = kinds.get(kind, 0) + 1
            advice = masks[i, 1, : config.site.cells + 1]
            one = {"observations": observations[i, 1], "action_mask": advice}
            assert actions[i, 1] == science.act(one)
        observations, masks, _, done, _ = core.step(actions)
        ended |= done
    # It sends its data, and looks again: more images than one per area per episode.
    assert kinds.get("send", 0) >= n
    assert kinds["image"] > n * config.site.areas
    assert {"spectrometer", "sample", "wait"} <= set(kinds)


def test_the_informed_lander_samples_the_cell_the_ground_values_over_its_own_estimate():
    # Its own estimate favours cell 4; the ground ranks cell 9 first, and high.
    own = {"material": 1, "value": 0.9, "hazard": 0.0}
    lander, layout, observation = _two_cells(0.0, own, {"material": 1, "value": 0.2, "hazard": 0})
    extra = layout.classes + layout.materials
    vector = observation["observations"]
    cells = vector[layout.header :].reshape(layout.cells, layout.cell_size)
    cells[9, extra + ADVICE_RANK] = 1.0
    cells[9, extra + ADVICE_VALUE] = 1.0
    vector[layout.header :] = cells.reshape(-1)
    assert lander.act(observation) == layout.sample(9)
    cells[9, extra + SPECTRUM] = 1.0  # once a spectrum is taken, its own estimate rules again
    vector[layout.header :] = cells.reshape(-1)
    assert lander.act(observation) == layout.sample(4)


def _two_cells(fill: float, first: dict[str, float], second: dict[str, float]):
    """The informed lander and one observation where only cells 4 and 9 may be sampled."""
    env = make("phobos-sampling-v0")
    lander = make_team("informed", env)["phobos_grunt"]
    layout = lander._rule.layout
    extra = layout.classes + layout.materials
    observations, _ = env.reset(seed=3)
    vector = observations["phobos_grunt"]["observations"].copy()
    mask = np.zeros(layout.lander_actions, dtype=np.int8)
    mask[[layout.WAIT, layout.sample(4), layout.sample(9)]] = 1
    cells = vector[layout.header :].reshape(layout.cells, layout.cell_size)
    cells[:, extra:] = 0.0
    cells[:, extra + IMAGED] = 1.0
    cells[:, : layout.classes] = 0.0
    cells[:, 0] = 1.0  # sure of the class, so it does not confirm
    for cell, spec in ((4, first), (9, second)):
        cells[cell, layout.classes : extra] = 0.0
        cells[cell, layout.classes + int(spec["material"])] = 1.0
        cells[cell, extra + PROBABLE_VALUE] = spec["value"]
        cells[cell, extra + HAZARD] = spec["hazard"]
    vector[layout.header :] = cells.reshape(-1)
    vector[layout.own_field(ADVICE_RECEIVED)] = 1.0  # a ranking has arrived: no waiting
    vector[layout.own_field(CONTAINER)] = fill
    vector[SUN] = 1.0
    vector[layout.own_field(BATTERY)] = 1.0
    return lander, layout, {"observations": vector, "action_mask": mask}


def test_the_informed_lander_takes_the_scoop_that_fits_when_the_container_is_nearly_full():
    config = make("phobos-sampling-v0").config
    regolith, rock = (config.site.sample_mass_g[m] for m in (0, 2))
    assert regolith > rock
    # A rich regolith cell against a poorer rock chip, neither risky.
    heavy = {"material": 0, "value": 0.7, "hazard": 0.0}
    light = {"material": 2, "value": 0.4, "hazard": 0.0}
    lander, layout, empty = _two_cells(0.0, heavy, light)
    assert lander.act(empty) == layout.sample(4)
    # Room for the chip only: the regolith scoop would be stowed (and valued) in part.
    fill = 1.0 - rock / config.lander.container_g
    _, _, nearly_full = _two_cells(fill, heavy, light)
    assert lander.act(nearly_full) == layout.sample(9)
    assert GreedyLander(config).act(nearly_full) == layout.sample(4)


def test_the_informed_lander_weighs_what_a_damaged_sampler_forfeits():
    config = make("phobos-sampling-v0").config
    risky = {"material": 0, "value": 0.8, "hazard": 0.3}
    safe = {"material": 0, "value": 0.45, "hazard": 0.0}
    lander, layout, observation = _two_cells(0.0, risky, safe)
    # Net of the failure penalty alone the risky cell is better, as the greedy lander sees it.
    assert GreedyLander(config).act(observation) == layout.sample(4)
    assert lander.act(observation) == layout.sample(9)


def test_the_informed_lander_skips_the_spectrometer_when_the_clock_runs_short():
    config = make("phobos-sampling-v0").config
    cell = {"material": 1, "value": 0.6, "hazard": 0.0}
    lander, layout, observation = _two_cells(0.0, cell, {"material": 1, "value": 0.1, "hazard": 0})
    vector, mask = observation["observations"], observation["action_mask"]
    cells = vector[layout.header :].reshape(layout.cells, layout.cell_size)
    cells[4, : layout.classes] = 1.0 / layout.classes  # vague: worth a spectrum
    vector[layout.header :] = cells.reshape(-1)
    mask[layout.spectrometer(4)] = 1
    vector[TIME] = 0.1
    assert lander.act(observation) == layout.spectrometer(4)
    # Half the container still to fill and a tenth of the campaign left: sample it now.
    vector[layout.own_field(CONTAINER)] = 0.5
    vector[TIME] = 0.9
    assert lander.act(observation) == layout.sample(4)
    assert GreedyLander(config).act(observation) == layout.spectrometer(4)
