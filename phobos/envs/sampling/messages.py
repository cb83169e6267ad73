"""The sampling task's message rule: the lander's data products and the science team's advice.

Two kinds of message cross the store-and-forward router, one per sender:

- ``data``: the lander's data products, sent when a transmission (the ``send`` activity)
  completes: the records of its own instruments not yet transmitted (each image as the
  ground's classifier will read it, each spectrum, the cells its arm disturbed) and its
  status (battery at the step's end, container, classes stowed, sampler). What the
  instruments read is simulated by the environment, but it is the lander's own sensing: the
  environment keeps it in :meth:`~phobos.envs.sampling.state.LanderState.onboard`, and a
  lander process gets the same record each step beside its observation (the world's side
  channel, ``env.agent_sensing``), with the one figure the status needs from the step itself,
  what its solar array delivers over the step (the lander's power prediction: the Sun's path
  over the site is known).
- ``advice``: the science team's ranking, sent when the team advises a cell. It ranks from the
  team's belief, which is built only from the data messages that reached Earth and the
  published priors: :class:`TeamSpeaker` keeps a science-team process's own belief, folding
  in the copies the relay delivered to it with the environment's own code
  (:meth:`~phobos.envs.sampling.state.TeamState.receive_data`), so its advice equals the
  environment's, float64 and all. Its side channel names which copies the environment had
  delivered by the step (their sender and sequence number, in order, never their content):
  the relay's copies and the world's observation travel on different connections, and the
  belief must fold exactly those copies, in the environment's order, before it ranks.

The environment's ``step`` builds its messages with the same functions
(:func:`data_report`, :func:`data_message`, :func:`advice_message`), so in-process training
and evaluation keep their trajectories, and a live episode whose agents send their own
messages through the DTN relay process gives the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from phobos.comms.message import Message
from phobos.envs.sampling.belief import Belief
from phobos.envs.sampling.config import LANDER, SCIENCE_TEAM, SamplingConfig
from phobos.envs.sampling.layout import SamplingLayout
from phobos.envs.sampling.state import SEND, TeamState, step_battery

DATA, ADVICE = "data", "advice"
"""Message kinds: the lander's measurements and status, and the science team's ranking."""
KINDS = (DATA, ADVICE)
"""Every message kind an agent of this task sends."""
MAX_RECEIVED = 100_000
"""Most copies a science team's side channel may name (bounds hostile input)."""


def data_report(onboard: Mapping[str, Any], battery_wh: float, config: SamplingConfig) -> dict:
    """The data message's payload from the lander's onboard record and its battery.

    Args:
        onboard: :meth:`~phobos.envs.sampling.state.LanderState.onboard`'s record.
        battery_wh: The battery at the end of the transmitting step.
        config: The task configuration.

    """
    lander = config.lander
    return {
        "images": onboard["images"],
        "spectra": onboard["spectra"],
        "attempted": onboard["attempted"],
        "battery": battery_wh / lander.battery_wh,
        "container": onboard["container_g"] / lander.container_g,
        "classes": onboard["classes"],
        "sampler_ok": onboard["sampler_ok"],
    }


def data_message(step: int, step_seconds: float, seq: int, report: dict) -> Message:
    """The lander's data message sent at ``step``."""
    return Message(LANDER, SCIENCE_TEAM, DATA, step * step_seconds, seq, report)


def advice_message(step: int, step_seconds: float, seq: int, advice: dict) -> Message:
    """The science team's advice message sent at ``step``."""
    return Message(SCIENCE_TEAM, LANDER, ADVICE, step * step_seconds, seq, advice)


def executed_action(action: int, mask: np.ndarray) -> int:
    """The action the environment carries out for ``action``: 0 (wait, no advice) if masked."""
    return int(action) if mask[action] else 0


