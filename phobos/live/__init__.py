"""The live system: the mission flown by separate processes over CURVE-secured ZeroMQ.

:mod:`phobos.live.world` is the world server, which serves an environment to the agent
processes in lock-step; :mod:`phobos.live.protocol` the messages between them;
:mod:`phobos.live.runtime` the agent process (``phobos agent``), which flies one policy;
:mod:`phobos.live.supervisor` starts and restarts those processes. This layer sits beside
:mod:`phobos.training` and :mod:`phobos.evaluation` (none imports another) above
:mod:`phobos.agents`, and keeps ZeroMQ out of :mod:`phobos.envs` and :mod:`phobos.agents`.
Nothing is imported here, so that reading the protocol does not start loading the server.
"""
