"""The relay's journal: undelivered messages and duplicate-check state, durable in SQLite.

A relay acknowledges a message to its sender only after the transaction that journals it has
committed, and deletes each copy only once its receiver has acknowledged it, so a relay
killed at any instant (SIGKILL included) and started again on the same file loses nothing it
had acknowledged. The duplicate window of every sender and the names of known peers are
written in the same transactions, so a restarted relay also still recognises retransmissions
of messages it had taken before it died.

Durability settings: ``journal_mode=WAL`` (a commit appends to the write-ahead log; readers
never block the writer, and a crash mid-transaction leaves the last committed state) and, by
default, ``synchronous=FULL``: every commit waits for the log to reach the disk, so an
acknowledged message survives power loss and operating-system crashes too, not only the
death of the relay process. ``NORMAL`` syncs only at checkpoints; it still survives any
process crash, but the last commits before a power cut may roll back, and with them
messages whose senders were already told they are safe. The relay commits once per batch
of received messages, so FULL costs one sync per batch, not per message.

The journal also holds an exclusive lock on its file (``locking_mode=EXCLUSIVE``) for as long
as it is open, so that a second relay started on the same file by mistake fails at once
instead of delivering the same copies again; the lock dies with the process that holds it.

Each row holds the message as the codec's frame: nothing is pickled.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgpack

from phobos.comms.codec import MAX_FRAME_SIZE, decode, encode
from phobos.comms.message import Message
from phobos.comms.reliable import Key

log = logging.getLogger(__name__)

SYNCHRONOUS = ("NORMAL", "FULL")
"""The ``PRAGMA synchronous`` levels a journal accepts (see the module notes)."""

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver TEXT NOT NULL,
    sender TEXT NOT NULL,
    seq INTEGER NOT NULL,
    frame BLOB NOT NULL,
    UNIQUE (receiver, sender, seq)
);
CREATE TABLE IF NOT EXISTS windows (
    sender TEXT PRIMARY KEY,
    floor INTEGER,
    seen BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS peers (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS done (
    sender TEXT NOT NULL,
    seq INTEGER NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (sender, seq)
);
"""

WindowState = tuple[int | None, list[int]]
"""A :class:`~phobos.comms.reliable.DedupWindow` sender state: ``(floor, seen)``."""


def open_exclusive(path: str, schema: str, synchronous: str) -> sqlite3.Connection:
    """Open the SQLite journal at ``path`` for one owner: WAL, exclusive, ``schema`` applied.

    Autocommit mode: transactions are the caller's explicit BEGIN/COMMIT pairs. One relay per
    journal: after the first write the connection keeps an exclusive lock until it closes or
    its process dies, so a second relay on the same file fails here rather than deliver the
    same copies again.

    Raises:
        sqlite3.OperationalError: the file is in use by another relay (named so).
        sqlite3.DatabaseError: WAL mode is unavailable.

    """
    db = sqlite3.connect(path, isolation_level=None, timeout=1.0)
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.DatabaseError(f"{path}: WAL mode unavailable (got {mode!r})")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("BEGIN EXCLUSIVE")
        db.execute("COMMIT")
        db.executescript(schema)
    except sqlite3.OperationalError as exc:
        db.close()
        if "locked" in str(exc):
            raise sqlite3.OperationalError(f"{path}: in use by another relay") from exc
        raise
    except BaseException:
        db.close()
        raise
    return db


@dataclass
class Recovered:
    """What a journal held when it was opened.

    Attributes:
        held: Undelivered copies as ``(receiver, message)``, in the order they were accepted.
        windows: Duplicate-window state per sender.
        peers: Every peer the relay had heard from.
        done: ``((sender, seq), expires)`` of messages delivered to every receiver, whose ids
            are remembered until ``expires`` (wall-clock seconds) to recognise retransmissions.

    """

    held: list[tuple[str, Message]] = field(default_factory=list)
    windows: dict[str, WindowState] = field(default_factory=dict)
    peers: list[str] = field(default_factory=list)
    done: list[tuple[Key, float]] = field(default_factory=list)


