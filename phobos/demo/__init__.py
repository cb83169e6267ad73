"""The live demonstration: ``phobos demo``'s launcher, its web dashboard and the commands.

The pieces it launches (the world server, the agent processes, the supervisor) are in
:mod:`phobos.live`.
"""
