"""A tiny third task, defined and registered entirely here: the worked example of adding a task.

Importing this module registers ``tiny-relay-v0``; the id ``tests.tiny_task:tiny-relay-v0``
imports it first (Gymnasium's ``module:id`` rule), which is how the task reaches the
subprocesses of ``phobos run``, ``phobos evaluate``, ``phobos train`` and the world server's
agent processes without touching any file of the package.

Description:
    A scout reports to a base over the store-and-forward router; the base acknowledges a
    report it has received, and the acknowledgement travels back. Each acknowledged report is
    worth one point to the team.
Agents:
    ``scout`` and ``base``.
Observation:
    ``observations``: ``[step / horizon, report waiting (base) or awaiting acknowledgement
    (scout)]``; ``action_mask``: idle is always allowed, the other action when it makes sense.
Action:
    ``Discrete(2)``: ``0`` idle, ``1`` report (scout) or acknowledge (base). A masked action
    is carried out as idle and counted in ``masked_actions``. A scout whose acknowledgement
    has not come ``retry_steps`` after its report may report again (messages may be lost).
Reward:
    Shared: 1 per acknowledgement.
Termination:
    Truncated after ``horizon_steps``.
Version history:
    v0: first version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from phobos.agents.policy import Policy
from phobos.comms.link import TabulatedLinks
from phobos.comms.message import Message
from phobos.comms.message_bus import MessageBusFactory
from phobos.envs import EpisodeMetrics, TaskSpec, register_task, registered_tasks
from phobos.envs.messaging_env import MessagingEnv
from phobos.envs.single_agent import SingleAgentView
from phobos.envs.task import EnvSpec
from phobos.envs.validation import action_index, check_action_keys
from phobos.live.world.views import TelemetryView

ID = "tiny-relay-v0"
QUALIFIED_ID = f"{__name__}:{ID}"
"""The id that imports this module first: what subprocesses are given."""
SCOUT, BASE = "scout", "base"
ACTIONS = {SCOUT: ("idle", "report"), BASE: ("idle", "acknowledge")}


@dataclass(frozen=True)
class TinyConfig:
    """The tiny task's arguments."""

    horizon_steps: int = 12
    """Steps per episode."""
    step_seconds: float = 60.0
    """Simulated seconds per step."""
    delay_s: float = 20.0
    """One-way delay of a message (under a step: it arrives in the step it was sent)."""
    message_buffer: int = 4
    """Most messages waiting for one link."""
    message_loss: float = 0.2
    """Chance that a message is lost in flight (drawn from the episode's own generator)."""
    retry_steps: int = 2
    """Steps after which a scout still awaiting its acknowledgement may report again."""

    def validate(self) -> None:
        """Raise ValueError naming a field out of range."""
        if self.horizon_steps < 1:
            raise ValueError(f"horizon_steps must be at least 1, got {self.horizon_steps}")
        if not 0 <= self.delay_s < self.step_seconds:
            raise ValueError(f"delay_s must lie in [0, step_seconds), got {self.delay_s}")
        if not 0 <= self.message_loss <= 1:
            raise ValueError(f"message_loss must lie in [0, 1], got {self.message_loss}")


