"""``summary.json``: what a demo run leaves in its run folder about its messages.

Written at the end of :meth:`~phobos.demo.launcher.Demo.run` from three records kept apart:
each agent's own ledger (``ledgers/<agent>.jsonl``: what it authored, what it received), the
DTN relay's journal and routers (custody, the link model's fate of each copy), and the world
(copies its environment was handed). ``lost`` and ``duplicated`` compare them, so neither is
the remainder of the others:

- ``lost``: messages authored that the relay neither took into custody nor refused (the
  sender told), plus copies the relay's routers delivered that no receiver recorded and the
  relay no longer owes;
- ``duplicated``: copies a receiver recorded twice (its ledger repeats one), plus copies the
  world was handed twice.

``held`` counts copies still in a router (waiting for a contact, in flight, or with no
contact left) and copies routed but not yet acknowledged by their receivers (owed);
``dropped`` counts copies the link model dropped (``buffer``: tail drop on a full link
buffer; ``loss``: the channel's loss).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from phobos.live.dtn.ledger import read_ledger


def message_summary(
    agents: Sequence[str],
    ledgers: Path,
    relay: Mapping[str, int],
    world_duplicated: int = 0,
) -> dict[str, Any]:
    """The ``messages`` block of ``summary.json`` (module notes)."""
    by_agent = {}
    for agent in agents:
        path = ledgers / f"{agent}.jsonl"
        by_agent[agent] = read_ledger(path) if path.exists() else read_ledger(Path("/dev/null"))
    authored = sum(a["authored"] for a in by_agent.values())
    refused = sum(a["refused"] for a in by_agent.values())
    received = sum(a["received"] for a in by_agent.values())
    accepted = int(relay.get("accepted", 0))
    routed, owed = int(relay.get("routed", 0)), int(relay.get("owed", 0))
    lost = max(authored - accepted - refused, 0) + max(routed - owed - received, 0)
    duplicated = sum(a["duplicated"] for a in by_agent.values()) + world_duplicated
    return {
        "by_agent": by_agent,
        "authored": authored,
        "accepted": accepted,
        "refused": refused,
        "sent": int(relay.get("sent", 0)),
        "delivered": routed,
        "received": received,
        "held": int(relay.get("held_router", 0)) + owed,
        "dropped": {
            "buffer": int(relay.get("dropped_buffer", 0)),
            "loss": int(relay.get("dropped_loss", 0)),
        },
        "lost": lost,
        "duplicated": duplicated,
        "relay": dict(relay),
    }


def write_summary(path: Path, summary: Mapping[str, Any]) -> None:
    """Write ``summary`` as JSON (to a temporary file first, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)
