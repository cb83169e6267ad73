"""The Phobos sampling task, stepping many episodes at once in numpy arrays.

:class:`PhobosSamplingBatch` runs ``num_envs`` episodes of ``phobos-sampling-v0`` in lock-step
for training: the same rules as :class:`~phobos.envs.sampling.env.PhobosSamplingEnv`, so that
a seeded batch of one equals the ``ParallelEnv`` step for step. Each episode draws from its own
generator exactly what the ``ParallelEnv`` draws (the sky and the site at reset, then an
image's or a spectrum's labels when one completes), in the same order; only those draws loop
over episodes, everything else is numpy over the episode axis.

Messages: the lander's data and the team's advice cross the same store-and-forward timing as
the router's (:mod:`~phobos.envs.sampling.batch_links`). A message's content is filed at send
time under the observation index at which it will arrive: an advice as its ranking, a data
report as index ranges into the lander's log of images, spectra and sampling attempts.

Episodes end at different steps (container sealed, sampler damaged, horizon). ``done[i]``
says that episode ``i`` ended with this step; it must be restarted with
``reset(indices=...)`` (cheap: only those episodes are planned again) before the next
``step``, which otherwise raises ``RuntimeError``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from phobos.envs.sampling.batch_links import LANDER_TO_TEAM, TEAM_TO_LANDER, LinkBatch
from phobos.envs.sampling.batch_state import BatchState
from phobos.envs.sampling.config import AGENTS, MATERIALS, SamplingConfig
from phobos.envs.sampling.imagined import draw_believed_sites
from phobos.envs.sampling.plan import plan_episodes
from phobos.envs.sampling.site import generate_sites
from phobos.envs.sampling.state import IMAGE, SAMPLE, SEND, SPECTROMETER, WAIT

SITE_FIELDS = ("material", "slope_deg", "composition", "value", "failure_probability")
SITE_FIELDS += ("failure_draw", "damage_draw", "mass_g")
"""The site's per-cell arrays the batch keeps (``reachable`` is the same for every site)."""
INT_FIELDS = ("material", "composition")

EPISODE_STATE = ("masks", "done", "step_index", "busy_left", "activity", "target", "battery")
EPISODE_STATE += ("container", "sampler_ok", "stowed", "target_samples", "advice_step")
EPISODE_STATE += ("in_advice", "unsent", "cell_ok", "reported", "data_step", "data_seq")
EPISODE_STATE += ("new_data", "advised", "known_attempted", "solar_wh", "contact", "image_ok")
EPISODE_STATE += ("shared", "image_area", "image_labels", "image_slope", "spectrum", "attempt")
EPISODE_STATE += ("logged", "reported_upto", "report_range", "report_status", "report_seen")
EPISODE_STATE += ("reports_at", "advice_cells", "advice_values", "advice_length", "advice_at")
"""Every per-episode array of the core (``[env, ...]``) besides the observations."""
BELIEF_STATE = ("material_loglik", "class_loglik", "slope_sum", "slope_count", "mixture")
LINK_STATE = ("next_open", "light_time_s", "lost", "waiting", "waiting_depart")
LINK_STATE += ("delivered_at", "lost_at")


