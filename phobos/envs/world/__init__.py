"""The world server: serves an environment to agent processes over ZeroMQ, in lock-step.

See :mod:`phobos.envs.world.server` (the lock-step loop and the sockets),
:mod:`phobos.envs.world.exchange` (the agents' messages and records),
:mod:`phobos.envs.world.telemetry` (what the dashboard is sent, and how often),
:mod:`phobos.envs.world.tracked_bus` (the environment's message bus),
:mod:`phobos.envs.world.records` (settings and counters), :mod:`phobos.envs.world.protocol`
(the messages) and :mod:`phobos.envs.world.views` (what the dashboard is told about each
environment).
"""

from phobos.envs.world.records import SAFE_ACTION, AgentRecord, WorldSettings, WorldStats
from phobos.envs.world.server import WorldServer

__all__ = ["SAFE_ACTION", "AgentRecord", "WorldServer", "WorldSettings", "WorldStats"]
