"""A world server in its own process, for the attack tests: a crash here is an exit there.

``python -m tests.live.world_process KEYS SECONDS [SPEED [ACTION_TIMEOUT]]`` serves
orbit-scheduling-v0 (a long episode, the in-memory relay) on a free loopback port with the
CURVE keys of ``KEYS``, prints ``address <router>`` once it listens, steps for ``SECONDS``
seconds after every agent joined (or the join timeout), then prints one JSON line of its
counters and per-agent records and exits 0.
"""

from __future__ import annotations

import json
import logging
import sys

from phobos import config as config_tools
from phobos.envs import make_config
from phobos.live.world import WorldServer, WorldSettings

ENV = "orbit-scheduling-v0"


def main(argv: list[str]) -> int:
    """Run the world; see the module docstring."""
    keys, seconds = argv[0], float(argv[1])
    speed = float(argv[2]) if len(argv) > 2 else 0.0
    action_timeout = float(argv[3]) if len(argv) > 3 else 0.5
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(relativeCreated)d %(levelname)s %(message)s",
    )
    config = config_tools.replace(make_config(ENV), horizon_steps=4_000)
    settings = WorldSettings(
        action_timeout=action_timeout, join_timeout=20.0, speed=speed, relay="memory"
    )
    world = WorldServer(ENV, config, keys=keys, settings=settings)
    try:
        print(f"address {world.address}", flush=True)
        stats = world.run(seconds=seconds)
        result = {
            "steps": stats.steps,
            "elapsed_s": stats.elapsed_s,
            "rejected": stats.rejected,
            "refused": stats.refused,
            "records": {agent: record.as_dict() for agent, record in world.records.items()},
        }
        print(json.dumps(result), flush=True)
    finally:
        world.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
