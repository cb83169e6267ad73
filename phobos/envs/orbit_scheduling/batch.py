"""The orbit-scheduling simulation, stepping many episodes at once in numpy arrays.

This is the task's core: it knows nothing of gymnasium, PettingZoo or ZeroMQ. The
``ParallelEnv`` in ``env.py`` runs it with one episode and routes intent messages through the
real store-and-forward router; here the same deliveries are computed vectorised from the
contact plan, so that a seeded batch of one equals the ``ParallelEnv`` step for step.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import numpy as np

from phobos.comms.link import next_open_step
from phobos.envs.orbit_scheduling.config import (
    CRAFT_COUNT,
    DOWNLINK,
    FIRST_INSTRUMENT,
    OCCULTATION,
    OCCULTATION_KIND,
    PHOBOS_GRUNT_INDEX,
    SCIENCE,
    TRACK_FIRST,
    YINGHUO1_INDEX,
    OrbitSchedulingConfig,
)
from phobos.envs.orbit_scheduling.layout import (
    BATTERY,
    STORAGE,
    STORED_VALUE,
    ObservationLayout,
)
from phobos.envs.orbit_scheduling.lookahead import lookahead_table
from phobos.envs.orbit_scheduling.observation import (
    CONTENT_ACTIVITY,
    CONTENT_BATTERY,
    CONTENT_STORAGE,
    STORED_VALUE_SCALE,
    CraftTables,
    combine_masks,
    intent_features,
    static_masks,
    static_observation,
)
from phobos.envs.orbit_scheduling.plan import EpisodePlan, plan_episodes
from phobos.envs.orbit_scheduling.value import field_data_table, value_factor
from phobos.envs.plan_ahead import PlanAhead


class OrbitSchedulingBatch:
    """``num_envs`` orbit-scheduling episodes in lock-step.

    Arrays are indexed ``[env, agent, ...]`` with agents in ``config.agents`` order.

    Args:
        config: Task arguments.
        num_envs: Episodes stepped together.
        plan_ahead: Prepare the next episodes in a background process while these are
            stepped (:mod:`phobos.envs.plan_ahead`): the same episodes, bit for bit, with the
            reset's tabulation off this process's critical path when a second core is free.
            Call :meth:`close` when done.

    """

    def __init__(
        self,
        config: OrbitSchedulingConfig | None = None,
        num_envs: int = 1,
        plan_ahead: bool = False,
    ) -> None:
        self.config = config = config or OrbitSchedulingConfig()
        config.validate()
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.num_envs = num_envs
        self.agents = config.agents
        self.layout = ObservationLayout.for_config(config)
        self._tables = CraftTables.from_config(config)
        self._rngs: list[np.random.Generator] = [np.random.default_rng() for _ in range(num_envs)]
        self._env = np.arange(num_envs)[:, None]
        self._craft = np.arange(CRAFT_COUNT)[None, :]
        self._field_data = field_data_table(config)
        self._agent = np.arange(len(self.agents))[None, :]
        self.plan: EpisodePlan | None = None
        self.plan_ahead = plan_ahead
        self._ahead: PlanAhead | None = None
        self._branched_from: np.ndarray | None = None

    # ----------------------------------------------------------------------------- episode
    def reset(self, seeds: Sequence[int | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Start new episodes; ``seeds[i]`` reseeds episode ``i``'s own generator.

        Returns:
            Observations ``[env, agent, layout.size]`` float32 and masks ``[env, agent, 7]`` int8.

        """
        if self._branched_from is not None:
            raise RuntimeError("a branch follows its parent's episodes: reset the parent")
        if seeds is not None:
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} environments")
            for i, seed in enumerate(seeds):
                if seed is not None:
                    self._rngs[i] = np.random.default_rng(seed)
        config, tables = self.config, self._tables
        prepared = self._ahead.take(self._rngs) if self._ahead is not None else None
        if prepared is None:
            prepared = prepare_episodes(config, self._rngs)
        if self.plan_ahead:
            if self._ahead is None:
                self._ahead = PlanAhead(prepare_episodes, config, prepared)
            self._ahead.request(self._rngs)
        self.plan = plan = EpisodePlan(**{name: prepared[name] for name in _PLAN_FIELDS})
        n, steps = self.num_envs, config.horizon_steps
        self.battery, self.storage, self.stored_value = initial_state(plan, tables)
        lag = int(np.ceil(plan.light_time_s.max() / config.step_seconds)) + 2
        self.pending = np.zeros((n, steps + lag + 1, 2))  # [env, arrival step, value kind]
        self.intents = np.zeros((n, steps, len(self.agents), 3))  # [..., CONTENT_*]
        self._latest = prepared["latest"]
        # Copied: slices of these leave in ``info``, and prepared arrays are reused later.
        self.delivered_at = np.array(prepared["delivered"])
        self.rejected_at = np.array(prepared["rejected"])
        self._lookahead = prepared.get("lookahead")
        self.step_index = 0
        self.totals = {
            "science": np.zeros(n),
            "occultation": np.zeros(n),
            "energy_violations": np.zeros(n, dtype=np.int64),
            "occultations": np.zeros(n, dtype=np.int64),
            "masked_actions": np.zeros(n, dtype=np.int64),
        }
        return self._observe()

    def close(self) -> None:
        """Stop the background planner, if one runs (``plan_ahead``)."""
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None

    def potential(self) -> np.ndarray:
        """Science value ``[env]`` held on board or already downlinked and still in flight.

        Every unit of it becomes reward when (and if) it reaches Earth, so it is the natural
        potential for shaping the team reward (training only; the env's reward is unchanged).
        """
        in_flight = self.pending[:, self.step_index + 1 :].sum(axis=(1, 2))
        return self.stored_value.sum(axis=(1, 2)) + in_flight

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, dict[str, np.ndarray]]:
        """Advance every episode one step.

        Args:
            actions: Int array ``[env, agent]``, already checked to lie in each action space;
                a masked action is carried out as idle and flagged.

        Returns:
            observations, masks, team rewards ``[env]``, whether the episodes were truncated
            (all share one horizon), and info arrays: reward parts and flags per agent.

        """
        plan, config, tb = self.plan, self.config, self._tables
        s, dt = self.step_index, config.step_seconds
        if plan is None or s >= config.horizon_steps:
            raise RuntimeError("call reset() before step(), and again after truncation")
        env, craft = self._env, self._craft
        allowed = self.mask[env, self._agent, actions].astype(bool)
        executed = np.where(allowed, actions, 0)
        act = executed[:, :CRAFT_COUNT]
        self.intents[:, s, :, CONTENT_ACTIVITY] = executed
        self.intents[:, s, :CRAFT_COUNT, CONTENT_BATTERY] = self.battery / tb.battery_wh
        self.intents[:, s, :CRAFT_COUNT, CONTENT_STORAGE] = self.storage / tb.storage_bits

        solar = (
            tb.peak_w * plan.solar_scale[:, s, None] * plan.sunlit[:, s] * tb.pointing[craft, act]
        )
        battery = self.battery + (solar - tb.bus_w - tb.load_w[craft, act]) * tb.step_hours
        violation = battery < 0.0
        self.battery = np.clip(battery, 0.0, tb.battery_wh)

        occultation = act == OCCULTATION
        joint = occultation.all(axis=1)
        factor = value_factor(
            occultation,
            (joint * plan.occultation_boost[:, s])[:, None],
            self._field_data[craft, act],
            plan.magnetosphere[:, s, None],
            config.magnetosphere_boost,
            where=np.where,
        )
        kind = occultation.astype(np.int64)  # OCCULTATION_KIND for an occultation, else SCIENCE
        self.storage = self.storage + tb.data_bits[craft, act] * (factor > 0)
        self.stored_value[env, craft, kind] += tb.value[craft, act] * factor

        tracked = executed[:, CRAFT_COUNT:, None] == (TRACK_FIRST + craft)[:, None, :]  # [n, S, 2]
        available = (plan.downlink_bits[:, s] * tracked).max(axis=1)
        sent = np.where(act == DOWNLINK, np.minimum(self.storage, available), 0.0)
        share = sent / np.maximum(self.storage, 1.0)
        sent_value = self.stored_value * share[..., None]
        self.stored_value -= sent_value
        self.storage = self.storage - sent
        arrival = s + 1 + np.ceil(plan.light_time_s[:, s] / dt).astype(np.int64)
        grunt, yinghuo = sent_value[:, PHOBOS_GRUNT_INDEX], sent_value[:, YINGHUO1_INDEX]
        self.pending[env[:, 0], arrival] += grunt + yinghuo

        self.step_index = s + 1
        arrived = self.pending[:, s + 1]
        penalty = violation.sum(axis=1) * config.energy_violation_penalty
        reward = arrived[:, SCIENCE] + arrived[:, OCCULTATION_KIND] - penalty
        totals = self.totals
        totals["science"] += arrived[:, SCIENCE]
        totals["occultation"] += arrived[:, OCCULTATION_KIND]
        totals["energy_violations"] += violation.sum(axis=1)
        totals["occultations"] += joint
        totals["masked_actions"] += (~allowed).sum(axis=1)
        info = {
            "science": arrived[:, SCIENCE],
            "occultation": arrived[:, OCCULTATION_KIND],
            "energy_penalty": penalty,
            "masked": ~allowed,
            "executed": executed,
            "messages_delivered": self.delivered_at[:, s + 1],
            "messages_rejected": self.rejected_at[:, s],
        }
        obs, mask = self._observe()
        return obs, mask, reward, self.step_index >= config.horizon_steps, info

    # ------------------------------------------------------------------------- branches
    def branch(self, copies: int) -> OrbitSchedulingBatch:
        """``copies`` copies of each of these episodes (episode-major), in their state now.

        The episodes' draws are shared and every step after this is deterministic, so the
        copies can try different actions from one moment and be compared exactly: the rollout
        search of :mod:`phobos.training.rollout_teacher`. :meth:`sync` brings a branch back to
        this batch's state at any later step; a branch cannot be reset.
        """
        if self.plan is None:
            raise RuntimeError("call reset() before branch()")
        if copies < 1:
            raise ValueError(f"copies must be at least 1, got {copies}")
        index = np.repeat(np.arange(self.num_envs), copies)
        other = copy.copy(self)
        other.num_envs = len(index)
        other._env = np.arange(len(index))[:, None]
        other._rngs = []
        other.plan_ahead, other._ahead = False, None
        other.plan = EpisodePlan(**{name: getattr(self.plan, name)[index] for name in _PLAN_FIELDS})
        for name in ("_latest", "delivered_at", "rejected_at"):
            setattr(other, name, getattr(self, name)[index])
        if self._lookahead is not None:
            other._lookahead = self._lookahead[index]
        other._branched_from, other._parent = index, self
        other.sync(self)
        return other

    def sync(self, parent: OrbitSchedulingBatch) -> None:
        """Take the state of the batch this one branched from, as it is now."""
        index = self._branched_from
        if index is None or parent is not self._parent:
            raise ValueError("sync() takes the batch this one was branched from")
        for name in _DYNAMIC_STATE:
            setattr(self, name, getattr(parent, name)[index])
        self.step_index = parent.step_index
        self.totals = {name: total[index] for name, total in parent.totals.items()}

    def delivered_by_horizon(self) -> np.ndarray:
        """Science value ``[env]`` already downlinked that arrives within the episode."""
        return self.pending[:, self.step_index + 1 : self.config.horizon_steps + 1].sum(axis=(1, 2))

    # ----------------------------------------------------------------------- observations
    def _observe(self) -> tuple[np.ndarray, np.ndarray]:
        config, layout = self.config, self.layout
        k = self.step_index
        g = np.array([min(k, config.horizon_steps - 1)])
        n, agents = self.num_envs, len(self.agents)
        tb = self._tables
        obs = static_observation(self.plan, config, layout, tb, np.array([k]), self._lookahead)[
            :, 0
        ]
        crafts = slice(None, CRAFT_COUNT)
        obs[:, crafts, layout.own_field(BATTERY)] = self.battery / tb.battery_wh
        obs[:, crafts, layout.own_field(STORAGE)] = self.storage / tb.storage_bits
        obs[:, crafts, layout.own_field(STORED_VALUE)] = np.minimum(
            self.stored_value.sum(axis=2) / STORED_VALUE_SCALE, 1.0
        )
        latest = self._latest[:, k]  # [n, receiver, sender], -1 when nothing arrived
        received = latest >= 0
        content = self.intents[env_index(n), np.maximum(latest, 0), self._agent[:, None, :]]
        intent = intent_features(content, received, (k - latest) / config.horizon_steps)
        obs[:, :, layout.intents] = intent.reshape(n, agents, -1)

        static = static_masks(self.plan, tb, g)
        self.mask = combine_masks(static, self.battery, self.storage, tb)[:, 0]
        return obs.astype(np.float32), self.mask


