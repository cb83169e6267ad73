"""The DTN relay's custody journal: the episode's contact plan, what it accepted, what it owes.

A row is committed before the relay acts on it: a message is acknowledged to its sender only
after the transaction that journals it (``accepted``) has committed; a tick's answer goes to
the world, and its copies to their receivers, only after the transaction that marks the tick
routed and files each copy in ``owed`` has; a copy leaves ``owed`` when its receiver
acknowledges it. So a relay killed at any instant (SIGKILL included) and started again on the
same file rebuilds exactly what it had promised (:mod:`phobos.live.dtn.relay` replays the
routed ticks through a fresh router), and resends what it still owes.

SQLite in WAL mode with ``synchronous=NORMAL``: a commit survives the death of the process
(what the fault tests kill), not a power cut; the file is held with an exclusive lock, so a
second relay on the same journal fails at once. Messages are stored as codec frames: nothing
is pickled.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from phobos.comms.codec import MAX_FRAME_SIZE, decode, encode
from phobos.comms.journal import open_exclusive
from phobos.comms.message import Message

_SCHEMA = """
CREATE TABLE IF NOT EXISTS plan (episode INTEGER PRIMARY KEY, frame BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS accepted (
    episode INTEGER NOT NULL, sender TEXT NOT NULL, seq INTEGER NOT NULL,
    tick INTEGER NOT NULL, frame BLOB NOT NULL,
    PRIMARY KEY (episode, sender, seq)
);
CREATE TABLE IF NOT EXISTS ticks (
    episode INTEGER NOT NULL, tick INTEGER NOT NULL, until REAL NOT NULL,
    PRIMARY KEY (episode, tick)
);
CREATE TABLE IF NOT EXISTS owed (
    receiver TEXT NOT NULL, episode INTEGER NOT NULL, sender TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (receiver, episode, sender, seq)
);
CREATE TABLE IF NOT EXISTS counts (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pruned (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_PRUNE = """
DELETE FROM accepted WHERE episode < :episode AND NOT EXISTS (
    SELECT 1 FROM owed o
    WHERE o.episode = accepted.episode AND o.sender = accepted.sender AND o.seq = accepted.seq
)
"""

CopyKey = tuple[str, int, str, int]
"""One copy owed: ``(receiver, episode, sender, seq)``."""


class RelayJournal:
    """The custody journal of one DTN relay; used from one thread.

    Args:
        path: The database file; created if missing.
        max_size: Largest frame stored or read back.

    """

    def __init__(self, path: str | os.PathLike[str], max_size: int = MAX_FRAME_SIZE) -> None:
        self.path = os.fspath(path)
        self.max_size = max_size
        self._db = open_exclusive(self.path, _SCHEMA, "NORMAL")

    # --------------------------------------------------------------------- reading
    def latest_plan(self) -> Message | None:
        """The ``plan`` message of the newest episode (its ``seq`` is the episode), or None."""
        row = self._db.execute("SELECT frame FROM plan ORDER BY episode DESC LIMIT 1").fetchone()
        return None if row is None else decode(row[0], self.max_size)

    def accepted(self, episode: int) -> list[tuple[int, Message]]:
        """``(tick, message)`` of every message accepted in ``episode``."""
        rows = self._db.execute(
            "SELECT tick, frame FROM accepted WHERE episode = ? ORDER BY tick", (episode,)
        )
        return [(int(tick), decode(frame, self.max_size)) for tick, frame in rows]

    def ticks(self, episode: int) -> list[tuple[int, float]]:
        """``(tick, until)`` of every tick routed in ``episode``, in order."""
        rows = self._db.execute(
            "SELECT tick, until FROM ticks WHERE episode = ? ORDER BY tick", (episode,)
        )
        return [(int(t), float(u)) for t, u in rows]

    def owed(self) -> list[tuple[str, int, Message]]:
        """``(receiver, episode, message)`` of every copy not yet acknowledged."""
        rows = self._db.execute(
            "SELECT o.receiver, o.episode, a.frame FROM owed o JOIN accepted a"
            " ON a.episode = o.episode AND a.sender = o.sender AND a.seq = o.seq"
            " ORDER BY o.rowid"
        )  # a copy is a row of the message it copies: no frame written twice
        return [(r, int(e), decode(f, self.max_size)) for r, e, f in rows]

    def accepted_count(self) -> int:
        """Messages taken into custody, over every episode (pruned ones included)."""
        held = self._db.execute("SELECT count(*) FROM accepted").fetchone()[0]
        row = self._db.execute("SELECT value FROM pruned WHERE name = 'accepted'").fetchone()
        return held + (row[0] if row is not None else 0)

    def counts(self) -> dict[str, int]:
        """The relay's persistent counters."""
        return {name: int(v) for name, v in self._db.execute("SELECT name, value FROM counts")}

    # --------------------------------------------------------------------- writing
    def commit(
        self,
        *,
        plan: Message | None = None,
        accepted: Sequence[tuple[int, int, Message, bytes]] = (),
        tick: tuple[int, int, float] | None = None,
        owed: Sequence[tuple[str, int, Message]] = (),
        acked: Iterable[CopyKey] = (),
        counts: dict[str, int] | None = None,
    ) -> None:
        """Write one batch in one transaction; return once it is committed.

        Args:
            plan: The ``plan`` message of a new episode (``seq``: the episode).
            accepted: ``(episode, tick, message, frame)`` taken into custody (``frame``: the
                message's codec encoding).
            tick: ``(episode, tick, until)`` routed.
            owed: ``(receiver, episode, message)`` copies now owed to their receivers.
            acked: Copies their receivers acknowledged.
            counts: Counters to store (the whole set that changed).

        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if plan is not None:
                frame = encode(plan, self.max_size)
                db.execute("INSERT OR REPLACE INTO plan VALUES (?, ?)", (plan.seq, frame))
                # Earlier episodes are done: keep only the messages still owed to a receiver
                # (counted), so that a long demo's journal does not grow without bound.
                db.execute("DELETE FROM plan WHERE episode < ?", (plan.seq,))
                db.execute("DELETE FROM ticks WHERE episode < ?", (plan.seq,))
                gone = db.execute(_PRUNE, {"episode": plan.seq}).rowcount
                db.execute(
                    "INSERT INTO pruned VALUES ('accepted', ?) ON CONFLICT(name)"
                    " DO UPDATE SET value = value + excluded.value",
                    (gone,),
                )
            db.executemany(
                "INSERT OR IGNORE INTO accepted VALUES (?, ?, ?, ?, ?)",
                [(e, m.sender, m.seq, t, frame) for e, t, m, frame in accepted],
            )
            if tick is not None:
                db.execute("INSERT OR REPLACE INTO ticks VALUES (?, ?, ?)", tick)
            db.executemany(
                "INSERT OR IGNORE INTO owed VALUES (?, ?, ?, ?)",
                [(r, e, m.sender, m.seq) for r, e, m in owed],
            )
            db.executemany(
                "DELETE FROM owed WHERE receiver = ? AND episode = ? AND sender = ? AND seq = ?",
                list(acked),
            )
            if counts:
                db.executemany("INSERT OR REPLACE INTO counts VALUES (?, ?)", counts.items())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the database (committed data stays). Twice is allowed."""
        self._db.close()
