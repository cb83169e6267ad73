"""The dashboard's message ledger: every copy's fate counted once, on its own, never as a remainder.

An episode of orbit scheduling with a lossy channel and tiny buffers over the world's own
bus (the in-process router, and the relay over ZeroMQ): at every step ``sent = delivered +
held + dropped_buffer + dropped_loss``, each term counted where the fate is decided. Then a
loss is planted (copies taken from the router that the environment never gets) and the
identity must fail.
"""

from __future__ import annotations

import functools
import importlib

import pytest
import zmq

from phobos import config as config_tools
from phobos.agents import make_team
from phobos.envs import make_config
from phobos.envs.registry import spec
from phobos.live.world.tracked_bus import make_bus

ENV = "orbit-scheduling-v0"


def world_env(relay: str, context: zmq.Context):
    config = config_tools.replace(
        make_config(ENV), horizon_steps=96, message_loss=0.3, message_buffer=2
    )
    module, _, attribute = spec(ENV).entry_point.partition(":")
    env_class = getattr(importlib.import_module(module), attribute)
    return env_class(config, message_bus=functools.partial(make_bus, relay, context))


@pytest.mark.parametrize("relay", ["memory", "zmq"])
def test_every_copy_is_accounted_for_and_a_planted_loss_shows(relay) -> None:
    context = zmq.Context()
    env = world_env(relay, context)
    try:
        team = make_team("greedy", env)
        observations, _ = env.reset(seed=3)
        seen = {"delivered": 0, "held": 0, "dropped_buffer": 0, "dropped_loss": 0}
        step = 0
        while env.agents:
            actions = {agent: int(team[agent](observations[agent])) for agent in env.agents}
            observations, *_ = env.step(actions)
            ledger = env.router.ledger()
            assert ledger["unaccounted"] == 0, (step, ledger)
            for key in seen:
                seen[key] = max(seen[key], ledger[key])
            step += 1
            if step == 48:
                break
        assert all(seen.values()), seen  # every fate occurred, so each term was exercised
        # Plant a loss: the router hands copies out that never reach the environment.
        bus = env.router
        vanished = bus.router.deliver(float("inf"))
        assert vanished, "nothing left in flight to lose"
        assert bus.ledger()["unaccounted"] == len(vanished)
    finally:
        env.close()
        context.destroy(linger=0)
