"""The sampling task's message rule: agent-side, it gives the environment's own messages.

An agent's own copy of the environment (as an agent process holds one) builds each step's
messages from the agent's observation, its side channel (``agent_sensing``, through the codec
as over the wire) and, for the science team, the copies delivered to it (through the codec);
they must be the environment's messages exactly, float64 payloads and all.
"""

from __future__ import annotations

import numpy as np
import pytest

from phobos import config as config_tools
from phobos.agents import make_team
from phobos.comms.codec import decode, encode
from phobos.comms.message import Message
from phobos.comms.router import Router
from phobos.envs import make_config
from phobos.envs.sampling import PhobosSamplingEnv
from phobos.envs.sampling.config import LANDER, SCIENCE_TEAM

ENV = "phobos-sampling-v0"


class SpyRouter(Router):
    """The in-process router, noting every message sent and every copy delivered."""

    sent: list = []
    delivered: list = []

    def send(self, message):  # noqa: D102
        SpyRouter.sent.append(message)
        return super().send(message)

    def deliver(self, until):  # noqa: D102
        out = super().deliver(until)
        SpyRouter.delivered.extend(out)
        return out


def over_the_wire(value):
    """``value`` encoded and decoded by the codec, as a world or relay frame carries it."""
    return decode(encode(Message("a", "b", "k", 0.0, 0, value))).payload


def plain(value):
    """Tuples as lists, recursively (the wire carries lists)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def normal(messages):
    return [(m.sender, m.receiver, m.kind, m.send_time, m.seq, plain(m.payload)) for m in messages]


def play(config, seed: int, team_name: str = "cautious", agent_side=None):
    """One episode; the messages the env sent and those an agent-side copy rebuilt."""
    SpyRouter.sent, SpyRouter.delivered = [], []
    env = PhobosSamplingEnv(config, message_bus=SpyRouter)
    agent_side = agent_side or PhobosSamplingEnv(config)  # never reset: an agent process's
    team = make_team(team_name, env)
    observations, _ = env.reset(seed=seed)
    for i, agent in enumerate(env.possible_agents):
        team[agent].reset(seed=seed + i)
    seqs = {agent: 0 for agent in env.possible_agents}
    rebuilt, step = [], 0
    while env.agents:
        actions = {a: int(team[a](observations[a])) for a in env.agents}
        got = {
            (m.sender, m.seq): over_the_wire(m.payload)
            for r, m in SpyRouter.delivered
            if r == SCIENCE_TEAM
        }
        for agent in env.agents:
            sensing = over_the_wire(env.agent_sensing(agent))
            copies = []
            if agent == SCIENCE_TEAM:
                copies = [
                    Message(s, SCIENCE_TEAM, "data", 0.0, q, got[s, q])
                    for s, q in sensing["received"]
                ]
            out = agent_side.agent_messages(
                agent, actions[agent], observations[agent], step, seqs[agent], sensing, copies
            )
            seqs[agent] += len(out)
            rebuilt += out
        observations, *_ = env.step(actions)
        step += 1
    return SpyRouter.sent, rebuilt


@pytest.mark.parametrize("seed", [3, 11])
def test_agent_rule_builds_the_environments_messages(seed: int) -> None:
    config = config_tools.replace(make_config(ENV), horizon_steps=96, message_loss=0.2)
    sent, rebuilt = play(config, seed)
    kinds = {m.kind for m in sent}
    assert kinds == {"data", "advice"}  # both rules are exercised
    assert sum(m.kind == "advice" for m in sent) >= 2
    assert normal(rebuilt) == normal(sent)
    # The advice's values are the team's float64 beliefs, not float32 observation values.
    advice = [m for m in sent if m.kind == "advice"]
    assert any(v != float(np.float32(v)) for m in advice for v in m.payload["values"])


def test_the_team_starts_a_fresh_belief_each_episode() -> None:
    config = config_tools.replace(make_config(ENV), horizon_steps=96, message_loss=0.2)
    agent_side = PhobosSamplingEnv(config)
    for seed in (3, 11):  # the second episode's copies must not fold into the first's belief
        sent, rebuilt = play(config, seed, agent_side=agent_side)
        assert normal(rebuilt) == normal(sent)


def test_bad_sensing_is_a_one_line_error() -> None:
    env = PhobosSamplingEnv(config_tools.replace(make_config(ENV), horizon_steps=8))
    observations, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="lander's sensing"):
        env.agent_messages(LANDER, 0, observations[LANDER], 0, 0, {"busy_left": "x"})
    with pytest.raises(ValueError, match="lander's sensing"):
        env.agent_messages(LANDER, 0, observations[LANDER], 0, 0, None)
    with pytest.raises(ValueError, match="science team"):
        env.agent_messages(SCIENCE_TEAM, 0, observations[SCIENCE_TEAM], 0, 0, {"received": 3})
    with pytest.raises(ValueError, match="copies"):
        env.agent_messages(
            SCIENCE_TEAM, 0, observations[SCIENCE_TEAM], 0, 0,
            {"episode": 1, "received": [["phobos_grunt", 0]]}, [],
        )  # fmt: skip
