"""Cooperative observation scheduling in Mars orbit, as a PettingZoo ``ParallelEnv``.

## Description
Phobos-Grunt and Yinghuo-1 orbit Mars on real dates; ground stations on Earth see Mars part of
each day. Every five minutes each spacecraft picks one activity and each station picks which
spacecraft to track. Science counts only when its data reaches Earth, one light time after a
downlink that a tracking station receives. A satellite-to-satellite radio occultation counts
only when both spacecraft take part while their radio path grazes Mars's ionosphere. Power,
memory, eclipses, Mars blocking the line of sight and station visibility all bind.

## Agents
``phobos_grunt``, ``yinghuo1`` and ``ground_<station>`` for each configured station.

## Observation
``Dict(observations=Box(0, 1, (D,), float32), action_mask=Box(0, 1, (n,), int8))``; the
vector's layout is :class:`~phobos.envs.orbit_scheduling.layout.ObservationLayout`. It holds
the intent messages received so far: each agent sends one every step through the
store-and-forward router, and it arrives one light time later, only while a link exists.
From v1 it ends with the lookahead block an onboard planner computes from its ephemeris:
steps until and steps lasting of the next eclipse, Earth visibility and contact of each
spacecraft with the contact's best downlink rate, each station's next pass and the next
occultation window (divided by ``horizon_steps``; 1 and 0 when none comes in the episode).

## Action
``Discrete(7)`` for a spacecraft (``config.ACTIVITIES``), ``Discrete(3)`` for a station (idle,
track Phobos-Grunt, track Yinghuo-1). An action outside the space raises ``ValueError``; an
action the mask forbids is carried out as idle and flagged in ``info["action_masked"]``.

## Reward
Team reward, the same for every agent: science value arriving on Earth this step, minus
``energy_violation_penalty`` per spacecraft whose battery ran flat. ``info`` holds the parts.

## Termination
None; every episode is truncated after ``horizon_steps`` (one day by default).

## Arguments
:class:`~phobos.envs.orbit_scheduling.config.OrbitSchedulingConfig` (v0),
:class:`~phobos.envs.orbit_scheduling.config.OrbitSchedulingConfigV1` (v1).

## Version history
- v0: first version.
- v1: the lookahead block (above); a solar-conjunction blackout: no downlink, tracking or
  spacecraft-station intents while the Sun is within ``solar_conjunction_deg`` (2) of Mars in
  Earth's sky (v0 downlinks through the 2013-04-18 conjunction); and the Earth rotation angle
  advanced from the ephemeris sample at its known rate instead of an interpolated unwrapped
  table (exact on any grid; v0's numbers stay as they were). Policies of one version are
  refused on the other: the observation spaces and the env ids differ.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from phobos.comms.link import TabulatedLinks
from phobos.comms.message import BROADCAST, Message
from phobos.comms.message_bus import MessageBusFactory
from phobos.envs.messaging_env import MessagingEnv
from phobos.envs.orbit_scheduling.batch import initial_state
from phobos.envs.orbit_scheduling.config import (
    ACTIVITIES,
    CHARGE,
    CRAFT_COUNT,
    DOWNLINK,
    IDLE,
    OCCULTATION,
    OCCULTATION_KIND,
    SCIENCE,
    SPACECRAFT,
    STATION_ACTIVITIES,
    TRACK_FIRST,
    YINGHUO1_INDEX,
    OrbitSchedulingConfig,
)
from phobos.envs.orbit_scheduling.layout import (
    BATTERY,
    INTENT_AGE,
    INTENT_BATTERY,
    INTENT_RECEIVED,
    INTENT_STORAGE,
    MAX_ACTIONS,
    STORAGE,
    STORED_VALUE,
    ObservationLayout,
)
from phobos.envs.orbit_scheduling.messages import INTENT, intent_payload, messages_for
from phobos.envs.orbit_scheduling.observation import (
    STORED_VALUE_SCALE,
    CraftTables,
    intent_features,
    static_masks,
    static_observation,
)
from phobos.envs.orbit_scheduling.plan import EpisodePlan, plan_episodes
from phobos.envs.orbit_scheduling.value import magnetosphere_activities, value_factor
from phobos.envs.validation import action_index, check_action_keys

__all__ = ["INTENT", "OrbitSchedulingEnv"]


class OrbitSchedulingEnv(MessagingEnv):
    """``orbit-scheduling-v0`` and ``-v1`` (by ``config.version``); see the module docstring.

    Args:
        config: Task arguments; defaults to :class:`OrbitSchedulingConfig`.
        render_mode: Only ``None`` is supported (the live dashboard renders instead).
        message_bus: Factory of the episode's :class:`~phobos.comms.message_bus.MessageBus`
            (``endpoints, links, buffer_limit``); the in-process
            :class:`~phobos.comms.router.Router` by default.

    """

    metadata = {"name": "orbit_scheduling_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        config: OrbitSchedulingConfig | None = None,
        render_mode: str | None = None,
        message_bus: MessageBusFactory | None = None,
    ) -> None:
        self.config = config = config or OrbitSchedulingConfig()
        config.validate()
        self.possible_agents = list(config.agents)
        self._agent_index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self.agents: list[str] = []
        self.layout = ObservationLayout.for_config(config)
        # The id's version follows the config's, so that loaders can refuse other versions.
        self.metadata = {**type(self).metadata, "name": f"orbit_scheduling_v{config.version}"}
        self._tables = tables = CraftTables.from_config(config)
        # Python lists of the spacecraft tables for the scalar step (numpy scalars are slow).
        self._craft = {
            name: getattr(tables, name).tolist()
            for name in (
                "peak_w",
                "bus_w",
                "load_w",
                "pointing",
                "battery_wh",
                "storage_bits",
                "data_bits",
                "value",
            )
        }
        self._action_counts = {
            agent: len(ACTIVITIES[agent]) if agent in SPACECRAFT else len(STATION_ACTIVITIES)
            for agent in self.possible_agents
        }
        self._setup(render_mode, message_bus, self._action_counts, self.layout.size)
        # Built once: the step only calls one when an action is out of range.
        self._choices = {
            agent: functools.partial(_describe_actions, self.action_names(agent))
            for agent in self.possible_agents
        }
        self._field_activities = magnetosphere_activities(config)
        self._rng: np.random.Generator | None = None
        self.plan: EpisodePlan | None = None

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, Any]]]:
        """Start an episode; ``seed`` reseeds the environment's own generator only."""
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        config, tables = self.config, self._tables
        self.plan = plan = plan_episodes(config, [self._rng])
        steps = config.horizon_steps
        agents = self.possible_agents
        self._static_obs = static_observation(
            plan, config, self.layout, tables, np.arange(steps + 1)
        )[0]
        whole = static_masks(plan, tables, np.arange(steps))
        battery, storage, stored_value = initial_state(plan, tables)
        self._battery = battery[0].tolist()
        self._storage = storage[0].tolist()
        self._stored_value = stored_value[0].tolist()
        lag = math.ceil(float(plan.light_time_s.max()) / config.step_seconds) + 2
        self._pending = [[0.0, 0.0] for _ in range(steps + lag + 1)]
        # Per-step tables as Python lists: scalar indexing of lists is 5x cheaper than numpy's.
        self._sunlit = plan.sunlit[0].tolist()
        self._solar_scale = plan.solar_scale[0].tolist()
        self._magnetosphere = plan.magnetosphere[0].tolist()
        self._boost = plan.occultation_boost[0].tolist()
        self._light_time = plan.light_time_s[0].tolist()
        self._downlink = plan.downlink_bits[0].tolist()
        self._open_bus(
            agents,
            TabulatedLinks(
                agents,
                config.step_seconds,
                plan.link_open[0],
                plan.link_delay_s[0],
                plan.message_lost[0],
            ),
            config.message_buffer,
        )
        count = len(agents)
        self._intent_sent = np.full((count, count), -1, dtype=np.int64)
        received = self._intent_sent >= 0
        self._intent_block = intent_features(
            np.zeros((count, count, 3)), received, np.ones((count, count))
        )
        # Station rows of the mask never depend on state: tabulate them for the episode.
        self._station_masks = np.zeros((steps, len(agents) - 2, MAX_ACTIONS), dtype=np.int8)
        self._station_masks[:, :, : len(STATION_ACTIVITIES)] = whole.stations[0]
        self._condition = whole.condition[0].tolist()
        self._net_wh = whole.net_wh[0].tolist()
        self._seq = [0] * count
        self._step = 0
        self._totals = {
            "science": 0.0,
            "occultation": 0.0,
            "energy_violations": 0,
            "occultations": 0,
            "masked_actions": 0,
        }
        self.agents = list(agents)
        observations = self._observe()
        return observations, {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Carry out one action per agent; see the module docstring for the semantics."""
        if not self.agents:
            raise RuntimeError("the episode is over: call reset() before step()")
        executed, masked = self._check_actions(actions)
        config, tb, s = self.config, self._tables, self._step
        act = executed[:CRAFT_COUNT]
        step_seconds = config.step_seconds

        now = s * step_seconds
        # The task's message rule (messages.py), read from what each agent observed: the same
        # function builds the messages an agent process sends on its own in the live system.
        vectors, layout = self._last_vectors, self.layout
        for i, agent in enumerate(self.agents):
            payload = intent_payload(i < 2, executed[i], vectors[i], layout)
            self.router.send(Message(agent, BROADCAST, INTENT, now, self._seq[i], payload))
            self._seq[i] += 1

        scale, sunlit = self._solar_scale[s], self._sunlit[s]
        joint = act[0] == OCCULTATION and act[1] == OCCULTATION
        field_data = act[YINGHUO1_INDEX] in self._field_activities
        in_magnetosphere = self._magnetosphere[s]
        boost = self._boost[s] if joint else 0.0
        violations = 0
        delivered_value = [0.0, 0.0]
        downlink = self._downlink[s]
        arrival = s + 1 + math.ceil(self._light_time[s] / step_seconds)
        craft = self._craft
        for c in range(CRAFT_COUNT):
            a = act[c]
            solar = craft["peak_w"][c] * scale * sunlit[c] * craft["pointing"][c][a]
            load = craft["bus_w"][c]
            battery = self._battery[c] + (solar - load - craft["load_w"][c][a]) * tb.step_hours
            if battery < 0.0:
                violations += 1
            self._battery[c] = min(max(battery, 0.0), craft["battery_wh"][c])

            occultation = a == OCCULTATION
            factor = value_factor(
                occultation,
                boost,
                c == YINGHUO1_INDEX and field_data,
                in_magnetosphere,
                config.magnetosphere_boost,
            )
            kind = OCCULTATION_KIND if occultation else SCIENCE
            if factor > 0:
                self._storage[c] = self._storage[c] + craft["data_bits"][c][a]
            stored = self._stored_value[c]
            stored[kind] += craft["value"][c][a] * factor

            if a == DOWNLINK:
                available = max(
                    row[c] if executed[CRAFT_COUNT + st] == TRACK_FIRST + c else 0.0
                    for st, row in enumerate(downlink)
                )
                sent = min(self._storage[c], available)
                share = sent / max(self._storage[c], 1.0)
                for k in (SCIENCE, OCCULTATION_KIND):
                    moved = stored[k] * share
                    stored[k] -= moved
                    delivered_value[k] += moved
                self._storage[c] = self._storage[c] - sent
        pending = self._pending[arrival]
        pending[SCIENCE] += delivered_value[SCIENCE]
        pending[OCCULTATION_KIND] += delivered_value[OCCULTATION_KIND]

        self._step = s + 1
        self._deliver_intents((s + 1) * step_seconds)
        science, occultation = self._pending[s + 1]
        penalty = violations * config.energy_violation_penalty
        reward = science + occultation - penalty
        totals = self._totals
        totals["science"] += science
        totals["occultation"] += occultation
        totals["energy_violations"] += violations
        totals["occultations"] += joint
        totals["masked_actions"] += sum(masked)

        truncated = self._step >= config.horizon_steps
        observations = self._observe()
        agents = self.agents
        rewards = dict.fromkeys(agents, reward)
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        infos = {
            agent: {
                "science": science,
                "occultation": occultation,
                "energy_penalty": penalty,
                "action_masked": masked[i],
                "executed_action": executed[i],
            }
            for i, agent in enumerate(agents)
        }
        if truncated:
            summary = self.episode_summary()
            for info in infos.values():
                info["episode"] = summary
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def episode_summary(self) -> dict[str, float]:
        """Totals of the episode so far: science, occultations, violations and messages."""
        return {**self._totals, **self.message_counts()}


    # -------------------------------------------------------------------------- internals

    def _check_actions(self, actions: dict[str, Any]) -> tuple[list[int], list[bool]]:
        check_action_keys(actions, self.agents, self.possible_agents)
        mask = self._mask
        executed, masked = [], []
        for i, agent in enumerate(self.agents):
            index = action_index(
                agent, actions[agent], self._action_counts[agent], self._choices[agent]
            )
            allowed = bool(mask[i, index])
            executed.append(index if allowed else 0)
            masked.append(not allowed)
        return executed, masked

    def action_names(self, agent: str) -> tuple[str, ...]:
        """Names of ``agent``'s actions, in action-index order."""
        self._check_agent(agent)
        return ACTIVITIES[agent] if agent in ACTIVITIES else STATION_ACTIVITIES

    message_kinds = (INTENT,)
    """Every message kind an agent of this task sends."""

    def agent_messages(
        self,
        agent: str,
        action: int,
        observation: dict[str, Any],
        step: int,
        seq: int,
        sensing: Any = None,
        copies: Any = (),
    ) -> list[Message]:
        """The messages ``agent`` sends at ``step`` after ``action``: :meth:`step`'s rule.

        An intent reads only the observation: ``sensing`` and ``copies`` (the side channel and
        the copies it names, for tasks whose rule needs them) are not used.
        """
        step_seconds, spacecraft = self.config.step_seconds, agent in SPACECRAFT
        return messages_for(
            agent, action, observation, spacecraft=spacecraft, layout=self.layout, step=step,
            step_seconds=step_seconds, seq=seq,
        )  # fmt: skip

    def _deliver_intents(self, until: float) -> None:
        index = self._agent_index
        sent = self._intent_sent
        updates: dict[tuple[int, int], tuple[int, float, float]] = {}
        for receiver, message in self.router.deliver(until):
            pair = (index[receiver], index[message.sender])
            # One intent per agent and step, so the sequence number is the send step.
            if message.seq > sent[pair]:
                sent[pair] = message.seq
                updates[pair] = message.payload
        if updates:
            receivers, senders = zip(*updates, strict=True)
            activity, battery, storage = zip(*updates.values(), strict=True)
            rows = self._intent_block[receivers, senders]
            rows[:, :MAX_ACTIONS] = 0.0
            rows[np.arange(len(activity)), activity] = 1.0
            rows[:, INTENT_BATTERY] = battery
            rows[:, INTENT_STORAGE] = storage
            rows[:, INTENT_RECEIVED] = 1.0
            self._intent_block[receivers, senders] = rows

    def _observe(self) -> dict[str, dict[str, np.ndarray]]:
        k, layout, tb = self._step, self.layout, self._tables
        obs = self._static_obs[k].copy()
        crafts = slice(None, CRAFT_COUNT)
        obs[crafts, layout.own_field(BATTERY)] = np.divide(self._battery, tb.battery_wh)
        obs[crafts, layout.own_field(STORAGE)] = np.divide(self._storage, tb.storage_bits)
        stored = [sum(v) for v in self._stored_value]
        obs[crafts, layout.own_field(STORED_VALUE)] = np.minimum(
            np.divide(stored, STORED_VALUE_SCALE), 1.0
        )
        sent = self._intent_sent
        block = self._intent_block
        block[..., INTENT_AGE] = np.where(sent >= 0, (k - sent) / self.config.horizon_steps, 1.0)
        obs[:, layout.intents] = block.reshape(len(self.possible_agents), -1)
        obs32 = obs.astype(np.float32)
        self._last_vectors = obs32

        g = min(k, self.config.horizon_steps - 1)
        condition, net_wh = self._condition[g], self._net_wh[g]
        data, room = self._craft["data_bits"], self._craft["storage_bits"]
        rows = []
        for c in range(CRAFT_COUNT):
            battery, storage = self._battery[c], self._storage[c]
            ok, energy, extra = condition[c], net_wh[c], data[c]
            # Same tests, in the same float order, as observation.combine_masks.
            row = [
                ok[a] and battery + energy[a] >= 0.0 and storage + extra[a] <= room[c]
                for a in range(MAX_ACTIONS)
            ]
            row[DOWNLINK] = row[DOWNLINK] and storage > 0.0
            row[IDLE] = row[CHARGE] = True  # the safe fallbacks
            rows.append(row)
        self._mask = mask = np.concatenate([np.array(rows, dtype=np.int8), self._station_masks[g]])
        return {
            agent: {
                "observations": obs32[i],
                "action_mask": mask[i, : self._action_counts[agent]],
            }
            for i, agent in enumerate(self.possible_agents)
        }


def _describe_actions(names: tuple[str, ...]) -> str:
    return ", ".join(f"{n}={name}" for n, name in enumerate(names))