class Journal:
    """SQLite journal of a relay, in WAL mode; used from one thread.

    Args:
        path: The database file; created if missing.
        synchronous: ``"FULL"`` (default: commits survive power loss) or ``"NORMAL"``
            (commits survive process crashes only).
        max_size: Largest frame journaled or read back, in bytes.

    Raises:
        ValueError: if ``synchronous`` is not one of :data:`SYNCHRONOUS`.
        sqlite3.DatabaseError: if the file is not a journal, or WAL mode is unavailable.

    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        synchronous: str = "FULL",
        max_size: int = MAX_FRAME_SIZE,
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {synchronous!r}")
        self.path = os.fspath(path)
        self.max_size = max_size
        self._db = open_exclusive(self.path, _SCHEMA, synchronous)
        try:
            self._check_version()
        except BaseException:
            self._db.close()
            raise
        self.synchronous = synchronous

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
        elif row[0] != _SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"{self.path}: journal schema {row[0]}, this relay reads {_SCHEMA_VERSION}"
            )

    def recover(self) -> Recovered:
        """Read back everything committed so far."""
        recovered = Recovered()
        rows = self._db.execute("SELECT receiver, frame FROM held ORDER BY id")
        recovered.held = [(receiver, decode(frame, self.max_size)) for receiver, frame in rows]
        for sender, floor, seen in self._db.execute("SELECT sender, floor, seen FROM windows"):
            recovered.windows[sender] = (floor, msgpack.unpackb(seen))
        recovered.peers = [name for (name,) in self._db.execute("SELECT name FROM peers")]
        rows = self._db.execute("SELECT sender, seq, expires FROM done ORDER BY expires")
        recovered.done = [((sender, seq), expires) for sender, seq, expires in rows]
        return recovered

    def commit(
        self,
        *,
        accepted: Sequence[tuple[Message, Sequence[str]]] = (),
        delivered: Iterable[tuple[str, Key]] = (),
        windows: Mapping[str, WindowState] | None = None,
        peers: Iterable[str] = (),
        finished: Iterable[tuple[Key, float]] = (),
        forget_before: float | None = None,
    ) -> None:
        """Write one batch of changes in one transaction; return once it is durable.

        Args:
            accepted: Messages taken into custody, each with the receivers it is held for.
            delivered: ``(receiver, (sender, seq))`` copies the receiver acknowledged.
            windows: New duplicate-window state of the senders it changed for.
            peers: Peers heard from for the first time.
            finished: ``((sender, seq), expires)`` of messages now delivered to every receiver
                (or given up): their ids are remembered until ``expires``.
            forget_before: Forget the done ids that expire before this time.

        """
        rows = [
            (receiver, message.sender, message.seq, frame)
            for message, receivers in accepted
            for frame in (encode(message, self.max_size),)
            for receiver in receivers
        ]
        done = [(receiver, sender, seq) for receiver, (sender, seq) in delivered]
        states = [
            (sender, floor, msgpack.packb(seen))
            for sender, (floor, seen) in (windows or {}).items()
        ]
        names = [(name,) for name in peers]
        finished = [(sender, seq, expires) for (sender, seq), expires in finished]
        if not (rows or done or states or names or finished or forget_before is not None):
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            # A copy journaled twice (the window forgot it, which it should not) is held once.
            db.executemany(
                "INSERT OR IGNORE INTO held (receiver, sender, seq, frame) VALUES (?, ?, ?, ?)",
                rows,
            )
            db.executemany("DELETE FROM held WHERE receiver = ? AND sender = ? AND seq = ?", done)
            db.executemany("INSERT OR REPLACE INTO windows VALUES (?, ?, ?)", states)
            db.executemany("INSERT OR IGNORE INTO peers VALUES (?)", names)
            db.executemany("INSERT OR REPLACE INTO done VALUES (?, ?, ?)", finished)
            if forget_before is not None:
                db.execute("DELETE FROM done WHERE expires < ?", (forget_before,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def held(self) -> int:
        """Copies journaled and not yet acknowledged by their receivers."""
        return self._db.execute("SELECT count(*) FROM held").fetchone()[0]

    def pragma(self, name: str) -> str | int:
        """The value of ``PRAGMA name`` (``journal_mode``, ``synchronous``), for checks."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma name: {name!r}")
        return self._db.execute(f"PRAGMA {name}").fetchone()[0]

    def close(self) -> None:
        """Close the database (committed data stays on disk). Closing twice is allowed."""
        self._db.close()
