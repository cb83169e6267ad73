"""Autonomous sampling on Phobos, as a PettingZoo ``ParallelEnv``.

## Description
Phobos-Grunt has landed on Phobos on a real date and must fill its soil container of about
200 g before the return launch window. In front of it lies a procedurally generated site
(seeded) of fine regolith, coarse material and rock: each cell has a hidden composition
class and science value drawn from documented priors, and a hazard (rock, slope) that can
make the sampler fail or break. The lander can image an area (cheap, wide, noisy onboard
class estimates), run its spectrometer on one cell (accurate, costs time and energy), and
sample a cell with its arm, stowing what it collects. Phobos's 7.66 h day brings nights
without solar power or imaging. Earth is in view only part of each day, and then only when a
ground station sees Mars; the light time is 3 to 22 minutes from the real date. The science
team on Earth sees the lander's data only after it arrives, classifies it better than the
lander's onboard classifier can, and sends back a ranked advice that arrives late again. The
lander must decide when to act on its own and when the ground's advice is worth waiting for.

## Agents
``phobos_grunt`` (the lander) and ``science_team`` (on Earth, reached through
``config.stations``).

## Observation
``Dict(observations=Box(0, 1, (D,), float32), action_mask=Box(0, 1, (n,), int8))``; the
vector's layout is :class:`~phobos.envs.sampling.layout.SamplingLayout`: the sky now (Sun,
Earth, contact, next contact, light time), the agent's own state, and per cell the agent's
beliefs (class and material probabilities, expected value, hazard, slope), what has been
measured, and the latest advice. The lander's beliefs come from its own images and spectra;
the team's only from data that has reached Earth. The truth stays hidden from both:
``env.site`` and ``env.stowed_compositions`` exist for oracles and evaluation only.

## Action
Lander, ``Discrete(2 + areas + 2 * cells)``: wait, send data (only in a contact window, when
there is unsent data), image area ``k`` (in daylight), spectrometer on cell ``c``, sample
cell ``c`` (the arm digs and stows; each cell once). Activities take
``lander.*_steps`` steps, during which only wait is allowed. Science team,
``Discrete(1 + cells)``: no advice, or advise cell ``c`` (for cells it has data on): the
message ranks ``c`` first and the ground's next best cells after it, and waits for a contact.
Messages both ways cross the store-and-forward router with the real light time and loss. An
action outside the space raises ``ValueError`` naming the agent and the valid choices; an
action the mask forbids (an out-of-reach or already sampled cell, imaging at night, an
activity the battery cannot pay for, anything while busy) is carried out as a wait (no
advice) and flagged in ``info["action_masked"]``.

## Reward
Team reward, the same for both agents: the science value of each sample when stowed (scaled
by the share of its mass that fits), plus ``diversity_bonus`` the first time each composition
class is stowed, minus ``failure_penalty`` per failed sampling attempt and
``energy_violation_penalty`` per step ending with the battery flat. ``info`` holds the parts.

## Termination
All agents terminate when the container is sealed (less than ``lander.min_sample_g`` of room
left) or a failure damages the sampler; otherwise the episode is truncated after
``horizon_steps`` (the return window). The final step's ``info["episode"]`` summarises it.

## Arguments
:class:`~phobos.envs.sampling.config.SamplingConfig`.

## Version history
- v0: first version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from phobos.comms.link import TabulatedLinks
from phobos.comms.message import Message
from phobos.comms.message_bus import MessageBusFactory
from phobos.envs.messaging_env import MessagingEnv
from phobos.envs.sampling.belief import (
    Belief,
    draw_labels,
    label_log_likelihood,
    prior_features,
)
from phobos.envs.sampling.config import AGENTS, LANDER, MATERIALS, SCIENCE_TEAM, SamplingConfig
from phobos.envs.sampling.layout import SamplingLayout
from phobos.envs.sampling.messages import (
    KINDS as MESSAGE_KINDS,
)
from phobos.envs.sampling.messages import (
    TeamSpeaker,
    advice_message,
    data_message,
    data_report,
    lander_messages,
    received_keys,
)
from phobos.envs.sampling.plan import EpisodeSky, plan_episode
from phobos.envs.sampling.site import Site, area_cells, generate_site, reachable_cells
from phobos.envs.sampling.state import (
    IMAGE,
    KINDS,
    SAMPLE,
    SEND,
    SPECTROMETER,
    WAIT,
    LanderState,
    TeamState,
    activity_costs,
    step_battery,
)
from phobos.envs.validation import action_index, check_action_keys


class PhobosSamplingEnv(MessagingEnv):
    """``phobos-sampling-v0``; see the module docstring for the full card.

    Args:
        config: Task arguments; defaults to :class:`SamplingConfig`.
        render_mode: Only ``None`` is supported (the live dashboard renders instead).
        message_bus: Factory of the episode's :class:`~phobos.comms.message_bus.MessageBus`
            (``endpoints, links, buffer_limit``); the in-process
            :class:`~phobos.comms.router.Router` by default.

    """

    metadata = {"name": "phobos_sampling_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        config: SamplingConfig | None = None,
        render_mode: str | None = None,
        message_bus: MessageBusFactory | None = None,
    ) -> None:
        self.config = config = config or SamplingConfig()
        config.validate()
        site, lander = config.site, config.lander
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self.layout = layout = SamplingLayout(
            site.cells, site.areas, len(site.compositions), len(MATERIALS)
        )
        self._counts = {LANDER: layout.lander_actions, SCIENCE_TEAM: layout.team_actions}
        self._setup(render_mode, message_bus, self._counts, layout.size)
        # Action index -> (kind, target), and per-kind costs, as plain Python for the step.
        self._decoded = [
            (KINDS.index(kind), target)
            for kind, target in map(layout.decode, range(layout.lander_actions))
        ]
        self._steps_of, self._load_w = activity_costs(lander)
        self._areas = area_cells(site)
        self._reachable = reachable_cells(site)
        classes = len(site.compositions)
        self._log_material = label_log_likelihood(lander.material_accuracy, len(MATERIALS))
        self._log_onboard = label_log_likelihood(lander.onboard_accuracy, classes)
        self._log_ground = label_log_likelihood(lander.ground_accuracy, classes)
        self._log_spectrum = label_log_likelihood(lander.spectrometer_accuracy, classes)
        self._target = np.isin(site.compositions, site.target_compositions)
        # Every episode starts from the same prior beliefs: compute their features once.
        self._prior_block = prior_features(site, layout, self._reachable)
        self._rng: np.random.Generator | None = None
        self.sky: EpisodeSky | None = None
        self.site: Site | None = None
        self._episode = 0
        self._team_received: list[list[Any]] = []
        self._speaker: TeamSpeaker | None = None

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, Any]]]:
        """Land on a new site; ``seed`` reseeds the environment's own generator only."""
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        config, layout = self.config, self.layout
        self.sky = sky = plan_episode(config, self._rng)
        self.site = generate_site(config.site, self._rng)
        self._open_bus(
            self.possible_agents,
            TabulatedLinks(
                self.possible_agents,
                config.step_seconds,
                sky.link_open,
                sky.link_delay_s,
                sky.message_lost,
            ),
            config.message_buffer,
        )
        self._obs = np.zeros((2, layout.size))
        blocks = self._obs[:, layout.header :].reshape(2, layout.cells, layout.cell_size)
        blocks[:] = self._prior_block
        self._lander = LanderState(config, layout, blocks[0], sky.start_battery)
        self._team = TeamState(config, layout, blocks[1])
        self._lander.belief = Belief(config.site, layout, blocks[0], fresh=True)
        self._team.belief = Belief(config.site, layout, blocks[1], fresh=True)
        # Python lists: scalar indexing of lists is several times cheaper than numpy's.
        self._solar_wh = sky.solar_wh.tolist()
        self._image_ok = sky.image_ok.tolist()
        self._contact = sky.surface.contact.tolist()
        self._seq = [0, 0]
        self._step = 0
        self._episode += 1
        self._team_received = []
        self.agents = list(self.possible_agents)
        return self._observe(), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Carry out one action per agent; see the module docstring for the semantics."""
        if not self.agents:
            raise RuntimeError("the episode is over: call reset() before step()")
        (action, advice), masked = self._check_actions(actions)
        config, s, lander = self.config, self._step, self._lander
        value = bonus = failure = 0.0

        if lander.busy_left == 0 and action:
            kind, target = self._decoded[action]
            lander.start(kind, target, self._steps_of[kind])
            if kind == SAMPLE:
                lander.count_decision(target)
        kind = lander.activity if lander.busy_left else WAIT
        lander.battery_wh, violation = step_battery(
            lander.battery_wh, self._solar_wh[s], self._load_w[kind], config
        )
        if lander.busy_left:
            lander.busy_left -= 1
            if lander.busy_left == 0:
                target = lander.target
                if kind == IMAGE:
                    self._image(target)
                elif kind == SPECTROMETER:
                    self._spectrum(target)
                elif kind == SAMPLE:
                    value, bonus, failure = self._sample(target)
                elif kind == SEND:
                    report = data_report(lander.onboard(), lander.battery_wh, config)
                    lander.clear_sent()
                    self._send(data_message(s, config.step_seconds, self._seq[0], report))
        if advice:
            advised = self._team.advise(advice - 1)
            self._send(advice_message(s, config.step_seconds, self._seq[1], advised))

        self._step = s + 1
        self._deliver((s + 1) * config.step_seconds)
        energy = config.energy_violation_penalty if violation else 0.0
        reward = value + bonus - failure - energy
        totals = lander.totals
        totals["energy_violations"] += violation
        totals["masked_actions"] += masked[0] + masked[1]
        terminated = not lander.sampler_ok or lander.sealed
        truncated = not terminated and self._step >= config.horizon_steps
        observations = self._observe()
        infos = {
            agent: {
                "sample_value": value,
                "diversity_bonus": bonus,
                "failure_penalty": failure,
                "energy_penalty": energy,
                "action_masked": masked[i],
                "executed_action": (action, advice)[i],
            }
            for i, agent in enumerate(self.possible_agents)
        }
        if terminated or truncated:
            summary = self.episode_summary()
            for info in infos.values():
                info["episode"] = summary
            self.agents = []
        return (
            observations,
            {LANDER: reward, SCIENCE_TEAM: reward},
            {LANDER: terminated, SCIENCE_TEAM: terminated},
            {LANDER: truncated, SCIENCE_TEAM: truncated},
            infos,
        )

    def action_names(self, agent: str) -> tuple[str, ...]:
        """Names of ``agent``'s actions, in action-index order."""
        layout = self.layout
        if self._check_agent(agent) == LANDER:
            decoded = map(layout.decode, range(layout.lander_actions))
            return tuple(k if k in ("wait", "send") else f"{k} {t}" for k, t in decoded)
        return ("no_advice",) + tuple(f"advise cell {c}" for c in range(layout.cells))

    def episode_summary(self) -> dict[str, float]:
        """Totals of the episode so far (the final step's ``info["episode"]``).

        Keys: ``sample_value``, ``diversity_bonus``, ``failure_penalty`` (reward parts);
        ``samples``, ``sample_mass_g``, ``classes_stowed``, ``target_fraction`` (share of
        samples of ``site.target_compositions``), ``failures``, ``sampler_damaged``,
        ``container_sealed``, ``energy_violations``, ``masked_actions``; autonomy:
        ``decisions_without_ground`` and ``samples_with_advice`` (sampling attempts started
        on a cell absent from, or present in, the latest ranking received); messages:
        ``data_messages``, ``advice_messages`` and the router's ``messages_sent``,
        ``messages_delivered``, ``messages_rejected``, ``messages_lost``; ``steps``.
        """
        lander = self._lander
        return {
            **lander.totals,
            "classes_stowed": len(lander.stowed_classes),
            "target_fraction": lander.target_fraction(self._target),
            "sampler_damaged": not lander.sampler_ok,
            "container_sealed": lander.sealed,
            "steps": self._step,
            **self.message_counts(),
        }

    @property
    def stowed_compositions(self) -> tuple[int, ...]:
        """Classes of the samples stowed so far: hidden from the agents (oracles, evaluation)."""
        return tuple(composition for _, composition, _, _ in self._lander.stowed)


    # ------------------------------------------------------------------------- activities
    def _image(self, area: int) -> None:
        cells, site, lander = self._areas[area], self.site, self.config.lander
        rng, classes = self._rng, len(self.config.site.compositions)
        material = draw_labels(site.material[cells], lander.material_accuracy, len(MATERIALS), rng)
        onboard = draw_labels(site.composition[cells], lander.onboard_accuracy, classes, rng)
        ground = draw_labels(site.composition[cells], lander.ground_accuracy, classes, rng)
        slope = site.slope_deg[cells] + lander.slope_noise_deg * rng.standard_normal(len(cells))
        self._lander.belief.add_image(
            cells, self._log_material[material], self._log_onboard[onboard], slope
        )
        self._lander.record_image(cells, material, ground, slope)

    def _spectrum(self, cell: int) -> None:
        classes = len(self.config.site.compositions)
        truth = self.site.composition[cell : cell + 1]
        label = int(
            draw_labels(truth, self.config.lander.spectrometer_accuracy, classes, self._rng)[0]
        )
        self._lander.belief.add_spectrum(cell, self._log_spectrum[label])
        self._lander.record_spectrum(cell, label)

    def _sample(self, cell: int) -> tuple[float, float, float]:
        site, config = self.site, self.config
        lander = self._lander
        lander.mark_attempted(cell)
        if site.failure_draw[cell] < site.failure_probability[cell]:
            damaged = bool(site.damage_draw[cell] < config.site.damage_given_failure)
            lander.record_failure(damaged)
            return 0.0, 0.0, config.failure_penalty
        mass = min(float(site.mass_g[cell]), lander.room_g)
        value = float(site.value[cell]) * mass / float(site.mass_g[cell])
        composition = int(site.composition[cell])
        new_class = lander.stow(cell, composition, mass, value)
        return value, (config.diversity_bonus if new_class else 0.0), 0.0

    # ---------------------------------------------------------------------------- messages
    def _send(self, message: Message) -> None:
        self.router.send(message)
        self._seq[0 if message.sender == LANDER else 1] += 1
        self._lander.totals[f"{message.kind}_messages"] += 1

    def _deliver(self, until: float) -> None:
        for receiver, message in self.router.deliver(until):
            if receiver == SCIENCE_TEAM:
                self._team_received.append([message.sender, message.seq])
                self._team.receive_data(
                    message, self._step, self._log_material, self._log_ground, self._log_spectrum
                )
            else:
                self._lander.receive_advice(message, self.config.step_seconds)

    # ------------------------------------------------- agents that send their own messages
    message_kinds = MESSAGE_KINDS
    """Every message kind an agent of this task sends."""

    def agent_sensing(self, agent: str) -> dict[str, Any]:
        """What ``agent`` senses now beyond its observation: the world's side channel.

        The lander: its instruments' records not yet sent, its battery, container and activity
        (:meth:`~phobos.envs.sampling.state.LanderState.onboard`) and ``solar_wh``, what its
        array delivers over this step. The science team: ``episode`` (this environment's
        count of resets) and ``received``, ``[sender, seq]`` of every data copy delivered to
        it this episode, in order (which copies, never what they say: the content comes from
        the relay). See :mod:`phobos.envs.sampling.messages`.
        """
        if self._check_agent(agent) == LANDER:
            g = min(self._step, self.config.horizon_steps - 1)
            return {**self._lander.onboard(), "solar_wh": self._solar_wh[g]}
        return {"episode": self._episode, "received": list(self._team_received)}

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

        Args:
            agent: The sender.
            action: Its action.
            observation: Its observation of the step.
            step: The step.
            seq: Its sequence number for the next message.
            sensing: Its :meth:`agent_sensing` of the step (sent by the world).
            copies: For the science team, the copies ``sensing["received"]`` names, in order.

        Raises:
            ValueError: if ``sensing`` is missing or malformed.

        """
        if self._check_agent(agent) == LANDER:
            return lander_messages(
                action, observation, sensing, config=self.config, decoded=self._decoded,
                steps_of=self._steps_of, load_w=self._load_w, step=step, seq=seq,
            )  # fmt: skip
        keys = received_keys(sensing)
        if [(m.sender, m.seq) for m in copies] != keys:
            raise ValueError("the science team's copies are not those its sensing names")
        if self._speaker is None:
            logs = (self._log_material, self._log_ground, self._log_spectrum)
            self._speaker = TeamSpeaker(self.config, self.layout, self._prior_block, logs)
        self._speaker.catch_up(sensing.get("episode"), list(copies), step)
        return self._speaker.messages(action, observation, step, seq)

    # ------------------------------------------------------------------------ observation
    def _observe(self) -> dict[str, dict[str, np.ndarray]]:
        k, obs = self._step, self._obs
        obs[:, : self.sky.shared.shape[1]] = self.sky.shared[k]
        g = min(k, self.config.horizon_steps - 1)
        lander_mask = self._lander.write(obs[0], k, self._contact[g], self._image_ok[k])
        team_mask = self._team.write(obs[1], k)
        obs32 = obs.astype(np.float32)
        return {
            LANDER: {"observations": obs32[0], "action_mask": lander_mask},
            SCIENCE_TEAM: {"observations": obs32[1], "action_mask": team_mask},
        }

    # ----------------------------------------------------------------------------- checks

    def _check_actions(self, actions: dict[str, Any]) -> tuple[tuple[int, int], list[bool]]:
        check_action_keys(actions, self.agents, self.possible_agents)
        executed, masked = [], []
        for agent, mask in ((LANDER, self._lander.mask), (SCIENCE_TEAM, self._team.mask)):
            index = action_index(agent, actions[agent], self._counts[agent], self._choices(agent))
            allowed = mask[index] == 1
            executed.append(index if allowed else 0)
            masked.append(not allowed)
        return (executed[0], executed[1]), masked

    def _choices(self, agent: str) -> Callable[[], str]:
        if agent == LANDER:
            return self.layout.describe_lander_actions
        return self.layout.describe_team_actions