class PhobosSamplingBatch(BatchState):
    """``num_envs`` sampling episodes in lock-step, arrays indexed ``[env, agent, ...]``.

    Agents in :data:`~phobos.envs.sampling.config.AGENTS` order (lander, science team).
    Masks are padded to the lander's action count with zeros: the team's extra actions are
    forbidden.

    Args:
        config: Task arguments; defaults to :class:`SamplingConfig`.
        num_envs: Episodes stepped together.

    """

    def __init__(self, config: SamplingConfig | None = None, num_envs: int = 1) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer):
            raise ValueError(f"num_envs must be an integer, got {num_envs!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        config = config or SamplingConfig()
        config.validate()
        super().__init__(config, int(num_envs))
        self.agents = AGENTS
        self._rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        shape = (self.num_envs, self.layout.cells)
        self.site = {
            name: np.zeros(shape, np.int64 if name in INT_FIELDS else np.float64)
            for name in SITE_FIELDS
        }
        self.links = LinkBatch(
            self.num_envs, config.horizon_steps, config.step_seconds, config.message_buffer
        )
        self._started = False
        self.run_on = False
        """Whether episodes that ended keep stepping (their rewards are the caller's to
        ignore) instead of raising until restarted: lock-step rollouts set it."""
        self._branched_from: np.ndarray | None = None
        self._parent: PhobosSamplingBatch | None = None

    # ---------------------------------------------------------------------------- episodes
    def reset(
        self,
        seeds: Sequence[int | None] | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Start new episodes: all of them, or only ``indices`` (the others carry on).

        Args:
            seeds: One per restarted episode (``None`` entries, or no list, continue that
                episode's generator, as ``ParallelEnv.reset()`` without a seed does).
            indices: Episodes to restart; all when omitted. Required after the first reset
                only when some must keep running.

        Returns:
            Observations ``[env, agent, layout.size]`` float32 and masks ``[env, agent,
            lander_actions]`` int8 of every episode.

        """
        n = self.num_envs
        if indices is None:
            envs = np.arange(n)
        else:
            envs = np.asarray(indices, dtype=np.int64).reshape(-1)
            if envs.size and (envs.min() < 0 or envs.max() >= n):
                raise ValueError(f"indices must lie in 0..{n - 1}, got {envs.tolist()}")
            if len(np.unique(envs)) != len(envs):
                raise ValueError(f"indices must not repeat, got {envs.tolist()}")
            if not self._started and len(envs) != n:
                raise ValueError("the first reset must start every episode (indices=None)")
        if seeds is not None and len(seeds) != len(envs):
            raise ValueError(f"got {len(seeds)} seeds for {len(envs)} episodes to reset")
        if envs.size == 0:
            return self._observe()
        for j, i in enumerate(envs.tolist()):
            if seeds is not None and seeds[j] is not None:
                self._rngs[i] = np.random.default_rng(seeds[j])
        rngs = [self._rngs[i] for i in envs.tolist()]
        sky = plan_episodes(self.config, rngs)
        sites = generate_sites(self.config.site, rngs)
        for name in SITE_FIELDS:
            self.site[name][envs] = getattr(sites, name)
        self.restart(envs, sky)
        self.links.reset(envs, sky.surface.contact, sky.surface.light_time_s, sky.message_lost)
        self._started = True
        return self._observe()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every episode one step.

        Args:
            actions: Integers ``[env, agent]`` within each agent's action space; an action the
                mask forbids is carried out as a wait (no advice) and flagged.

        Returns:
            observations, masks, team rewards ``[env]``, ``done`` ``[env]`` (terminated or
            truncated with this step), and info arrays ``[env]`` (``[env, agent]`` for
            ``masked`` and ``executed``): the reward parts, ``terminated``, ``truncated``,
            this step's ``messages_sent``, ``messages_rejected``, ``messages_delivered`` and
            ``messages_lost``, and, when any episode ended, ``episode``:
            :meth:`episode_summary` (read the rows of the finished episodes).

        Raises:
            ValueError: for actions of the wrong shape or type, or outside a space.
            RuntimeError: before :meth:`reset`, or while a finished episode is not restarted.

        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self.done.any() and not self.run_on:
            raise RuntimeError(
                f"episodes {np.flatnonzero(self.done).tolist()} are over: restart them with "
                "reset(indices=...) before step()"
            )
        actions = self._check(actions)
        self._sent_now[:], self._rejected_now[:] = 0, 0
        config, envs = self.config, self._envs
        s = self.step_index.copy()
        allowed = self.masks[envs[:, None], self._agent, actions] == 1
        executed = np.where(allowed, actions, 0)
        action, advice = executed[:, 0], executed[:, 1]

        kind_of, target_of = self._kind[action], self._target[action]
        start = (self.busy_left == 0) & (action > 0)
        self.activity[start], self.target[start] = kind_of[start], target_of[start]
        self.busy_left[start] = self._steps_of[kind_of[start]]
        sampling = start & (kind_of == SAMPLE)
        with_advice = self.in_advice[envs, target_of]
        self.totals["samples_with_advice"] += sampling & with_advice
        self.totals["decisions_without_ground"] += sampling & ~with_advice

        kind = np.where(self.busy_left > 0, self.activity, WAIT)
        battery = (
            self.battery
            + self.solar_wh[envs, s]
            - (config.lander.base_load_w + self._load_w[kind]) * config.step_seconds / 3600.0
        )
        violation = battery < 0.0
        self.battery = np.minimum(np.maximum(battery, 0.0), config.lander.battery_wh)
        busy = self.busy_left > 0
        self.busy_left -= busy
        finished = busy & (self.busy_left == 0)
        value, bonus, failure = (np.zeros(self.num_envs) for _ in range(3))
        for done_kind in (IMAGE, SPECTROMETER, SAMPLE, SEND):
            which = np.flatnonzero(finished & (kind == done_kind))
            if which.size == 0:
                continue
            if done_kind == IMAGE:
                self._images(which)
            elif done_kind == SPECTROMETER:
                self._spectra(which)
            elif done_kind == SAMPLE:
                value[which], bonus[which], failure[which] = self.sample(which)
            else:
                rejected, seen = self.links.send(which, LANDER_TO_TEAM, s[which])
                self.send_report(which, s[which], seen, rejected)
        advising = np.flatnonzero(advice > 0)
        if advising.size:
            self._advise(advising, advice[advising] - 1, s[advising])

        self.step_index = k = s + 1
        delivered = self.links.delivered_at[envs, k]
        lost = self.links.lost_at[envs, k]
        self.deliver_reports(k)
        self.deliver_advice(k)
        energy = np.where(violation, config.energy_violation_penalty, 0.0)
        reward = value + bonus - failure - energy
        totals = self.totals
        totals["energy_violations"] += violation
        totals["masked_actions"] += (~allowed).sum(axis=1)
        totals["messages_delivered"] += delivered
        totals["messages_lost"] += lost
        terminated = ~self.sampler_ok | (self.room_g < config.lander.min_sample_g)
        truncated = ~terminated & (k >= config.horizon_steps)
        self.done = terminated | truncated
        info: dict[str, Any] = {
            "sample_value": value,
            "diversity_bonus": bonus,
            "failure_penalty": failure,
            "energy_penalty": energy,
            "masked": ~allowed,
            "executed": executed,
            "terminated": terminated,
            "truncated": truncated,
            "messages_sent": self._sent_now,
            "messages_rejected": self._rejected_now,
            "messages_delivered": delivered,
            "messages_lost": lost,
        }
        if self.done.any():
            info["episode"] = self.episode_summary()
        obs, masks = self._observe()
        return obs, masks, reward, self.done.copy(), info

    def cell_structure(self) -> tuple[tuple[int, int, int], dict[str, tuple[tuple[int, int], ...]]]:
        """The observation's cell blocks and each agent's per-cell actions.

        What a cell-set policy needs (:attr:`~phobos.agents.shared_policy.SharedPolicySpec.
        cells`).

        Returns:
            ``(header, cells, cell_size)``, and per agent ``(first action, group)``: the
            lander's spectrometer (group 0) and sample (1) actions, the team's advice (2).

        """
        layout = self.layout
        lander, team = self.agents
        return (layout.header, layout.cells, layout.cell_size), {
            lander: ((layout.spectrometer(0), 0), (layout.sample(0), 1)),
            team: ((1, 2),),
        }

    def area_structure(self) -> tuple[tuple[tuple[int, ...], ...], dict[str, int]]:
        """The cells of each image area, and per agent the first of its per-area actions.

        What a cell-set policy that scores area actions from their cells needs
        (:attr:`~phobos.agents.shared_policy.SharedPolicySpec.areas`).
        """
        from phobos.envs.sampling.site import area_cells

        areas = tuple(tuple(int(c) for c in cells) for cells in area_cells(self.config.site))
        return areas, {self.agents[0]: self.layout.image(0)}

    # ----------------------------------------------------------------------------- branches
    def branch(
        self, copies: int, episodes: Sequence[int] | np.ndarray | None = None
    ) -> PhobosSamplingBatch:
        """``copies`` copies of each of ``episodes`` (all by default; episode-major), now.

        Each copy draws its labels from a copy of its episode's generator, so a copy given
        the episode's actions steps exactly as the episode does. The rollout teacher instead
        gives the copies imagined sites (:meth:`believed_sites`, :meth:`imagine`): what the
        lander believes is there, not what is. :meth:`sync` brings a branch back to this
        batch's state at any later step; a branch cannot be reset. Its episodes run on after
        they end (``run_on``), so that copies which end at different steps step together.
        """
        if not self._started:
            raise RuntimeError("call reset() before branch()")
        if isinstance(copies, bool) or not isinstance(copies, int | np.integer) or copies < 1:
            raise ValueError(f"copies must be a positive integer, got {copies!r}")
        chosen = np.arange(self.num_envs) if episodes is None else np.asarray(episodes, np.int64)
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= self.num_envs:
            raise ValueError(f"episodes must lie in 0..{self.num_envs - 1}, got {chosen.tolist()}")
        index = np.repeat(chosen.reshape(-1), int(copies))
        other = copy.copy(self)
        other.run_on = True
        other.belief, other.links = copy.copy(self.belief), copy.copy(self.links)
        other.num_envs = len(index)
        other._branched_from, other._parent = index, self
        other.sync(self)
        return other

    def sync(self, parent: PhobosSamplingBatch) -> None:
        """Take the state of the batch this one branched from, as it is now.

        The hidden sites and generators come back too: :meth:`imagine` again after it.
        """
        index = self._branched_from
        if index is None or parent is not self._parent:
            raise ValueError("sync() takes the batch this one was branched from")
        for name in EPISODE_STATE:
            setattr(self, name, getattr(parent, name)[index])
        for name in BELIEF_STATE:
            setattr(self.belief, name, getattr(parent.belief, name)[index])
        for name in LINK_STATE:
            setattr(self.links, name, getattr(parent.links, name)[index])
        self.site = {name: values[index] for name, values in parent.site.items()}
        self.totals = {name: total[index] for name, total in parent.totals.items()}
        self.obs = parent.obs[index]
        cells, size = self.layout.cells, self.layout.cell_size
        header = self.layout.header
        self.blocks = self.obs[:, :, header:].reshape(len(index), 2, cells, size)
        self.belief.blocks = self.blocks
        self._envs = np.arange(len(index))
        self._sent_now = np.zeros(len(index), np.int64)
        self._rejected_now = np.zeros(len(index), np.int64)
        self._rngs = [copy.deepcopy(parent._rngs[i]) for i in index.tolist()]

    def believed_sites(self, rngs: Sequence[np.random.Generator]) -> dict[str, np.ndarray]:
        """One site per episode drawn from what its lander believes now.

        Each cell's material and composition are drawn together from the lander's posterior
        (its labels' likelihoods times the priors), the slope from the prior of that material
        updated by the measured slopes, value, mass and the outcome draws from their priors.
        Cells are independent, as the lander's belief holds them. Also returned, under
        ``"stowed"``, are the classes the container would hold there: the compositions drawn
        for the cells sampled without failure (the lander knows which failed, not what the
        others were).
        """
        if len(rngs) != self.num_envs:
            raise ValueError(f"got {len(rngs)} generators for {self.num_envs} episodes")
        return draw_believed_sites(self, rngs)

    def imagine(
        self, sites: dict[str, np.ndarray], rngs: Sequence[np.random.Generator]
    ) -> None:
        """Put this branch's episodes on imagined sites, with new generators.

        Args:
            sites: :meth:`believed_sites` rows, one per episode of this branch.
            rngs: One generator per episode, for the labels still to come.

        """
        if self._branched_from is None:
            raise RuntimeError("imagine() is for a branch: its episodes are no longer true")
        if len(rngs) != self.num_envs:
            raise ValueError(f"got {len(rngs)} generators for {self.num_envs} episodes")
        for name in SITE_FIELDS:
            self.site[name] = np.asarray(sites[name]).copy()
        self.stowed = np.asarray(sites["stowed"]).copy()
        self._rngs = list(rngs)

    # --------------------------------------------------------------------------- activities
    def _images(self, envs: np.ndarray) -> None:
        lander, site = self.config.lander, self.site
        classes, materials = self.layout.classes, len(MATERIALS)
        cells = self._areas[self.target[envs]]
        size = cells.shape[1]
        # draw_labels' draws, episode by episode: a uniform and a shift per label and
        # instrument (material, onboard, ground), then the slope noise.
        uniform = np.zeros((3, len(envs), size))
        shift = np.zeros((3, len(envs), size), dtype=np.int64)
        noise = np.zeros((len(envs), size))
        for j, i in enumerate(envs.tolist()):
            rng = self._rngs[i]
            for instrument, count in enumerate((materials, classes, classes)):
                uniform[instrument, j] = rng.random(size)
                shift[instrument, j] = rng.integers(1, count, size)
            noise[j] = rng.standard_normal(size)
        truth = site["composition"][envs[:, None], cells]
        material = _labels(
            site["material"][envs[:, None], cells],
            lander.material_accuracy,
            materials,
            uniform[0],
            shift[0],
        )
        onboard = _labels(truth, lander.onboard_accuracy, classes, uniform[1], shift[1])
        ground = _labels(truth, lander.ground_accuracy, classes, uniform[2], shift[2])
        slope = site["slope_deg"][envs[:, None], cells] + lander.slope_noise_deg * noise
        belief = self.belief
        belief.add_images(
            envs, 0, cells, self._log_material[material], self._log_onboard[onboard], slope
        )
        belief.refresh_images(envs, 0, cells)
        self.record_images(envs, material, ground, slope)

    def _spectra(self, envs: np.ndarray) -> None:
        classes, accuracy = self.layout.classes, self.config.lander.spectrometer_accuracy
        cells = self.target[envs]
        uniform = np.zeros(len(envs))
        shift = np.zeros(len(envs), dtype=np.int64)
        for j, i in enumerate(envs.tolist()):
            rng = self._rngs[i]  # draw_labels of one label: the same draws as scalars
            uniform[j] = rng.random()
            shift[j] = rng.integers(1, classes)
        truth = self.site["composition"][envs, cells]
        labels = _labels(truth, accuracy, classes, uniform, shift)
        self.belief.add_spectra(envs, 0, cells, self._log_spectrum[labels])
        self.belief.refresh_spectra(envs, 0, cells)
        self.record_spectra(envs, cells, labels)

    def _advise(self, envs: np.ndarray, first: np.ndarray, step: np.ndarray) -> None:
        advice = self.advise(envs, first)
        rejected, seen = self.links.send(envs, TEAM_TO_LANDER, step)
        self.file_advice(envs, step, seen, rejected, advice)

    # ------------------------------------------------------------------------------ checks
    def _check(self, actions: Any) -> np.ndarray:
        actions = np.asarray(actions)
        shape = (self.num_envs, len(self.agents))
        if actions.shape != shape:
            raise ValueError(f"actions must have shape {shape} (env, agent), got {actions.shape}")
        if actions.dtype == np.bool_ or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
        bad = (actions < 0) | (actions >= self._counts)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"action {int(actions[i, j])} of agent {self.agents[j]!r} in episode {i} is "
                f"outside Discrete({int(self._counts[j])})"
            )
        return actions.astype(np.int64)


def _labels(
    truth: np.ndarray, accuracy: float, classes: int, uniform: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """:func:`~phobos.envs.sampling.belief.draw_labels` from its draws, made beforehand."""
    return np.where(uniform >= accuracy, (truth + shift) % classes, truth)
