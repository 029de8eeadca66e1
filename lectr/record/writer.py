"""The writer: drains the event queue in batches into the store, in a process of its own.

Metering and DuckDB hold Python's GIL for milliseconds at a time (opening the file alone
stalls every other thread for up to ~20 ms on a small machine); in a thread of the proxy
that lands on requests in flight. So the proxy only hands batches to a pipe, from a thread
(lectr.proxy.writerprocess), and this child process meters and writes them with the
`Writer` below (`child_main`). Killing the proxy closes the pipe; the child then writes
what it has and exits.

The `Writer` thread (in that child, or in tests directly):

A batch is written when `batch_size` events are waiting or every `interval` seconds,
whichever comes first. The database file is opened per batch and closed again, so the
dashboard (another process) can read between batches.

When the database cannot be written (locked too long, unwritable, disk full, a PostgreSQL
server down) the batch is kept and retried with growing pauses while the queue still has
room; once waiting would fill the queue, the batch is dropped and counted. Drop counts are
written with the next batch that succeeds, and so are the rows stored with less than they
could have had (`pricing_error`, `counting_error`: see lectr/record/metering.py). `stop()`
flushes what is queued before returning.

A batch is fixed when it is formed (its rows, shadow rows and drop counts) and gets an id; a
retry sends the same batch with the same id. A commit can succeed on the server while its
confirmation is lost (the connection broke at that moment): the retry then finds the id stored
and stores nothing twice (lectr/store/logs.py). Whatever arrives meanwhile waits for the next batch.

Shadow experiments: an event the proxy sampled goes, once metered, to the `ShadowRunner`
(lectr/shadow/runner.py), which sends it to the candidate from threads of its own; the rows it
finishes are written with the next batch, and kept with it while the database is unavailable.

Prices: between batches (never per request) the writer rereads the fetched price data
(`priceupdate.data_path`: `<db>.prices.json`, or `lectr.prices.json` for a PostgreSQL store;
from `lectr prices update` or its own schedule) and the user's price file when they change;
see lectr/prices/pricing.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from lectr.common.events import Drainer, Event, EventQueue
from lectr.common.experiments import ShadowSettings
from lectr.prices.sources import PriceSettings
from lectr.shadow.runner import ShadowRunner
from lectr.store import open_store

if TYPE_CHECKING:
    from lectr.record.metering import Meter

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
# With no traffic, an empty write this often tells the dashboard the proxy is alive.
HEARTBEAT_SECONDS = 60.0


class Writer(Drainer):
    def __init__(
        self,
        path: str,
        queue: EventQueue,
        interval: float = 1.0,
        meter: Meter | None = None,
        prices: PriceSettings = PriceSettings(),
        shadow: ShadowRunner | None = None,
    ) -> None:
        # Imported here: metering loads tiktoken and pricing the price data, which only a writer
        # that runs needs, after its process has set itself up (child_main).
        from lectr.prices.priceupdate import PriceFiles
        from lectr.record.metering import Meter

        super().__init__(queue, interval, "lectr-writer")
        self.path = path
        self.meter = meter or Meter()
        self.prices = PriceFiles(path, prices.data_file, prices.user_file, prices.url, prices.refresh_hours)
        self.written = 0  # rows written since start
        self.dropped_unwritable = 0  # events dropped because the database stayed unavailable
        self.dropped_unmetered = 0  # events dropped because metering failed outside its own guards
        self.dropped_upstream: dict[str, int] = {}  # totals by reason, counted before this queue (the proxy's)
        self._persisted: dict[str, int] = {}
        self.shadow = shadow
        # The batch being written, fixed until it is stored or dropped: its id (None: no batch),
        # metered rows, shadow_calls rows and drop counts.
        self._batch_id: str | None = None
        self._pending: list[dict] = []
        self._pending_shadow: list[dict] = []
        self._pending_drops: dict[str, int] = {}
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_write = time.monotonic()
        self._where = open_store(path).display  # for log lines: a PostgreSQL URL without its password

    def start(self) -> None:
        self.prices.start()
        if self.shadow:
            self.shadow.start()
        super().start()

    def stop(self, timeout: float = 10.0) -> None:
        self.prices.stop()
        if self.shadow:  # first: the shadow rows it finishes go with the last batches
            self.shadow.stop(timeout / 2)
        super().stop(timeout)

    def _finish(self) -> None:
        deadline = time.monotonic() + self._stop_timeout
        while time.monotonic() < deadline:  # the rest of the queue, and the drop counts
            self._retry_at = 0.0
            if self.flush() and not len(self.queue):
                break
            time.sleep(0.2)
        if self._pending or len(self.queue):
            log.error("exiting with %d events not written to %s", len(self._pending) + len(self.queue), self._where)
        if self._pending_shadow:
            log.error("exiting with %d shadow calls not written to %s", len(self._pending_shadow), self._where)

    def flush(self) -> bool:
        """Meter and write one batch (or write again the one that failed). False if the database was unavailable."""
        if self._batch_id is None and not self._form_batch():
            return True  # nothing to write, and no heartbeat due
        if time.monotonic() < self._retry_at:
            self._drop_if_no_room()
            return False
        try:
            open_store(self.path).append_request_logs(
                self._pending, self._pending_drops, self._pending_shadow, batch_id=self._batch_id
            )
        except Exception as e:  # locked, unwritable, disk full, server down: the proxy carries on regardless
            self._backoff = min(MAX_BACKOFF, self._backoff * 2 or 0.5)
            self._retry_at = time.monotonic() + self._backoff
            log.warning("cannot write to %s (%s); retrying in %.1fs", self._where, e, self._backoff)
            self._drop_if_no_room()
            return False
        if self._backoff:
            log.info("writing to %s again", self._where)
        self.written += len(self._pending)
        self._last_write = time.monotonic()
        drops = self._pending_drops
        self._persisted.update({reason: self._persisted.get(reason, 0) + n for reason, n in drops.items()})
        self._clear_batch()
        self._backoff = 0.0
        return True

    def _form_batch(self) -> bool:
        """Meter the next events into a new batch, with the shadow rows and drop counts so far. False
        when there is nothing to write and no heartbeat is due."""
        self.prices.poll()
        for event in self.next_batch():
            try:
                row = self.meter.row(event)
            except Exception:  # one odd event must not stop the writer
                log.exception("could not meter event %s; dropped", event.request_id)
                self.dropped_unmetered += 1
                continue
            self._pending.append(row)
            if event.shadow is not None and self.shadow is not None:
                self._offer_shadow(event, row)
        if self.shadow is not None:
            self._pending_shadow.extend(self.shadow.take())
        self._pending_drops = self._drop_deltas()
        idle = not self._pending and not self._pending_shadow and not any(self._pending_drops.values())
        if idle and time.monotonic() - self._last_write < HEARTBEAT_SECONDS:
            return False
        self._batch_id = uuid.uuid4().hex
        return True

    def _clear_batch(self) -> None:
        self._batch_id, self._pending, self._pending_shadow, self._pending_drops = None, [], [], {}

    def _offer_shadow(self, event: Event, row: dict) -> None:
        try:
            self.shadow.offer(event, row)
        except Exception:  # an experiment's trouble must not cost the request log its row
            log.exception("could not hand event %s to its shadow experiment", event.request_id)

    def _drop_deltas(self) -> dict[str, int]:
        totals = dict(self.dropped_upstream)
        totals["queue_full"] = totals.get("queue_full", 0) + self.queue.dropped
        totals["db_unavailable"] = self.dropped_unwritable
        totals["metering_error"] = self.dropped_unmetered
        totals.update(self.meter.degraded)  # stored, but without a cost or tokens
        return {reason: n - self._persisted.get(reason, 0) for reason, n in totals.items()}

    def _drop_if_no_room(self) -> None:
        # Keep waiting for the database only while new events can still queue behind the batch. A
        # dropped batch's drop counts were not stored: the next batch counts them again.
        if self._batch_id is not None and len(self.queue) + len(self._pending) >= self.queue.maxsize:
            if self._pending:
                log.error("database unavailable and the queue is full: dropping %d events", len(self._pending))
            self.dropped_unwritable += len(self._pending)
            self._clear_batch()


def child_main(
    path: str, pipe, interval: float, maxsize: int, batch_size: int, prices: PriceSettings, shadow: ShadowSettings
) -> None:
    """The writer process: receive batches until the proxy says stop (None) or goes away.

    Started by the proxy's WriterProcess (lectr.proxy.writerprocess), which holds the other end of
    `pipe`, and whose entry ignores SIGINT and SIGTERM before it imports this module.
    """
    logging.basicConfig(level=logging.INFO, format="[lectr-writer] %(levelname)s %(message)s")
    queue = EventQueue(maxsize, batch_size)
    runner = ShadowRunner(shadow, seed=open_store(path).shadow_usage)
    writer = Writer(path, queue, interval, prices=prices, shadow=runner)
    writer.start()
    while True:
        try:
            message: tuple[list[Event], dict[str, int]] | None = pipe.recv()
        except (EOFError, OSError):  # the proxy went away without saying so
            break
        if message is None:
            break
        events, writer.dropped_upstream = message
        for event in events:
            queue.offer(event)
    writer.stop()
