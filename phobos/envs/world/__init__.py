"""The world server: serves an environment to agent processes over ZeroMQ, in lock-step.

See :mod:`phobos.envs.world.server` (stepping, sockets, telemetry),
:mod:`phobos.envs.world.protocol` (the messages) and :mod:`phobos.envs.world.views` (what the
dashboard is told about each environment).
"""

from phobos.envs.world.server import (
    SAFE_ACTION,
    AgentRecord,
    WorldServer,
    WorldSettings,
    WorldStats,
)

__all__ = ["SAFE_ACTION", "AgentRecord", "WorldServer", "WorldSettings", "WorldStats"]
