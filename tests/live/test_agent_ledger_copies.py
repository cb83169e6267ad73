"""An agent's ledger keeps the copies it received, so a restarted process builds on them.

The sampling task's science team ranks from a belief built from the data copies it received:
a process restarted mid-episode reads them back from its ledger, float for float.
"""

from __future__ import annotations

from pathlib import Path

from phobos.comms.codec import decode, encode
from phobos.comms.message import Message
from phobos.live.dtn.ledger import Ledger, read_ledger


def data_copy(seq: int) -> Message:
    report = {
        "images": [[[0, 1, 2], [1, 0, 2], [3, 3, 1], [12.345678901234567, 0.1 + 0.2, 1e-300]]],
        "spectra": [[4, 2]],
        "attempted": [],
        "battery": 2.0 / 3.0,
        "container": 0.0,
        "classes": 0,
        "sampler_ok": True,
    }
    message = Message("phobos_grunt", "science_team", "data", 600.0 * seq, seq, report)
    return decode(encode(message))  # as the relay's frame delivers it


def test_copies_survive_a_restart_exactly(tmp_path: Path) -> None:
    path = tmp_path / "science_team.jsonl"
    first = Ledger(path)
    copies = [data_copy(0), data_copy(1)]
    for message in copies:
        assert first.receive(3, message)
    assert not first.receive(3, copies[0])  # a second copy is discarded
    first.close()

    second = Ledger(path)  # the restarted process
    assert list(second.copies) == [(3, "phobos_grunt", 0), (3, "phobos_grunt", 1)]
    for message in copies:
        again = second.copies[3, message.sender, message.seq]
        assert again == message  # payload floats and all
        assert again.payload["images"][0][3] == message.payload["images"][0][3]
    second.forget_before(4)
    assert second.copies == {} and len(second.received) == 2
    second.close()
    assert read_ledger(path)["received"] == 2 and read_ledger(path)["duplicated"] == 0
