"""An agent's own record of its messages: what it authored, what custody took, what it got.

One JSON line per event, appended and flushed as it happens (a process killed with SIGKILL
loses nothing written before), read back by a restarted process of the same agent so that it
continues its sequence numbers, resends what custody never took, and recognises copies it had
already received. The demo's ``summary.json`` counts from these files, independently of the
relay's journal.

Lines: ``{"a": [episode, seq, wire]}`` authored (``wire``: :func:`~phobos.live.dtn.protocol.wire`),
``{"k": [episode, [seq, ...]]}`` acknowledged by the relay, ``{"x": [episode, seq, reason]}``
refused, ``{"g": [episode, sender, seq], "c": wire}`` received, with the copy itself (each copy
once; ``"d"`` in place of ``"g"``: a copy received again and discarded). A restarted process
reads its copies back (:attr:`Ledger.copies`): a rule that builds on what the agent received
(the sampling task's science team ranks from a belief built from its copies) goes on from
them.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from phobos.comms.message import Message
from phobos.live.dtn.protocol import wire

MAX_LINE = 64 * 1024
"""Longest line read back; a longer one is skipped (the file is this agent's, but bounded)."""


class Ledger:
    """One agent's message ledger; in memory only when ``path`` is None."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self.authored: dict[tuple[int, int], list[Any]] = {}
        self.acked: set[tuple[int, int]] = set()
        self.refused: set[tuple[int, int]] = set()
        self.received: set[tuple[int, str, int]] = set()
        self.copies: dict[tuple[int, str, int], Message] = {}
        """Every copy received, by ``(episode, sender, seq)`` (see :meth:`forget_before`)."""
        self.discarded = 0
        self.received_lines = 0  # "g" lines: more than len(received) only if one repeats
        self.next_seq: dict[int, int] = defaultdict(int)
        self._lines: list[str] = []
        self._file = None
        if self.path is not None:
            if self.path.exists():
                self._load()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def _load(self) -> None:
        with self.path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if len(line) > MAX_LINE:
                    continue
                try:
                    self._apply(json.loads(line))
                except (ValueError, TypeError, KeyError, IndexError):
                    continue  # a line cut short by a kill: the event did not happen

    def _apply(self, event: dict[str, Any]) -> None:
        if "a" in event:
            episode, seq, fields = event["a"]
            self.authored[episode, seq] = fields
            self.next_seq[episode] = max(self.next_seq[episode], seq + 1)
        elif "k" in event:
            episode, seqs = event["k"]
            self.acked.update((episode, s) for s in seqs)
        elif "x" in event:
            self.refused.add((event["x"][0], event["x"][1]))
        elif "g" in event:
            key = tuple(event["g"])
            self.received.add(key)
            self.received_lines += 1
            if "c" in event:
                receiver, kind, send_time, seq, payload = event["c"]
                self.copies[key] = Message(key[1], receiver, kind, send_time, seq, payload)
        elif "d" in event:
            self.discarded += 1

    # ------------------------------------------------------------------ events
    def author(self, episode: int, messages: list[Message]) -> None:
        """Note messages built (before they are sent)."""
        for message in messages:
            fields = wire(message)
            self.authored[episode, message.seq] = fields
            self.next_seq[episode] = max(self.next_seq[episode], message.seq + 1)
            self._note({"a": [episode, message.seq, fields]})

    def ack(self, episode: int, seqs: list[int]) -> None:
        """Note that the relay took custody of ``seqs``."""
        self.acked.update((episode, s) for s in seqs)
        self._note({"k": [episode, seqs]})

    def refuse(self, episode: int, seq: int, reason: str) -> None:
        """Note that the relay refused one message."""
        self.refused.add((episode, seq))
        self._note({"x": [episode, seq, reason[:200]]})

    def receive(self, episode: int, message: Message) -> bool:
        """Note a copy received; False (and counted) if it had been received before."""
        key = (episode, message.sender, message.seq)
        if key in self.received:
            self.discarded += 1
            self._note({"d": list(key)})
            return False
        self.received.add(key)
        self.copies[key] = message
        self._note({"g": list(key), "c": wire(message)})
        return True

    def forget_before(self, episode: int) -> None:
        """Drop the copies of episodes before ``episode`` from memory (the file keeps them)."""
        self.copies = {k: m for k, m in self.copies.items() if k[0] >= episode}

    def unsettled(self) -> dict[int, list[tuple[int, list[Any]]]]:
        """Authored messages neither acknowledged nor refused, by episode, in order."""
        out: dict[int, list[tuple[int, list[Any]]]] = defaultdict(list)
        for key in sorted(self.authored):
            if key not in self.acked and key not in self.refused:
                out[key[0]].append((key[1], self.authored[key]))
        return out

    def settled(self, episode: int) -> int:
        """Messages of ``episode`` authored (what the world is told the relay will hold)."""
        return self.next_seq[episode]

    def flush(self) -> None:
        """Write the events noted since the last flush (one write, flushed to the OS)."""
        if self._file is not None and self._lines:
            self._file.write("".join(self._lines))
            self._file.flush()
        self._lines.clear()

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _note(self, event: dict[str, Any]) -> None:
        if self._file is not None:
            self._lines.append(json.dumps(event, separators=(",", ":")) + "\n")


def read_ledger(path: str | os.PathLike[str]) -> dict[str, int]:
    """Counts of one agent's ledger file (over all its processes' lines).

    ``duplicated`` counts copies handed to the agent twice: a ``g`` line repeated, which only a
    receiver that forgot what it had received (or a relay that delivered twice past it) writes.
    """
    ledger = Ledger(None)
    ledger.path = Path(path)
    ledger._load()
    return {
        "authored": len(ledger.authored),
        "acked": len(ledger.acked),
        "refused": len(ledger.refused),
        "received": len(ledger.received),
        "discarded": ledger.discarded,
        "duplicated": ledger.received_lines - len(ledger.received),
    }
