"""The rollout teacher where the world is hidden: search over sites the lander believes in.

The orbit core is deterministic once drawn, so its teacher (:mod:`.rollout_teacher`) can try
each action in a copy of the true episode. On Phobos the site is hidden, and a search that
tried actions on the true site would teach the lander to dig where it cannot know the soil
is good. This teacher searches in imagined worlds instead: at each decision it draws
``samples`` sites from what the lander believes now
(:meth:`~phobos.envs.sampling.batch.PhobosSamplingBatch.believed_sites`: every cell's
material and composition from its posterior, the slope from its readings, the outcome draws
from their priors), tries each of a short list of candidate actions in every one of them
while the policy flies on to the episode's end, and keeps the candidate with the highest mean
return. Every candidate meets the same imagined sites and the same label draws (common random
numbers), so their differences are not drowned by the sites' spread. This is Bertsekas's
rollout over a belief state by determinisation (sampling the hidden state, as POMCP's root
sampling does); it improves on the base policy as far as the lander's belief is right.

Candidates for the lander: its policy's own action, waiting, sending, every area it may image,
the best cells by its own estimate to sample (``sample_cells``) and to confirm with the
spectrometer (``spectrum_cells``), and the first cell of the latest advice. The science team
follows the policy (its advice is searched only through what the lander does with it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phobos.training.rollout_teacher import TIE_MARGIN, TeacherEpisodes, TeamPolicy

LANDER = 0
"""The lander's index in the sampling task's agent order."""


def _fly_on(branch: Any, first: np.ndarray, policy: TeamPolicy, horizon: int, config: Any) -> Any:
    """Each copy's return over ``horizon`` steps: ``first``, then the policy (ended: ignored)."""
    observations, masks, reward, done, _ = branch.step(first)
    total = np.array(reward, dtype=np.float64)
    ended = done.copy()
    for _ in range(horizon - 1):
        if ended.all() or int(branch.step_index[0]) >= config.horizon_steps:
            break
        observations, masks, reward, done, _ = branch.step(policy(observations, masks))
        total += np.where(ended, 0.0, reward)
        ended |= done
    return total