class TinyRelayEnv(MessagingEnv):
    """``tiny-relay-v0``; see the module docstring."""

    metadata = {"name": "tiny_relay_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        config: TinyConfig | None = None,
        render_mode: str | None = None,
        message_bus: MessageBusFactory | None = None,
    ) -> None:
        self.config = config = config or TinyConfig()
        config.validate()
        self.possible_agents = [SCOUT, BASE]
        self.agents: list[str] = []
        counts = {agent: len(ACTIONS[agent]) for agent in self.possible_agents}
        self._setup(render_mode, message_bus, counts, 2)
        self._rng: np.random.Generator | None = None

    def action_names(self, agent: str) -> tuple[str, ...]:
        """Names of ``agent``'s actions, by index."""
        return ACTIONS[self._check_agent(agent)]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple:
        """Start an episode; ``seed`` reseeds the environment's own generator only."""
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        config, n = self.config, len(self.possible_agents)
        steps = config.horizon_steps
        lost = self._rng.random((steps, n, n)) < config.message_loss
        self._open_bus(
            self.possible_agents,
            TabulatedLinks(
                self.possible_agents,
                config.step_seconds,
                np.ones((steps, n, n), bool),
                np.full((steps, n, n), config.delay_s),
                lost,
            ),
            config.message_buffer,
        )
        self._step, self._seq, self._since_report = 0, 0, 0
        self._waiting = {SCOUT: False, BASE: False}  # awaiting an ack / a report to ack
        self._totals = {"reports": 0, "acknowledged": 0, "masked_actions": 0}
        self.agents = list(self.possible_agents)
        return self._observe(), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple:
        """Carry out one action per agent, then deliver what arrives within the step."""
        if not self.agents:
            raise RuntimeError("the episode is over: call reset() before step()")
        check_action_keys(actions, self.agents, self.possible_agents)
        config, now = self.config, self._step * self.config.step_seconds
        executed, reward = {}, 0.0
        for agent in self.possible_agents:
            action = action_index(agent, actions[agent], 2, lambda: "0 idle, 1 act")
            if action and not self._allowed(agent):
                self._totals["masked_actions"] += 1
                action = 0
            executed[agent] = action
        self._since_report += 1
        if executed[SCOUT]:
            self._send(SCOUT, BASE, "report", now)
            self._waiting[SCOUT] = True
            self._since_report = 0
            self._totals["reports"] += 1
        if executed[BASE]:
            self._send(BASE, SCOUT, "ack", now)
            self._waiting[BASE] = False
            self._totals["acknowledged"] += 1
            reward = 1.0
        for receiver, message in self.router.deliver(now + config.step_seconds):
            # A report leaves the base one to acknowledge; an ack frees the scout.
            self._waiting[receiver] = message.kind == "report"
        self._step += 1
        done = self._step >= config.horizon_steps
        infos = {agent: {"executed_action": executed[agent]} for agent in self.agents}
        if done:
            summary = self.episode_summary()
            for info in infos.values():
                info["episode"] = summary
        observations = self._observe()
        rewards = {agent: reward for agent in self.agents}
        terminations = {agent: False for agent in self.agents}
        truncations = {agent: done for agent in self.agents}
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def episode_summary(self) -> dict[str, Any]:
        """Counts of the episode so far, with the router's message counts."""
        return {**self._totals, "steps": self._step, **self.message_counts()}

    def _allowed(self, agent: str) -> bool:
        if agent == BASE:
            return self._waiting[BASE]
        return not self._waiting[SCOUT] or self._since_report >= self.config.retry_steps

    def _send(self, sender: str, receiver: str, kind: str, now: float) -> None:
        self.router.send(Message(sender, receiver, kind, now, self._seq, None))
        self._seq += 1

    def _observe(self) -> dict[str, dict[str, np.ndarray]]:
        progress = self._step / self.config.horizon_steps
        return {
            agent: {
                "observations": np.array([progress, self._waiting[agent]], np.float32),
                "action_mask": np.array([1, self._allowed(agent)], np.int8),
            }
            for agent in self.possible_agents
        }


class Eager(Policy):
    """The scripted policy of either agent: act whenever the mask allows it."""

    def act(self, observation: Any) -> int:
        """1 when allowed, else idle."""
        return int(observation["action_mask"][1])


def eager_team(env: Any) -> dict[str, Policy]:
    """The task's ``greedy`` team: both agents eager."""
    return {agent: Eager() for agent in env.possible_agents}


def single_agent_view(env: Any, learner: str | None = None) -> SingleAgentView:
    """The scout learns (by default); the eager base answers it."""
    learner = learner or SCOUT
    others = [agent for agent in env.possible_agents if agent != learner]
    return SingleAgentView(env, learner, {agent: Eager() for agent in others})


class TinyMetrics(EpisodeMetrics):
    """Reports, acknowledgements and the share of reports acknowledged."""

    def result(self, summary: dict[str, Any]) -> dict[str, float]:
        """The task's metrics."""
        reports = float(summary["reports"])
        return {
            "reports": reports,
            "acknowledged": float(summary["acknowledged"]),
            "ack_share": float(summary["acknowledged"]) / reports if reports else 0.0,
        }


class TinyView(TelemetryView):
    """The dashboard's view: whether each agent is waiting."""

    kind = "tiny"

    def state(self, env: Any, observations: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
        """Each agent's waiting flag, from its observation."""
        return {
            agent: bool(seen["observations"][1]) for agent, seen in observations.items()
        }


SPEC = TaskSpec(
    name="tiny-relay",
    envs=(EnvSpec(ID, f"{__name__}:TinyRelayEnv", f"{__name__}:TinyConfig"),),
    teams={"greedy": f"{__name__}:eager_team"},
    single_agent_view=f"{__name__}:single_agent_view",
    metrics=f"{__name__}:TinyMetrics",
    headline=("team_return", "reports", "acknowledged", "messages_delivered"),
    telemetry_view=f"{__name__}:TinyView",
)
"""The whole registration of the task."""

if SPEC.name not in registered_tasks():
    register_task(SPEC)
