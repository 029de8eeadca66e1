"""Each experiment's daily caps, enforced before a shadow request is sent.

A sending thread reserves a place just before it sends: a request goes only while the
experiment's shadow requests today (UTC), with those in flight, stay under
`max_requests_per_day`, and its spend today, plus the dearest shadow request seen so far for
each one in flight and for this one, stays within `max_usd_per_day`. Until the day's first
request has come back there is no dearest one to go by, so the others wait for it. A candidate
whose answers have no cost (no price for it, or no usage reported) cannot be held to a spend
cap, so it is sent nothing more that day. The day's usage starts from what the store holds
(`seed`), so a restart does not reset it; while the store cannot be read, nothing is sent.

Several proxies on one database (several hosts on PostgreSQL) each count what they send, and read
the store again every `RESEED_EVERY`: what the others sent since then counts here too, so together
they overrun a cap by at most what they send in that time, not by their number of times the cap.
(DuckDB workers on one machine each write a file of their own, so there they count alone.)
Thread-safe: the writer thread checks (`over`), the sending threads reserve and settle.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from lectr.common.events import ShadowOrder

log = logging.getLogger(__name__)

_RAISE = "raise it in the experiments file, or sending resumes at 00:00 UTC"
RESEED_EVERY = timedelta(minutes=1)


@dataclass
class _Usage:
    sent: int = 0
    spent: float = 0.0
    reserved: float = 0.0  # the dearest call's cost, once per call in flight
    dearest: float = 0.0
    in_flight: int = 0
    answered: bool = False  # one came back today: `dearest` is known
    unpriced: bool = False  # one came back without a cost


class DailyCaps:
    def __init__(self, seed: Callable[[datetime], dict[str, tuple[int, float]]]) -> None:
        self._seed = seed  # the day's (sent, spent) per experiment, from the store
        self._day: datetime | None = None  # the day `_usage` counts; None: not read yet
        self._read_at: datetime | None = None  # when the store was last read
        self._usage: dict[str, _Usage] = {}
        self._settled = threading.Condition()

    def over(self, order: ShadowOrder, now: datetime) -> str | None:
        """Why the experiment can send nothing more today, or None (nothing reserved: `reserve` decides)."""
        self._take_others(now)
        with self._settled:
            usage = self._of(order, now)
            return _refusal(order, usage, 0.0) if usage else "today's shadow usage cannot be read from the database"

    def reserve(self, order: ShadowOrder, now: datetime, wait: float = 60.0) -> tuple[str | None, float]:
        """(why not, None to send; the cost reserved, to hand back to `settle`). Waits (up to `wait`
        seconds) while the day's first request for the experiment is still out."""
        self._take_others(now)
        with self._settled:
            usage = self._of(order, now)
            if usage is not None and not usage.answered and usage.in_flight:
                self._settled.wait_for(lambda: usage.answered or not usage.in_flight, wait)
                usage = self._of(order, now)  # the day may have turned meanwhile
            if usage is None:
                return "today's shadow usage cannot be read from the database", 0.0
            estimate = usage.dearest
            why = _refusal(order, usage, estimate)
            if why:
                return why, 0.0
            usage.sent += 1
            usage.in_flight += 1
            usage.reserved += estimate
            return None, estimate

    def settle(self, order: ShadowOrder, reserved: float, cost: float | None, sent: bool) -> None:
        """A reserved request's end: its cost when it was sent (None: unknown), or its place handed back."""
        with self._settled:
            usage = self._usage.setdefault(order.experiment_id, _Usage())
            usage.reserved = max(0.0, usage.reserved - reserved)
            usage.in_flight = max(0, usage.in_flight - 1)
            if sent:
                usage.answered = True
                usage.unpriced = usage.unpriced or cost is None
            else:
                usage.sent = max(0, usage.sent - 1)
            usage.spent += cost or 0.0
            usage.dearest = max(usage.dearest, cost or 0.0)
            self._settled.notify_all()

    def _of(self, order: ShadowOrder, now: datetime) -> _Usage | None:
        """The experiment's usage today; None while the store cannot say what it was (tried again next time)."""
        day = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        if self._day is None or day > self._day:  # forward only: a late caller does not turn the day back
            try:
                seeded = self._seed(day.replace(tzinfo=None))  # stored as naive UTC
            except Exception as e:  # locked, unreadable: send nothing rather than overrun a cap
                log.warning("cannot read today's shadow usage (%s); sending no shadow request until it can", e)
                return None
            self._day, self._read_at = day, now
            self._usage = {k: _Usage(sent=n, spent=usd) for k, (n, usd) in seeded.items()}
        return self._usage.setdefault(order.experiment_id, _Usage())

    def _take_others(self, now: datetime) -> None:
        """Every RESEED_EVERY, the store's count again: other proxies' sends show there. What this one
        sent but has not written yet does not, so the larger of the two counts (with this one's in
        flight added to the store's). The store is read outside the lock: a slow database holds up
        no sending thread."""
        today = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        with self._settled:
            due = self._day == today and self._read_at is not None and now - self._read_at >= RESEED_EVERY
            if not due:
                return  # (a new day is read whole, by the first caller of that day)
            self._read_at, day = now, self._day
        try:
            stored = self._seed(day.replace(tzinfo=None))
        except Exception as e:  # the day's first reading stands; a later one is only a refinement
            log.info("cannot read today's shadow usage again (%s); counting this proxy's own", e)
            return
        with self._settled:
            if self._day != day:
                return  # the day turned meanwhile: its own first reading counts
            for experiment, (sent, spent) in stored.items():
                usage = self._usage.setdefault(experiment, _Usage())
                usage.sent = max(usage.sent, sent + usage.in_flight)
                usage.spent = max(usage.spent, spent)


def _refusal(order: ShadowOrder, usage: _Usage, estimate: float) -> str | None:
    if usage.sent >= order.max_requests_per_day:
        return f"max_requests_per_day reached: {usage.sent} sent today (UTC); {_RAISE}"
    if usage.unpriced:
        return (
            f"max_usd_per_day cannot be held: {order.provider}/{order.model} answered without a cost (no price "
            "for it: add one to prices.yaml, or its provider reported no usage)"
        )
    if usage.spent + usage.reserved + estimate > order.max_usd_per_day:
        return f"max_usd_per_day reached: ${usage.spent:.4f} spent today (UTC) of ${order.max_usd_per_day:g}; {_RAISE}"
    return None
