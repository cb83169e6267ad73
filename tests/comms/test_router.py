from __future__ import annotations

import numpy as np
import pytest

from phobos.comms import BROADCAST, Message, Router, TabulatedLinks

ENDPOINTS = ("a", "b", "c")
STEP = 10.0


def links(open_ab, delay=3.0, lost=None):
    steps = len(open_ab)
    open_ = np.ones((steps, 3, 3), dtype=bool)
    open_[:, 0, 1] = open_ab
    delays = np.full((steps, 3, 3), delay)
    lost_table = np.zeros((steps, 3, 3), dtype=bool) if lost is None else lost
    return TabulatedLinks(ENDPOINTS, STEP, open_, delays, lost_table)


def message(seq, t, receiver="b", sender="a"):
    return Message(sender, receiver, "intent", t, seq, {"n": seq})


def test_message_waits_for_the_link_then_takes_the_light_time():
    router = Router(ENDPOINTS, links([False, False, True, True]), buffer_limit=8)
    assert router.send(message(0, 0.0)) == 1
    assert router.deliver(until=20.0) == []  # link opens at step 2 (t=20)
    assert router.held(now=10.0) == 1
    assert router.deliver(until=22.9) == []
    delivered = router.deliver(until=23.0)
    assert [(r, m.seq) for r, m in delivered] == [("b", 0)]
    assert router.stats.delivered == 1


def test_full_buffer_rejects_new_messages_and_keeps_accepted_ones():
    router = Router(ENDPOINTS, links([False] * 5 + [True]), buffer_limit=2)
    taken = [router.send(message(i, i * STEP)) for i in range(5)]
    assert taken == [1, 1, 0, 0, 0]
    assert router.stats.rejected == 3
    delivered = router.deliver(until=100.0)
    assert [m.seq for _, m in delivered] == [0, 1]  # the accepted ones, in order


def test_no_contact_in_the_plan_holds_the_message_for_good():
    router = Router(ENDPOINTS, links([False, False]), buffer_limit=4)
    router.send(message(0, 0.0))
    assert router.deliver(until=1e9) == []
    assert router.held(now=1e9) == 1


def test_lost_messages_are_counted_not_delivered():
    lost = np.zeros((3, 3, 3), dtype=bool)
    lost[1, 0, 1] = True
    router = Router(ENDPOINTS, links([True] * 3, lost=lost), buffer_limit=4)
    for i in range(3):
        router.send(message(i, i * STEP))
    delivered = router.deliver(until=100.0)
    assert [m.seq for _, m in delivered] == [0, 2]
    assert router.stats.lost == 1


def test_broadcast_reaches_every_other_endpoint_over_its_own_link():
    router = Router(ENDPOINTS, links([False, True]), buffer_limit=4)
    assert router.send(message(0, 0.0, receiver=BROADCAST)) == 2
    first = router.deliver(until=5.0)
    assert [r for r, _ in first] == ["c"]  # a->c open at once; a->b waits for step 1
    second = router.deliver(until=13.0)
    assert [r for r, _ in second] == ["b"]
    assert router.stats.sent == 2 and router.stats.delivered == 2


def test_unknown_endpoints_are_errors_naming_the_choices():
    router = Router(ENDPOINTS, links([True]), buffer_limit=1)
    with pytest.raises(ValueError, match="unknown sender 'z'.*a, b, c"):
        router.send(message(0, 0.0, sender="z"))
    with pytest.raises(ValueError, match="unknown receiver 'z'"):
        router.send(message(0, 0.0, receiver="z"))
    with pytest.raises(ValueError, match="buffer_limit"):
        Router(ENDPOINTS, links([True]), buffer_limit=0)


def rated_links(open_ab, rate, delay=3.0):
    steps = len(open_ab)
    open_ = np.ones((steps, 3, 3), dtype=bool)
    open_[:, 0, 1] = open_ab
    return TabulatedLinks(
        ENDPOINTS,
        STEP,
        open_,
        np.full((steps, 3, 3), delay),
        np.zeros((steps, 3, 3), dtype=bool),
        rate_bps=np.full((steps, 3, 3), float(rate)),
    )


def test_a_finite_rate_serialises_a_burst_on_the_link():
    from phobos.comms.codec import encode

    bits = 8 * len(encode(message(0, 0.0)))
    rate = bits / 2.0  # two seconds per message
    router = Router(ENDPOINTS, rated_links([True] * 4, rate), buffer_limit=8)
    for i in range(3):
        router.send(message(i, 0.0))
    arrivals = []
    for until in np.arange(0.0, 20.0, 0.25):
        arrivals += [(until, m.seq) for _, m in router.deliver(until)]
    # Each leaves when the previous one's last bit has; arrival = departure + light time +
    # transmission time.
    assert [seq for _, seq in arrivals] == [0, 1, 2]
    assert [t for t, _ in arrivals] == pytest.approx([5.0, 7.0, 9.0], abs=0.25)
    # The two queued behind the first still wait (and count against the buffer).
    assert router.held(now=0.0) == 2


def test_a_link_busy_past_its_contact_holds_the_next_message_for_the_next_contact():
    from phobos.comms.codec import encode

    bits = 8 * len(encode(message(0, 0.0)))
    rate = bits / 12.0  # twelve seconds per message: the link is busy into closed step 1
    router = Router(ENDPOINTS, rated_links([True, False, False, True], rate), buffer_limit=8)
    router.send(message(0, 0.0))
    router.send(message(1, 0.0))
    assert [m.seq for _, m in router.deliver(until=15.0)] == [0]  # 3 s light + 12 s sending
    assert router.deliver(until=44.9) == []
    # Free at t = 12 while closed: it leaves when the link reopens at step 3 (t = 30).
    assert [m.seq for _, m in router.deliver(until=45.0)] == [1]
