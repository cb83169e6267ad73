"""The live demonstration: world server launcher, agent processes, supervisor, web dashboard."""
