"""The relay's SQLite journal: WAL, durability level, what it gives back, all-or-nothing batches."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from phobos.comms.journal import Journal
from phobos.comms.message import BROADCAST, Message
from tests.comms.strategies import same


def msg(seq: int, receiver: str = "b", payload: object = None) -> Message:
    return Message("a", receiver, "intent", float(seq), seq, payload)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "relay.db"


@pytest.mark.parametrize(("level", "code"), [("FULL", 2), ("NORMAL", 1)])
def test_wal_mode_and_the_synchronous_level_asked_for(path, level, code):
    journal = Journal(path, synchronous=level)
    try:
        assert journal.pragma("journal_mode") == "wal"
        assert journal.pragma("synchronous") == code
        assert journal.synchronous == level
    finally:
        journal.close()
    # WAL is a property of the file: another connection sees it too.
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_refuses_an_unknown_synchronous_level_and_bad_pragma_names(path):
    with pytest.raises(ValueError, match="synchronous"):
        Journal(path, synchronous="OFF")
    journal = Journal(path)
    with pytest.raises(ValueError):
        journal.pragma("synchronous; DROP TABLE held")
    journal.close()


def test_committed_state_comes_back_after_reopening(path):
    journal = Journal(path)
    payload = {"power": np.linspace(0, 1, 5, dtype=np.float32), "note": "x"}
    broadcast = Message("a", BROADCAST, "intent", 2.0, 2, [1, 2])
    journal.commit(
        accepted=[(msg(0, payload=payload), ("b",)), (msg(1), ("b",)), (broadcast, ("b", "c"))],
        windows={"a": (None, [0, 1, 2])},
        peers=["a", "b"],
    )
    journal.commit(delivered=[("b", ("a", 1))], windows={"a": (2, [])})
    journal.close()

    recovered = Journal(path).recover()
    assert [(r, m.seq) for r, m in recovered.held] == [("b", 0), ("b", 2), ("c", 2)]
    assert same(recovered.held[0][1], msg(0, payload=payload))
    assert same(recovered.held[2][1], broadcast)
    assert recovered.windows == {"a": (2, [])}
    assert sorted(recovered.peers) == ["a", "b"]


def test_a_failing_batch_leaves_nothing_behind(path):
    journal = Journal(path)
    journal.commit(accepted=[(msg(0), ("b",))])
    with pytest.raises(OverflowError):
        # The first row is fine; the second's seq does not fit SQLite's integers.
        journal.commit(accepted=[(msg(1), ("b",)), (msg(2**64 - 1), ("b",))], peers=["z"])
    assert journal.held() == 1
    journal.commit(accepted=[(msg(1), ("b",))])  # and the journal still works
    recovered = journal.recover()
    assert [m.seq for _, m in recovered.held] == [0, 1] and recovered.peers == []
    journal.close()


def test_a_copy_journaled_twice_is_held_once(path):
    journal = Journal(path)
    journal.commit(accepted=[(msg(0), ("b",))])
    journal.commit(accepted=[(msg(0), ("b",))])
    assert journal.held() == 1
    journal.close()


def test_refuses_a_file_that_is_not_a_journal_of_this_version(path, tmp_path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema', 99)")
    with pytest.raises(sqlite3.DatabaseError, match="schema 99"):
        Journal(path)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        Journal(garbage)


def test_one_relay_per_journal(path):
    journal = Journal(path)
    try:
        with pytest.raises(sqlite3.OperationalError, match="in use by another relay"):
            Journal(path)
    finally:
        journal.close()
    Journal(path).close()  # free again once the first one closed
