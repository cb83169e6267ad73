"""The two agents' state in many sampling episodes, as arrays over the episode axis.

The array form of :class:`~phobos.envs.sampling.state.LanderState` and
:class:`~phobos.envs.sampling.state.TeamState` for :class:`~phobos.envs.sampling.batch.
PhobosSamplingBatch`: the lander's battery, container, activity and unsent data, the team's
view of the data that reached Earth, their observations and masks, and the messages filed for
delivery. Every method works on a set of distinct episodes at once.
"""

from __future__ import annotations

import numpy as np

from phobos.envs.sampling.batch_belief import BeliefBatch
from phobos.envs.sampling.belief import label_log_likelihood, prior_features
from phobos.envs.sampling.config import MATERIALS, SamplingConfig
from phobos.envs.sampling.layout import (
    ADVICE_RANK,
    ADVICE_VALUE,
    IMAGED,
    SAMPLED,
    SPECTRUM,
    SamplingLayout,
)
from phobos.envs.sampling.plan import EpisodeSky
from phobos.envs.sampling.site import area_cells, reachable_cells
from phobos.envs.sampling.state import (
    IMAGE,
    KINDS,
    SAMPLE,
    SEND,
    SPECTROMETER,
    activity_costs,
    activity_needs_wh,
)

IMAGES, SPECTRA, ATTEMPTS = range(3)
"""The lander's logs of unsent data, in the order a data report carries them."""
COUNTS = ("samples", "failures", "decisions_without_ground", "samples_with_advice")
COUNTS += ("energy_violations", "masked_actions", "data_messages", "advice_messages")
COUNTS += ("messages_sent", "messages_rejected", "messages_delivered", "messages_lost")
SUMS = ("sample_value", "diversity_bonus", "sample_mass_g", "failure_penalty")