_PLAN_FIELDS = tuple(field.name for field in dataclasses.fields(EpisodePlan))
_DYNAMIC_STATE = ("battery", "storage", "stored_value", "pending", "intents", "mask")
"""What a step changes, per episode (with ``step_index`` and ``totals``)."""


def prepare_episodes(
    config: OrbitSchedulingConfig, rngs: Sequence[np.random.Generator]
) -> dict[str, np.ndarray]:
    """Everything a reset tabulates for one episode per generator, as named arrays.

    The plan's fields, the intent deliveries (``latest``, ``delivered``, ``rejected``) and,
    when the observation has it, the lookahead table. A module-level function of the
    configuration and the generators only, so that a background process can run it
    (:mod:`phobos.envs.plan_ahead`).
    """
    plan = plan_episodes(config, list(rngs))
    prepared = {name: getattr(plan, name) for name in _PLAN_FIELDS}
    latest, delivered, rejected = intent_deliveries(config, plan)
    prepared.update(latest=latest, delivered=delivered, rejected=rejected)
    if ObservationLayout.for_config(config).lookahead:
        prepared["lookahead"] = lookahead_table(plan, config)
    return prepared


def initial_state(
    plan: EpisodePlan, tables: CraftTables
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Battery (Wh) and storage (bits) ``[n, 2]`` and stored value ``[n, 2, kind]`` at reset.

    Batteries start 60-100% full and memories 0-20% full, with data worth the spacecraft's
    least valuable observation per bit.
    """
    init = plan.initial_state
    # The plan's draws: each spacecraft's battery share, then its memory share.
    battery = tables.battery_wh * (0.6 + 0.4 * init[:, :CRAFT_COUNT])
    storage = tables.storage_bits * 0.2 * init[:, CRAFT_COUNT:]
    instruments = slice(FIRST_INSTRUMENT, None)
    per_bit = (tables.value[:, instruments] / tables.data_bits[:, instruments]).min(axis=1)
    stored_value = np.zeros(storage.shape + (2,))
    stored_value[..., SCIENCE] = storage * per_bit
    return battery, storage, stored_value


def env_index(n: int) -> np.ndarray:
    """Index broadcasting over the environment axis of ``[n, A, A]`` gathers."""
    return np.arange(n)[:, None, None]


def intent_deliveries(
    config: OrbitSchedulingConfig, plan: EpisodePlan
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """When each intent message arrives, computed from the contact plan like the router does.

    Every agent sends one intent to every other agent each step. Per link: a message sent
    while the link is closed waits (tail drop once ``message_buffer`` are waiting), leaves at
    the next open step, arrives one light time later and is seen in the first observation at
    or after its arrival (never the one it was sent from). Returns, for every observation
    index ``k`` in ``0..T``, the latest send step delivered from each sender to each receiver
    (``-1`` if none) as ``[n, T + 1, receiver, sender]``; the copies delivered by each ``k``
    ``[n, T + 1]``; and the copies rejected at each send step ``[n, T]``.
    """
    n, steps, agents, _ = plan.link_open.shape
    dt = config.step_seconds
    # Link-major layout [n, sender, receiver, T]: every scan below runs along contiguous time.
    link_open = np.ascontiguousarray(np.moveaxis(plan.link_open, 1, -1))
    delay_s = np.ascontiguousarray(np.moveaxis(plan.link_delay_s, 1, -1))
    lost = np.moveaxis(plan.message_lost, 1, -1)
    index = np.arange(steps, dtype=np.int32)
    last_open = np.where(link_open, index, np.int32(-1))
    np.maximum.accumulate(last_open, axis=-1, out=last_open)
    accepted = (index - last_open <= config.message_buffer) | link_open
    depart = next_open_step(np.moveaxis(link_open, -1, -3))
    depart = np.ascontiguousarray(np.moveaxis(depart, -3, -1)).astype(np.int32)
    departs = depart < steps
    np.minimum(depart, steps - 1, out=depart)
    arrival = np.take_along_axis(delay_s, depart, axis=-1)
    arrival += depart * dt
    # First observation time k * dt at or after arrival, compared exactly as the router does.
    k = np.ceil(arrival / dt).astype(np.int32)
    k -= (k - 1) * dt >= arrival
    k += k * dt < arrival
    np.maximum(k, index + 1, out=k)
    valid = accepted & departs & ~lost
    valid[:, np.arange(agents), np.arange(agents)] = False
    np.minimum(k, steps + 1, out=k)
    k[~valid] = steps + 1  # steps + 1: not seen in this episode

    # Latest send step seen by observation k: max{s : k(s) <= k}. The suffix minimum of k(s)
    # is non-decreasing, so that set is a prefix of s; count its length with a histogram.
    suffix_min = np.minimum.accumulate(k[..., ::-1], axis=-1)[..., ::-1]
    rows = suffix_min.reshape(-1, steps)
    width = steps + 2
    flat = (np.arange(rows.shape[0], dtype=np.int64)[:, None] * width + rows).ravel()
    counts = np.bincount(flat, minlength=rows.shape[0] * width).reshape(n, agents, agents, width)
    latest = np.cumsum(counts[..., : steps + 1], axis=-1, dtype=np.int32) - 1
    # [n, k, receiver, sender]: one step's table is then a single slice.
    latest = np.ascontiguousarray(np.transpose(latest, (0, 3, 2, 1)))

    flat_k = (np.arange(n, dtype=np.int64)[:, None] * width + k.reshape(n, -1)).ravel()
    delivered = np.bincount(flat_k, minlength=n * width).reshape(n, width)[:, : steps + 1]
    off_diagonal = ~np.eye(agents, dtype=bool)[..., None]
    rejected = (~accepted & off_diagonal).sum(axis=(1, 2))
    return latest, delivered, rejected
