"""The orbit task's message rule: the agent-side rule gives the environment's own messages."""

from __future__ import annotations

import numpy as np

from phobos import config as config_tools
from phobos.agents import make_team
from phobos.comms.router import Router
from phobos.envs import make, make_config
from phobos.envs.orbit_scheduling import OrbitSchedulingEnv

ENV = "orbit-scheduling-v0"


class SpyRouter(Router):
    """The in-process router, noting every message the environment sends."""

    sent: list = []

    def send(self, message):  # noqa: D102
        SpyRouter.sent.append(message)
        return super().send(message)


def test_agent_rule_builds_the_environments_messages() -> None:
    config = config_tools.replace(make_config(ENV), horizon_steps=40)
    SpyRouter.sent = []
    env = OrbitSchedulingEnv(config, message_bus=SpyRouter)
    team = make_team("greedy", env)
    observations, _ = env.reset(seed=3)
    rebuilt = []
    step = 0
    while env.agents:
        actions = {a: int(team[a](observations[a])) for a in env.agents}
        for agent in env.agents:
            rebuilt += env.agent_messages(agent, actions[agent], observations[agent], step, step)
        observations, *_ = env.step(actions)
        step += 1
    assert len(rebuilt) == 40 * len(env.possible_agents)
    assert rebuilt == SpyRouter.sent
    # The spacecraft report their state: the rule is not all zeros.
    assert any(m.payload[1] > 0 for m in rebuilt)


def test_masked_action_is_announced_as_idle() -> None:
    env = make(ENV, config_tools.replace(make_config(ENV), horizon_steps=4))
    observations, _ = env.reset(seed=0)
    agent = env.possible_agents[0]
    mask = observations[agent]["action_mask"]
    forbidden = int(np.flatnonzero(mask == 0)[0])
    (message,) = env.agent_messages(agent, forbidden, observations[agent], 0, 0)
    assert message.payload[0] == 0
