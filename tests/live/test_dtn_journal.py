"""The DTN relay's custody journal: what is committed survives a reopen; old episodes prune."""

from __future__ import annotations

from pathlib import Path

from phobos.comms.codec import encode
from phobos.comms.message import Message
from phobos.live.dtn.journal import RelayJournal


def plan(episode: int) -> Message:
    return Message("world", "relay", "plan", 0.0, episode, {"endpoints": ["a", "b"]})


def intent(sender: str, seq: int, step: int) -> Message:
    return Message(sender, "*", "intent", step * 300.0, seq, [1, 0.5, 0.25])


def test_committed_custody_survives_a_reopen_and_old_episodes_are_pruned(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    journal = RelayJournal(path)
    m0, m1 = intent("a", 0, 0), intent("b", 0, 0)
    journal.commit(
        plan=plan(0),
        accepted=[(0, 0, m0, encode(m0)), (0, 0, m1, encode(m1))],
        tick=(0, 0, 300.0),
        owed=[("b", 0, m0)],  # b has not acknowledged a's message yet; a got b's
    )
    journal.close()

    journal = RelayJournal(path)  # as a restarted relay opens it
    assert journal.latest_plan() == plan(0)
    assert [m for _, m in journal.accepted(0)] == [m0, m1]
    assert journal.ticks(0) == [(0, 300.0)]
    assert journal.owed() == [("b", 0, m0)]
    assert journal.accepted_count() == 2

    journal.commit(plan=plan(1))  # a new episode: what is no longer owed goes
    assert journal.latest_plan() == plan(1)
    assert [m for _, m in journal.accepted(0)] == [m0]  # still owed to b: kept
    assert journal.ticks(0) == []
    assert journal.owed() == [("b", 0, m0)]
    assert journal.accepted_count() == 2  # the pruned one is still counted
    journal.commit(acked=[("b", 0, "a", 0)])
    journal.commit(plan=plan(2))
    assert journal.accepted(0) == [] and journal.owed() == []
    assert journal.accepted_count() == 2
    journal.close()
