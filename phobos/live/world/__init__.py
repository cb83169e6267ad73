"""The world server: serves an environment to agent processes over ZeroMQ, in lock-step.

See :mod:`phobos.live.world.server` (the lock-step loop and the sockets),
:mod:`phobos.live.world.exchange` (the agents' messages and records),
:mod:`phobos.live.world.telemetry` (what the dashboard is sent, and how often),
:mod:`phobos.live.world.tracked_bus` (the environment's message bus),
:mod:`phobos.live.world.records` (settings and counters), :mod:`phobos.live.protocol`
(the messages) and :mod:`phobos.live.world.views` (what the dashboard is told about each
environment).
"""

from phobos.live.world.records import SAFE_ACTION, AgentRecord, WorldSettings, WorldStats
from phobos.live.world.server import WorldServer

__all__ = ["SAFE_ACTION", "AgentRecord", "WorldServer", "WorldSettings", "WorldStats"]