class BeliefRolloutTeacher:
    """The search of the module notes over one sampling batch core.

    Args:
        core: A sampling batch core (``branch``, ``believed_sites``, ``imagine``).
        policy: The base team policy the search improves.
        samples: Imagined sites per decision.
        horizon: Steps each rollout flies at most (its first step included).
        min_gain: Mean return a candidate must add to the policy's own action to replace it.
        seed: Seeds the imagined sites and their label draws, with each episode's seed.
        sample_cells: Cells tried for sampling, best first by the lander's estimate.
        spectrum_cells: Cells tried for the spectrometer.

    """

    def __init__(
        self,
        core: Any,
        policy: TeamPolicy,
        samples: int,
        horizon: int,
        min_gain: float = TIE_MARGIN,
        seed: int = 0,
        sample_cells: int = 4,
        spectrum_cells: int = 2,
    ) -> None:
        if samples < 1:
            raise ValueError(f"rollout_samples must be at least 1, got {samples}")
        if horizon < 1:
            raise ValueError(f"rollout_horizon must be at least 1, got {horizon}")
        self.core, self.policy = core, policy
        self.samples, self.horizon, self.seed = samples, horizon, seed
        self.min_gain = max(min_gain, TIE_MARGIN)
        self.sample_cells, self.spectrum_cells = sample_cells, spectrum_cells
        self._episode_seeds: list[int] = []

    fly_policy = False
    """Whether :meth:`fly` steps the episodes with the policy's actions (not the search's)."""
    fill_untried = False
    """Whether an allowed lander action the search did not try gets the row's largest regret
    (else 0, which the expected-regret term would read as the best)."""

    # ------------------------------------------------------------------------- candidates
    def candidates(
        self, observations: np.ndarray, masks: np.ndarray, base: np.ndarray
    ) -> np.ndarray:
        """``[n, C]`` lander actions to try per episode (-1 pads; the policy's own first)."""
        from phobos.envs.sampling.layout import ADVICE_RANK, HAZARD, PROBABLE_VALUE, SPECTRUM

        core = self.core
        layout, config = core.layout, core.config
        n = len(observations)
        mask = masks[:, LANDER] == 1
        cells = observations[:, LANDER, layout.header :].reshape(n, layout.cells, -1)
        extra = layout.classes + layout.materials
        value = cells[..., extra + PROBABLE_VALUE].astype(np.float64)
        value *= max(config.site.composition_value)
        hazard = cells[..., extra + HAZARD].astype(np.float64)
        net = value * (1.0 - hazard) - config.failure_penalty * hazard
        sample0, spectrum0 = layout.sample(0), layout.spectrometer(0)
        columns = [base[:, LANDER], np.zeros(n, np.int64), np.ones(n, np.int64)]
        columns += [np.full(n, layout.image(a)) for a in range(layout.areas)]
        by_value = np.argsort(-np.where(mask[:, sample0:], net, -np.inf), axis=1, kind="stable")
        columns += [sample0 + by_value[:, k] for k in range(self.sample_cells)]
        unconfirmed = mask[:, spectrum0 : spectrum0 + layout.cells]
        unconfirmed &= cells[..., extra + SPECTRUM] == 0
        by_value = np.argsort(-np.where(unconfirmed, net, -np.inf), axis=1, kind="stable")
        columns += [spectrum0 + by_value[:, k] for k in range(self.spectrum_cells)]
        advised = cells[..., extra + ADVICE_RANK].argmax(axis=1)
        columns.append(sample0 + advised)
        table = np.stack(columns, axis=1)
        allowed = np.take_along_axis(mask, table, axis=1)
        # A repeated action is tried once: keep its first column.
        repeated = np.zeros_like(allowed)
        for j in range(1, table.shape[1]):
            repeated[:, j] = (table[:, :j] == table[:, j : j + 1]).any(axis=1)
        return np.where(allowed & ~repeated, table, -1)

    # ----------------------------------------------------------------------------- search
    def improve(
        self, observations: np.ndarray, masks: np.ndarray, live: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        """The teacher's joint actions ``[n, agents]`` from the core's present state.

        Args:
            observations: The core's observations now.
            masks: Its masks now.
            live: Episodes to search (all by default); the others get the policy's actions.

        Returns:
            The actions, the policy's own actions, and the regrets ``[n, agents, A]``.

        """
        base = np.array(self.policy(observations, masks), dtype=np.int64)
        actions = base.copy()
        regrets = np.zeros(masks.shape, dtype=np.float32)
        free = (masks[:, LANDER] == 1).sum(axis=1) > 1
        choosing = np.flatnonzero(free if live is None else free & live)
        if choosing.size == 0:
            return actions, base, regrets
        table = self.candidates(observations[choosing], masks[choosing], base[choosing])
        width = table.shape[1]
        value = self._values(choosing, table, base[choosing])  # [m, width]
        value[table < 0] = -np.inf
        tried = table >= 0
        regret = value.max(axis=1, keepdims=True) - np.where(tried, value, 0.0)
        if self.fill_untried:
            worst = regret.max(axis=1, where=tried, initial=0.0)
            regrets[choosing, LANDER] = np.where(masks[choosing, LANDER] == 1, worst[:, None], 0)
        rows = np.repeat(choosing, width)[tried.reshape(-1)]
        regrets[rows, LANDER, table[tried]] = regret[tried]
        value[:, 0] += self.min_gain  # column 0 is the policy's own action
        actions[choosing, LANDER] = table[np.arange(len(choosing)), value.argmax(axis=1)]
        return actions, base, regrets

    def _values(self, episodes: np.ndarray, table: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Mean return ``[m, C]`` of each candidate over the imagined sites."""
        m, width = table.shape
        k = self.samples
        step = int(self.core.step_index[episodes[0]])
        seeds = [self._episode_seeds[e] for e in episodes.tolist()]
        keys = [[self.seed, episode, step, j] for episode in seeds for j in range(k)]
        # K sites per episode, drawn once; every candidate meets the same ones (rows e, c, j).
        sites = self.core.branch(k, episodes).believed_sites(
            [np.random.default_rng(key + [0]) for key in keys]
        )
        rows = (np.arange(m)[:, None, None] * k + np.arange(k)[None, None, :]).repeat(width, 1)
        imagined = {name: values[rows.reshape(-1)] for name, values in sites.items()}
        labels = [np.random.default_rng(keys[r] + [1]) for r in rows.reshape(-1).tolist()]
        branch = self.core.branch(width * k, episodes)
        branch.imagine(imagined, labels)
        first = np.repeat(base, width * k, axis=0)
        first[:, LANDER] = np.repeat(np.maximum(table, 0).reshape(-1), k)
        total = _fly_on(branch, first, self.policy, self.horizon, self.core.config)
        return total.reshape(m, width, k).mean(axis=2)

    def fly(self, seeds: list[int]) -> TeacherEpisodes:
        """Whole episodes of the teacher from ``seeds`` (one per episode of the core)."""
        core = self.core
        observations, masks = core.reset(seeds)
        core.run_on = True  # episodes end at different steps; the ended ones are ignored
        self._episode_seeds = [int(s) for s in seeds]
        seen, allowed, chosen, rewards, regrets = [], [], [], [], []
        changed = decisions = 0
        ended = np.zeros(core.num_envs, dtype=bool)
        while not ended.all():
            live = np.flatnonzero(~ended)
            actions, base, regret = self.improve(observations, masks, ~ended)
            # Ended episodes neither search nor teach: their masks are zeroed below.
            changed += int((actions[live] != base[live]).sum())
            decisions += live.size * actions.shape[1]
            seen.append(observations)
            allowed.append(np.where(ended[:, None, None], 0, masks))
            chosen.append(actions)
            regrets.append(regret)
            observations, masks, reward, done, _ = core.step(base if self.fly_policy else actions)
            rewards.append(np.where(ended, 0.0, np.asarray(reward, dtype=np.float64)))
            ended |= done
        return TeacherEpisodes(
            np.stack(seen),
            np.stack(allowed).astype(np.int8),
            np.stack(chosen),
            np.stack(rewards),
            np.stack(regrets),
            changed / max(decisions, 1),
        )


class SiteRolloutTeacher(BeliefRolloutTeacher):
    """The same candidates, each tried once on the true site, on the policy's own states.

    A search on the true site picks by what the lander cannot know (the soil under a cell),
    so its choices are not the lander's to copy. Its regrets are, on average: over the states
    that look alike to the lander, the true sites are spread as its belief is, so the action
    whose regret is least on average is the one with the highest mean return under that
    belief, the belief teacher's answer without its K imagined sites per decision, each true
    site met once and the averaging left to the learning (``rollout_regret_weight``). Three
    things keep it from teaching clairvoyance: the episodes fly the policy's actions, so no
    state the policy learns on was reached knowing the site; the rows' cross-entropy labels
    are the policy's own actions unless a change gains ``min_gain``; and an allowed action not
    tried counts as the worst tried (``fill_untried``). Each copy draws its labels from a copy
    of its episode's generator (common random numbers across the candidates).

    Args:
        core: A sampling batch core (``branch``).
        policy: The base team policy.
        horizon: Steps each rollout flies at most.
        min_gain: Return a candidate must add on this one site to become the row's label.

    """

    fly_policy = True
    fill_untried = True

    def __init__(
        self, core: Any, policy: TeamPolicy, horizon: int, min_gain: float = TIE_MARGIN
    ) -> None:
        super().__init__(core, policy, 1, horizon, min_gain)

    def _values(self, episodes: np.ndarray, table: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Return ``[m, C]`` of each candidate on the true site, the policy flying on."""
        m, width = table.shape
        branch = self.core.branch(width, episodes)
        first = np.repeat(base, width, axis=0)
        first[:, LANDER] = np.maximum(table, 0).reshape(-1)
        return _fly_on(branch, first, self.policy, self.horizon, self.core.config).reshape(
            m, width
        )
