"""Each experiment's daily caps (lectr/shadow/caps.py): plain objects, with the day's stored
usage handed in as the writer process hands it."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from lectr.common.events import ShadowOrder
from lectr.shadow.caps import RESEED_EVERY, DailyCaps


def order(**kw) -> ShadowOrder:
    return ShadowOrder("e", "openai", "gpt-4o-mini", "http://x", (), kw.get("count", 1000), kw.get("usd", 1.0))


NOW = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)


def test_the_count_cap_starts_from_the_stored_days_usage_and_a_new_day_starts_over():
    seeded = []
    caps = DailyCaps(lambda day: seeded.append(day) or {"e": (9, 0.0)})
    assert caps.reserve(order(count=10), NOW) == (None, 0.0)
    caps.settle(order(), 0.0, 0.001, sent=True)
    assert caps.reserve(order(count=10), NOW)[0].startswith("max_requests_per_day reached: 10 sent today (UTC); raise")
    assert caps.over(order(count=10), NOW).startswith("max_requests_per_day reached")
    tomorrow = datetime(2026, 12, 5, 0, 1, tzinfo=timezone.utc)
    assert caps.reserve(order(count=10), tomorrow)[0] is None
    assert seeded == [datetime(2026, 12, 4), datetime(2026, 12, 5)]  # naive UTC, as stored


def test_the_spend_cap_counts_the_dearest_answer_for_each_one_in_flight():
    caps = DailyCaps(lambda day: {})
    assert caps.reserve(order(usd=0.01), NOW) == (None, 0.0)
    caps.settle(order(), 0.0, 0.004, sent=True)  # spent 0.004; dearest 0.004
    first = caps.reserve(order(usd=0.01), NOW)  # 0.004 + 0.004 <= 0.01
    assert first == (None, 0.004)
    assert caps.reserve(order(usd=0.01), NOW)[0].startswith("max_usd_per_day reached: $0.0040 spent")  # + 2 x 0.004
    caps.settle(order(), first[1], None, sent=False)  # not sent after all: its place is free again
    assert caps.reserve(order(usd=0.01), NOW)[0] is None


def test_until_the_days_first_answer_is_back_the_others_wait_for_it():
    caps = DailyCaps(lambda day: {})
    assert caps.reserve(order(usd=0.001), NOW)[0] is None
    got = []
    waiter = threading.Thread(target=lambda: got.append(caps.reserve(order(usd=0.001), NOW, wait=5)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and got == []  # waiting: the first one's cost is not known yet
    caps.settle(order(), 0.0, 0.0008, sent=True)
    waiter.join(5)
    assert got and got[0][0].startswith("max_usd_per_day reached")  # 0.0008 + 0.0008 > 0.001


def test_a_candidate_without_a_cost_is_sent_nothing_more_that_day():
    caps = DailyCaps(lambda day: {})
    assert caps.reserve(order(usd=1.0), NOW)[0] is None
    caps.settle(order(), 0.0, None, sent=True)  # answered, but no price for it
    why = caps.over(order(usd=1.0), NOW)
    assert why.startswith("max_usd_per_day cannot be held: openai/gpt-4o-mini answered without a cost")
    assert caps.reserve(order(usd=1.0), NOW)[0] == why


def test_while_the_days_usage_cannot_be_read_nothing_is_sent_and_it_is_read_again():
    reads = []

    def seed(day):
        reads.append(day)
        if len(reads) == 1:
            raise OSError("locked")
        return {"e": (3, 0.0)}

    caps = DailyCaps(seed)
    assert caps.reserve(order(count=4), NOW)[0] == "today's shadow usage cannot be read from the database"
    assert caps.reserve(order(count=4), NOW) == (None, 0.0)  # read again: 3 sent, one more allowed
    assert caps.over(order(count=4), NOW).startswith("max_requests_per_day reached: 4 sent")
    assert len(reads) == 2
    yesterday = datetime(2026, 12, 3, 23, 59, tzinfo=timezone.utc)
    assert caps.over(order(count=4), yesterday).startswith("max_requests_per_day")  # a late caller: same day
    assert len(reads) == 2


def test_other_proxies_sends_count_once_the_store_is_read_again():
    stored = {"e": (0, 0.0)}
    caps = DailyCaps(lambda day: dict(stored))  # what every proxy on the database has written
    assert caps.reserve(order(count=8), NOW) == (None, 0.0)
    caps.settle(order(), 0.0, 0.001, sent=True)  # this proxy: 1 sent, not written yet
    stored["e"] = (7, 0.007)  # another host sent 7 meanwhile
    assert caps.reserve(order(count=8), NOW)[0] is None  # read again only after RESEED_EVERY; this one in flight
    later = NOW + RESEED_EVERY
    assert caps.reserve(order(count=8), later)[0].startswith("max_requests_per_day reached: 8 sent")  # 7 + 1 in flight
    stored["e"] = (3, 0.003)  # a smaller count (this proxy's own rows not written yet) takes nothing back
    assert caps.over(order(count=8), later + RESEED_EVERY).startswith("max_requests_per_day reached: 8 sent")
