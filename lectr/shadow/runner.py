"""ShadowRunner: sends the sampled requests to their candidates and compares the answers.

It runs in the writer process (lectr.record.writer), where every event arrives with its bodies
in memory for metering. The writer meters an event first; one the proxy sampled (it carries a
`ShadowOrder`, lectr.proxy.addons.shadow) then comes here with its metered row, which has the
live request's tokens, cost and time. Here, in order:

1. an order the proxy could not address (no key of Lectr's own) is recorded as `blocked`, and
   one whose experiment is already over a cap for today as `capped`, before it is queued;
2. the sample joins a bounded queue; when it is full, the sample is `dropped`;
3. a sending thread checks the experiment's daily caps again, now reserving its place
   (lectr.shadow.caps): over them, `capped`;
4. else it sends the candidate request, reads both answers, compares them for the live
   request's task and prices the candidate's reported usage (lectr.shadow.pair).

Each sample becomes one `shadow_calls` row, which the writer stores with its next batch: scores,
tokens, costs, times and errors, never a prompt or an answer. Those live only in the event, and
are let go once the comparison is made. On `stop`, what is still queued is recorded as
`dropped`, not sent: a stopping Lectr spends nothing it could not record.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Callable

from lectr.common.events import Event
from lectr.common.experiments import ShadowSettings
from lectr.shadow import calls, pair
from lectr.shadow.caps import DailyCaps

log = logging.getLogger(__name__)

STOPPING = "Lectr was stopping"


class ShadowRunner:
    def __init__(
        self,
        settings: ShadowSettings,
        seed: Callable[[datetime], dict[str, tuple[int, float]]],
        send: Callable[..., calls.Reply] = calls.send,
    ) -> None:
        self.settings = settings
        self.caps = DailyCaps(seed)
        self._send = send
        self._jobs: queue.Queue = queue.Queue(settings.queue_size)
        self._rows: deque[dict] = deque()  # finished, for the writer's next batch
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"lectr-shadow-{i}", daemon=True)
            for i in range(settings.concurrency)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Let the requests in flight finish (within about `timeout`); the queued ones are dropped."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._drain()

    def take(self) -> list[dict]:
        """The rows finished since the last call."""
        rows = []
        while self._rows:
            rows.append(self._rows.popleft())
        return rows

    def offer(self, event: Event, live: dict) -> None:
        """A metered event the proxy sampled. Never blocks: the writer thread calls it."""
        order = event.shadow
        if order is None or event.status_code != 200 or event.error_category is not None:
            return  # no answer of the live request's to compare with
        found = pair.row(event, live)
        if order.blocked:
            return self._done(found, "blocked", order.blocked)
        if event.request_body is None or event.response_body is None or event.response_truncated:
            return self._done(found, "unsupported", "the request or its answer was too large to keep in memory")
        if self._stopping.is_set():
            return self._done(found, "dropped", STOPPING)
        over = self.caps.over(order, datetime.now(timezone.utc))
        if over:  # no need to hold its prompt and answer in the queue
            return self._done(found, "capped", over)
        try:
            self._jobs.put_nowait((event, found))
        except queue.Full:
            self._done(found, "dropped", f"the shadow queue was full ({self.settings.queue_size}, lectr_shadow_queue)")

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                event, found = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._one(event, found)
            except Exception as e:  # a sending thread must outlive any one sample
                log.error("shadow sample %s lost inside Lectr: %s", event.request_id, type(e).__name__)
            finally:
                del event  # the prompt and both answers go with it

    def _one(self, event: Event, found: dict) -> None:
        order = event.shadow
        why, reserved = self.caps.reserve(order, datetime.now(timezone.utc), self.settings.timeout_s)
        if why:
            return self._done(found, "capped", why)
        cost: float | None = 0.0
        try:
            cost = pair.compare_pair(event, found, self._send, self.settings.timeout_s)
        finally:
            sent = found["latency_ms"] is not None  # it went, whatever became of it after
            self.caps.settle(order, reserved, cost, sent)
            if not found["outcome"]:  # compare_pair raised: Lectr's bug
                pair.finish(found, "lectr_error" if sent else "unsupported", "Lectr error")
            self._rows.append(found)

    def _drain(self) -> None:
        """What is still queued when stopping: recorded as dropped, not sent."""
        while True:
            try:
                _, found = self._jobs.get_nowait()
            except queue.Empty:
                return
            self._done(found, "dropped", STOPPING)

    def _done(self, found: dict, outcome: str, detail: str | None) -> None:
        self._rows.append(pair.finish(found, outcome, detail))
