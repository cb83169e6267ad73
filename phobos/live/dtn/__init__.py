"""The DTN relay process, its protocol and custody journal, and its clients (agent, world)."""