def lander_messages(
    action: int,
    observation: Mapping[str, Any],
    sensing: Mapping[str, Any],
    *,
    config: SamplingConfig,
    decoded: Sequence[tuple[int, int]],
    steps_of: Sequence[int],
    load_w: Sequence[float],
    step: int,
    seq: int,
) -> list[Message]:
    """The lander's messages at ``step``: a data message if its transmission completes.

    Args:
        action: Its action.
        observation: Its observation of the step (its ``action_mask``).
        sensing: :meth:`~phobos.envs.sampling.state.LanderState.onboard`'s record at the
            step's start, with ``solar_wh``, the array's energy over the step.
        config: The task configuration.
        decoded: Per action index, ``(activity, target)``.
        steps_of: Per activity, the steps it takes.
        load_w: Per activity, its load on top of the base load.
        step: The step.
        seq: The lander's sequence number for the message.

    Raises:
        ValueError: if ``sensing`` is not such a record.

    """
    if not isinstance(sensing, Mapping):
        raise ValueError(f"the lander's sensing must be a mapping, got {type(sensing).__name__}")
    try:
        busy, activity = int(sensing["busy_left"]), int(sensing["activity"])
        executed = executed_action(action, observation["action_mask"])
        if busy == 0 and executed:
            activity, _ = decoded[executed]
            busy = steps_of[activity]
        if busy != 1 or activity != SEND:
            return []
        battery, _ = step_battery(
            float(sensing["battery_wh"]), float(sensing["solar_wh"]), load_w[SEND], config
        )
        report = data_report(sensing, battery, config)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise ValueError(f"the lander's sensing is malformed: {exc!r}") from None
    return [data_message(step, config.step_seconds, seq, report)]


class TeamSpeaker:
    """A science-team process's own belief, from the copies it received, and its advice.

    Args:
        config: The task configuration.
        layout: The observation layout.
        prior_block: ``[cells, cell_size]`` prior features (every episode starts from them).
        log_tables: The material, ground and spectrum label log-likelihood tables.

    """

    def __init__(
        self,
        config: SamplingConfig,
        layout: SamplingLayout,
        prior_block: np.ndarray,
        log_tables: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        self.config, self.layout = config, layout
        self._prior, self._logs = prior_block, log_tables
        self.episode: Any = None
        self.folded: list[tuple[str, int]] = []
        """Keys of the copies folded into the belief this episode, in order."""
        self.team = self._fresh()

    def _fresh(self) -> TeamState:
        block = self._prior.copy()
        team = TeamState(self.config, self.layout, block)
        team.belief = Belief(self.config.site, self.layout, block, fresh=True)
        return team

    def catch_up(self, episode: Any, copies: Sequence[Message], step: int) -> None:
        """Fold in ``copies`` (every data copy delivered this episode, in order) not yet folded.

        A new episode, or copies that do not extend those folded, start a fresh belief.
        """
        keys = [(m.sender, m.seq) for m in copies]
        if episode != self.episode or keys[: len(self.folded)] != self.folded:
            self.episode, self.folded, self.team = episode, [], self._fresh()
        for message in copies[len(self.folded) :]:
            self.team.receive_data(message, step, *self._logs)
            self.folded.append((message.sender, message.seq))

    def messages(
        self, action: int, observation: Mapping[str, Any], step: int, seq: int
    ) -> list[Message]:
        """The team's messages at ``step``: an advice message if it advises a cell."""
        executed = executed_action(action, observation["action_mask"])
        if not executed:
            return []
        advice = self.team.advise(executed - 1)
        return [advice_message(step, self.config.step_seconds, seq, advice)]


def received_keys(sensing: Any) -> list[tuple[str, int]]:
    """The copies a science team's side channel names, checked: ``[(sender, seq), ...]``.

    Raises:
        ValueError: if ``sensing`` is not ``{"episode": int, "received": [[str, int], ...]}``.

    """
    if not isinstance(sensing, Mapping) or not isinstance(sensing.get("received"), list):
        raise ValueError("the science team's sensing must hold a 'received' list")
    received = sensing["received"]
    if len(received) > MAX_RECEIVED:
        raise ValueError(f"the science team's sensing names over {MAX_RECEIVED} copies")
    keys = []
    for item in received:
        if not (
            isinstance(item, list | tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and type(item[1]) is int
        ):
            raise ValueError("each received copy is named [sender, seq]")
        keys.append((item[0], item[1]))
    return keys
