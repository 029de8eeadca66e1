"""Each experiment's daily caps, enforced before a shadow request is sent.

Checked by the sending thread just before it sends: a request goes only while the experiment's
shadow requests today (UTC), with those in flight, stay under `max_requests_per_day`, and its
spend today, plus the dearest shadow request seen so far for each one in flight and for this
one, stays within `max_usd_per_day`. Until the first request of the day has come back there is
no dearest one to go by, so the others wait for it. The day's usage starts from what the store
holds (`seed`), so a restart does not reset it.

Several proxies behind HAProxy each keep their own count from the same start: together they may
send up to their number times a cap in a day. Thread-safe: the writer thread reserves, the
sending threads both reserve and settle.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from lectr.common.events import ShadowOrder

log = logging.getLogger(__name__)


@dataclass
class _Usage:
    sent: int = 0
    spent: float = 0.0
    reserved: float = 0.0  # the dearest call's cost, once per call in flight
    dearest: float = 0.0
    in_flight: int = 0
    answered: bool = False  # one came back today: `dearest` is known (0 when unpriced)


class DailyCaps:
    def __init__(self, seed: Callable[[datetime], dict[str, tuple[int, float]]]) -> None:
        self._seed = seed  # the day's (sent, spent) per experiment, from the store
        self._day: datetime | None = None
        self._usage: dict[str, _Usage] = {}
        self._settled = threading.Condition()

    def reserve(self, order: ShadowOrder, now: datetime, wait: float = 60.0) -> tuple[str | None, float]:
        """(why not, None to send; the cost reserved, to hand back to `settle`). Waits (up to `wait`
        seconds) while the day's first request for the experiment is still out."""
        with self._settled:
            usage = self._today(now).setdefault(order.experiment_id, _Usage())
            self._settled.wait_for(lambda: usage.answered or not usage.in_flight, wait)
            if usage.sent >= order.max_requests_per_day:
                return f"max_requests_per_day reached: {usage.sent} sent today (UTC)", 0.0
            estimate = usage.dearest
            if usage.spent + usage.reserved + estimate > order.max_usd_per_day:
                return (
                    f"max_usd_per_day reached: ${usage.spent:.4f} spent today (UTC), ${order.max_usd_per_day:g} a day",
                    0.0,
                )
            usage.sent += 1
            usage.in_flight += 1
            usage.reserved += estimate
            return None, estimate

    def settle(self, order: ShadowOrder, reserved: float, cost: float | None, sent: bool) -> None:
        """A reserved request's end: its cost when it was sent, or its reservation handed back."""
        with self._settled:
            usage = self._usage.setdefault(order.experiment_id, _Usage())
            usage.reserved = max(0.0, usage.reserved - reserved)
            usage.in_flight = max(0, usage.in_flight - 1)
            if sent:
                usage.answered = True
            else:
                usage.sent = max(0, usage.sent - 1)
            usage.spent += cost or 0.0
            usage.dearest = max(usage.dearest, cost or 0.0)
            self._settled.notify_all()

    def _today(self, now: datetime) -> dict[str, _Usage]:
        day = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        if day != self._day:
            self._day = day
            try:
                seeded = self._seed(day.replace(tzinfo=None))  # stored as naive UTC
            except Exception as e:  # no database yet, or locked: count from zero rather than stop
                log.warning("could not read today's shadow usage (%s); counting from zero", e)
                seeded = {}
            self._usage = {k: _Usage(sent=n, spent=usd) for k, (n, usd) in seeded.items()}
        return self._usage