class BatchState:
    """Arrays of ``num_envs`` episodes' state; see the module docstring.

    Args:
        config: The task configuration (validated).
        num_envs: Episodes.

    """

    def __init__(self, config: SamplingConfig, num_envs: int) -> None:
        self.config, self.num_envs = config, num_envs
        n = num_envs
        site, lander, steps = config.site, config.lander, config.horizon_steps
        self.layout = layout = SamplingLayout(
            site.cells, site.areas, len(site.compositions), len(MATERIALS)
        )
        cells, classes, length = layout.cells, layout.classes, config.advice_length
        self._counts = np.array([layout.lander_actions, layout.team_actions])
        decoded = [layout.decode(a) for a in range(layout.lander_actions)]
        self._kind = np.array([KINDS.index(kind) for kind, _ in decoded])
        self._target = np.array([target for _, target in decoded])
        steps_of, load_w = activity_costs(lander)
        self._steps_of, self._load_w = np.array(steps_of), np.array(load_w)
        self._need, self._longest = activity_needs_wh(config), max(steps_of)
        self._areas = np.stack(area_cells(site))
        self._envs, self._agent = np.arange(n), np.arange(2)[None, :]
        self._log_material = label_log_likelihood(lander.material_accuracy, len(MATERIALS))
        self._log_onboard = label_log_likelihood(lander.onboard_accuracy, classes)
        self._log_ground = label_log_likelihood(lander.ground_accuracy, classes)
        self._log_spectrum = label_log_likelihood(lander.spectrometer_accuracy, classes)
        self._target_class = np.isin(site.compositions, site.target_compositions)
        self._extra = classes + len(MATERIALS)
        self._reachable = reachable_cells(site).astype(np.int8)
        self._prior_block = prior_features(site, layout, self._reachable)

        self.obs = np.zeros((n, 2, layout.size))
        self.blocks = self.obs[:, :, layout.header :].reshape(n, 2, cells, layout.cell_size)
        self.belief = BeliefBatch(site, layout, self.blocks)
        self.masks = np.zeros((n, 2, layout.lander_actions), dtype=np.int8)
        self.done = np.zeros(n, dtype=bool)
        ints, floats, flags = (n,), (n,), (n,)
        self.step_index, self.busy_left = np.zeros(ints, np.int64), np.zeros(ints, np.int64)
        self.activity, self.target = np.zeros(ints, np.int64), np.zeros(ints, np.int64)
        self.battery, self.container = np.zeros(floats), np.zeros(floats)
        self.sampler_ok = np.ones(flags, dtype=bool)
        self.stowed = np.zeros((n, classes), dtype=bool)
        self.target_samples = np.zeros(ints, np.int64)
        self.advice_step = np.zeros(ints, np.int64)
        self.in_advice = np.zeros((n, cells), dtype=bool)
        self.unsent = np.zeros((n, cells), dtype=bool)
        self.cell_ok = np.zeros((n, cells), dtype=np.int8)
        # The science team's view.
        self.reported = np.zeros((n, 4))
        self.data_step, self.data_seq = np.zeros(ints, np.int64), np.zeros(ints, np.int64)
        self.new_data, self.advised = np.zeros(flags, bool), np.zeros(flags, bool)
        self.known_attempted = np.zeros((n, cells), dtype=bool)
        # The episodes' skies.
        self.solar_wh, self.contact = np.zeros((n, steps)), np.zeros((n, steps), dtype=bool)
        self.image_ok = np.zeros((n, steps + 1), dtype=bool)
        self.shared = np.zeros((n, steps + 1, self.shared_fields))
        # The lander's logs of data (images by area, spectra, attempts) and the reports filed
        # by send step: index ranges into the logs, the status, the observation that sees it.
        self.image_area = np.zeros((n, steps), np.int64)
        self.image_labels = np.zeros((n, steps, 2, self._areas.shape[1]), np.int64)
        self.image_slope = np.zeros((n, steps, self._areas.shape[1]))
        self.spectrum = np.zeros((n, steps, 2), np.int64)  # cell, label
        self.attempt = np.zeros((n, steps), np.int64)
        self.logged, self.reported_upto = np.zeros((n, 3), np.int64), np.zeros((n, 3), np.int64)
        self.report_range = np.zeros((n, steps, 2, 3), np.int64)
        self.report_status = np.zeros((n, steps, 4))
        self.report_seen = np.zeros((n, steps), np.int64)
        self.reports_at = np.zeros((n, steps + 2), np.int64)
        # Advice filed by send step, and the latest one seen at each observation index.
        self.advice_cells = np.zeros((n, steps, length), np.int64)
        self.advice_values = np.zeros((n, steps, length))
        self.advice_length = np.zeros((n, steps), np.int64)
        self.advice_at = np.zeros((n, steps + 2), np.int64)
        self.totals: dict[str, np.ndarray] = {key: np.zeros(n, np.int64) for key in COUNTS}
        self.totals.update({key: np.zeros(n) for key in SUMS})
        self._sent_now, self._rejected_now = np.zeros(n, np.int64), np.zeros(n, np.int64)

    @property
    def shared_fields(self) -> int:
        """Length of the shared observation block."""
        return self.layout.own_field(0)

    @property
    def room_g(self) -> np.ndarray:
        """Room left in each container."""
        return self.config.lander.container_g - self.container

    def restart(self, envs: np.ndarray, sky: EpisodeSky) -> None:
        """Land episodes ``envs`` afresh under ``sky`` (a batch of ``len(envs)`` plans)."""
        config = self.config
        self.obs[envs] = 0.0
        self.blocks[envs] = self._prior_block
        self.belief.reset(envs)
        self.masks[envs] = 0
        self.done[envs] = False
        for array in (self.step_index, self.busy_left, self.activity, self.target):
            array[envs] = 0
        self.battery[envs] = sky.start_battery * config.lander.battery_wh
        self.container[envs] = 0.0
        self.sampler_ok[envs] = True
        for array in (self.stowed, self.in_advice, self.unsent, self.known_attempted):
            array[envs] = False
        self.target_samples[envs] = 0
        self.advice_step[envs] = self.data_step[envs] = self.data_seq[envs] = -1
        self.cell_ok[envs] = self._reachable
        self.reported[envs] = (0.0, 0.0, 0.0, 1.0)
        self.new_data[envs] = self.advised[envs] = False
        self.masks[envs, 1, 0] = 1
        self.solar_wh[envs], self.image_ok[envs] = sky.solar_wh, sky.image_ok
        self.shared[envs], self.contact[envs] = sky.shared, sky.surface.contact
        self.logged[envs] = self.reported_upto[envs] = 0
        self.reports_at[envs] = 0
        self.advice_at[envs] = -1
        for array in self.totals.values():
            array[envs] = 0

    # --------------------------------------------------------------------------- the lander
    def record_images(
        self, envs: np.ndarray, material: np.ndarray, ground: np.ndarray, slope: np.ndarray
    ) -> None:
        """Log the images just taken (the target areas) until the next data report."""
        j = self.logged[envs, IMAGES]
        self.image_area[envs, j] = self.target[envs]
        self.image_labels[envs, j, 0], self.image_labels[envs, j, 1] = material, ground
        self.image_slope[envs, j] = slope
        self.logged[envs, IMAGES] += 1
        self.unsent[envs[:, None], self._areas[self.target[envs]]] = True

    def record_spectra(self, envs: np.ndarray, cells: np.ndarray, labels: np.ndarray) -> None:
        """Log the spectra just taken until the next data report."""
        j = self.logged[envs, SPECTRA]
        self.spectrum[envs, j, 0], self.spectrum[envs, j, 1] = cells, labels
        self.logged[envs, SPECTRA] += 1
        self.unsent[envs, cells] = True

    def sample(self, envs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The arm digs the target cells: ``(value, bonus, failure penalty)`` per episode."""
        config, site, totals = self.config, self.site, self.totals
        cells = self.target[envs]
        self.cell_ok[envs, cells] = 0
        self.blocks[envs, 0, cells, self._extra + SAMPLED] = 1.0
        self.attempt[envs, self.logged[envs, ATTEMPTS]] = cells
        self.logged[envs, ATTEMPTS] += 1
        self.unsent[envs, cells] = True
        failed = site["failure_draw"][envs, cells] < site["failure_probability"][envs, cells]
        damaged = failed & (site["damage_draw"][envs, cells] < config.site.damage_given_failure)
        totals["failures"][envs] += failed
        totals["failure_penalty"][envs[failed]] += config.failure_penalty
        self.sampler_ok[envs[damaged]] = False
        value, bonus = np.zeros(len(envs)), np.zeros(len(envs))
        ok, c = envs[~failed], cells[~failed]
        full = site["mass_g"][ok, c]
        mass = np.minimum(full, self.room_g[ok])
        value[~failed] = site["value"][ok, c] * mass / full
        composition = site["composition"][ok, c]
        new_class = ~self.stowed[ok, composition]
        self.stowed[ok, composition] = True
        self.container[ok] += mass
        self.target_samples[ok] += self._target_class[composition]
        totals["samples"][ok] += 1
        totals["sample_value"][ok] += value[~failed]
        totals["sample_mass_g"][ok] += mass
        totals["diversity_bonus"][ok[new_class]] += config.diversity_bonus
        bonus[~failed] = np.where(new_class, config.diversity_bonus, 0.0)
        return value, bonus, np.where(failed, config.failure_penalty, 0.0)

    def send_report(
        self, envs: np.ndarray, step: np.ndarray, seen: np.ndarray, rejected: np.ndarray
    ) -> None:
        """File the data report each of ``envs`` sent during ``step``, seen at ``seen``."""
        lander = self.config.lander
        self.report_range[envs, step, 0] = self.reported_upto[envs]
        self.report_range[envs, step, 1] = self.reported_upto[envs] = self.logged[envs]
        self.report_status[envs, step] = np.stack(
            [
                self.battery[envs] / lander.battery_wh,
                self.container[envs] / lander.container_g,
                self.stowed[envs].sum(axis=1) / self.layout.classes,
                self.sampler_ok[envs],
            ],
            axis=1,
        )
        self.unsent[envs] = False
        self.report_seen[envs, step] = seen
        self.reports_at[envs, seen] += 1
        self._count_send(envs, "data_messages", rejected)

    def deliver_advice(self, k: np.ndarray) -> None:
        """The lander adopts the newest advice seen at observation ``k`` if newer than its own."""
        latest = self.advice_at[self._envs, k]
        envs = np.flatnonzero(latest > self.advice_step)
        if envs.size == 0:
            return
        step = latest[envs]
        cells = self.advice_cells[envs, step]
        length = self.advice_length[envs, step]
        self._write_ranking(envs, 0, cells, self.advice_values[envs, step], length)
        self.in_advice[envs] = False
        valid = np.arange(cells.shape[1]) < length[:, None]
        rows, cols = np.nonzero(valid)
        self.in_advice[envs[rows], cells[rows, cols]] = True
        self.advice_step[envs] = step

    # ----------------------------------------------------------------------------- the team
    def deliver_reports(self, k: np.ndarray) -> None:
        """The team classifies the data reports seen at observation ``k``, in arrival order.

        Reports that arrive together left in send order (the heap's tie-break) or at later
        contacts (a light time never falls by a whole step in one step), so send order is
        arrival order; an episode's second report is applied after every first one.
        """
        envs = np.flatnonzero(self.reports_at[self._envs, k] > 0)
        if envs.size == 0:
            return
        rows, steps = np.nonzero(self.report_seen[envs] == k[envs, None])
        owner = envs[rows]
        start = np.r_[0, np.flatnonzero(owner[1:] != owner[:-1]) + 1]
        rank = np.arange(len(owner)) - np.repeat(start, np.diff(np.r_[start, len(owner)]))
        for wave in range(int(rank.max()) + 1):
            pick = rank == wave
            self._apply_reports(owner[pick], steps[pick])
        self.data_step[envs] = k[envs]
        self.new_data[envs] = True
        block = self.blocks[envs, 1]
        measured = (block[..., self._extra + IMAGED] > 0) | (block[..., self._extra + SPECTRUM] > 0)
        self.masks[envs, 1, 1 : 1 + self.layout.cells] = measured & ~self.known_attempted[envs]

    def _apply_reports(self, envs: np.ndarray, step: np.ndarray) -> None:
        belief = self.belief
        low, high = self.report_range[envs, step, 0], self.report_range[envs, step, 1]
        ie, ij = _ranges(envs, low[:, IMAGES], high[:, IMAGES])
        se, sj = _ranges(envs, low[:, SPECTRA], high[:, SPECTRA])
        cells = self._areas[self.image_area[ie, ij]]
        spectrum_cells = self.spectrum[se, sj, 0]
        if ie.size:
            labels, slope = self.image_labels[ie, ij], self.image_slope[ie, ij]
            material, ground = self._log_material[labels[:, 0]], self._log_ground[labels[:, 1]]
            belief.add_images(ie, 1, cells, material, ground, slope)
        if se.size:
            belief.add_spectra(se, 1, spectrum_cells, self._log_spectrum[self.spectrum[se, sj, 1]])
        if ie.size:
            belief.refresh_images(ie, 1, cells)
        if se.size:
            belief.refresh_spectra(se, 1, spectrum_cells)
        ae, aj = _ranges(envs, low[:, ATTEMPTS], high[:, ATTEMPTS])
        attempted = self.attempt[ae, aj]
        self.known_attempted[ae, attempted] = True
        self.blocks[ae, 1, attempted, self._extra + SAMPLED] = 1.0
        newer = step > self.data_seq[envs]  # a late, older status must not overwrite a newer one
        self.reported[envs[newer]] = self.report_status[envs[newer], step[newer]]
        self.data_seq[envs[newer]] = step[newer]

    def advise(
        self, envs: np.ndarray, first: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The team's rankings (``TeamState.ranking``), written into its own blocks.

        Returns:
            Cells and their expected values ``[m, advice_length]`` and each ranking's length.

        """
        belief, rows = self.belief, np.arange(len(envs))
        value, hazard = belief.expected_value(envs, 1), belief.hazard(envs, 1)
        score = value * (1.0 - hazard) - self.config.failure_penalty * hazard
        score = np.where(self.masks[envs, 1, 1 : 1 + self.layout.cells] == 1, score, -np.inf)
        score[rows, first] = -np.inf
        order = np.argsort(-score, axis=1, kind="stable")[:, : self.config.advice_length - 1]
        cells = np.concatenate([first[:, None], order], axis=1)
        length = 1 + np.isfinite(score[rows[:, None], order]).sum(axis=1)
        values = value[rows[:, None], cells]
        self._write_ranking(envs, 1, cells, values, length)
        self.advised[envs], self.new_data[envs] = True, False
        return cells, values, length

    def file_advice(
        self,
        envs: np.ndarray,
        step: np.ndarray,
        seen: np.ndarray,
        rejected: np.ndarray,
        advice: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """File the advice sent during ``step`` for the lander to see at ``seen``."""
        cells, values, length = advice
        self.advice_cells[envs, step], self.advice_values[envs, step] = cells, values
        self.advice_length[envs, step] = length
        self.advice_at[envs, seen] = np.maximum(self.advice_at[envs, seen], step)
        self._count_send(envs, "advice_messages", rejected)

    # -------------------------------------------------------------------------- shared parts
    def _count_send(self, envs: np.ndarray, kind: str, rejected: np.ndarray) -> None:
        totals = self.totals
        totals[kind][envs] += 1
        totals["messages_sent"][envs] += 1
        totals["messages_rejected"][envs] += rejected
        self._sent_now[envs] += 1
        self._rejected_now[envs] += rejected

    def _write_ranking(
        self,
        envs: np.ndarray,
        observer: int,
        cells: np.ndarray,
        values: np.ndarray,
        length: np.ndarray,
    ) -> None:
        rank_col, value_col = self._extra + ADVICE_RANK, self._extra + ADVICE_VALUE
        self.blocks[envs, observer, :, rank_col] = 0.0
        self.blocks[envs, observer, :, value_col] = 0.0
        rows, r = np.nonzero(np.arange(cells.shape[1]) < length[:, None])
        e, c = envs[rows], cells[rows, r]
        self.blocks[e, observer, c, rank_col] = 1.0 - r / length[rows]
        scaled = values[rows, r] / self.belief.value_scale
        self.blocks[e, observer, c, value_col] = np.minimum(np.maximum(scaled, 0.0), 1.0)

    def episode_summary(self) -> dict[str, np.ndarray]:
        """``[env]`` totals so far under ``PhobosSamplingEnv.episode_summary``'s keys."""
        samples = self.totals["samples"]
        return {
            **{key: value.copy() for key, value in self.totals.items()},
            "classes_stowed": self.stowed.sum(axis=1),
            "target_fraction": np.where(
                samples > 0, self.target_samples / np.maximum(samples, 1), 0.0
            ),
            "sampler_damaged": ~self.sampler_ok,
            "container_sealed": self.room_g < self.config.lander.min_sample_g,
            "steps": self.step_index.copy(),
        }

    def _observe(self) -> tuple[np.ndarray, np.ndarray]:
        config, layout, envs = self.config, self.layout, self._envs
        lander, horizon = config.lander, config.horizon_steps
        k = self.step_index
        g = np.minimum(k, horizon - 1)
        obs, own = self.obs, layout.own_field(0)
        obs[:, :, :own] = self.shared[envs, k][:, None, :]
        advised = self.advice_step >= 0
        obs[:, 0, own : own + 8] = np.stack(
            [
                self.battery / lander.battery_wh,
                np.minimum(self.container / lander.container_g, 1.0),
                self.busy_left / self._longest,
                self.unsent.sum(axis=1) / layout.cells,
                advised,
                np.where(advised, np.minimum((k - self.advice_step) / horizon, 1.0), 1.0),
                self.stowed.sum(axis=1) / layout.classes,
                self.sampler_ok,
            ],
            axis=1,
        )
        received = self.data_step >= 0
        reported = self.reported
        obs[:, 1, own : own + 8] = np.stack(
            [
                reported[:, 0],
                reported[:, 1],
                received,
                np.where(received, np.minimum((k - self.data_step) / horizon, 1.0), 1.0),
                self.new_data,
                self.advised,
                reported[:, 2],
                reported[:, 3],
            ],
            axis=1,
        )
        free, battery, need = self.busy_left == 0, self.battery, self._need
        mask, areas, cells = self.masks[:, 0], layout.areas, layout.cells
        mask[:, 0] = 1
        mask[:, 1] = free & self.contact[envs, g] & self.unsent.any(axis=1)
        mask[:, 1] &= battery >= need[SEND]
        imaging = free & self.image_ok[envs, k] & (battery >= need[IMAGE])
        mask[:, 2 : 2 + areas] = imaging[:, None]
        spectra = free & (battery >= need[SPECTROMETER])
        mask[:, 2 + areas : 2 + areas + cells] = self.cell_ok * spectra[:, None]
        sampling = free & self.sampler_ok & (self.room_g >= lander.min_sample_g)
        sampling &= battery >= need[SAMPLE]
        mask[:, 2 + areas + cells :] = self.cell_ok * sampling[:, None]
        return obs.astype(np.float32), self.masks.copy()


def _ranges(owner: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(episode, index)`` of every index in ``[low, high)`` per episode, in order."""
    counts = high - low
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.cumsum(counts) - counts
    index = np.arange(total) - np.repeat(starts, counts) + np.repeat(low, counts)
    return np.repeat(owner, counts), index
