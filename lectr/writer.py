"""The writer thread: drains the event queue in batches into DuckDB.

A batch is written when `batch_size` events are waiting or every `interval` seconds,
whichever comes first. The database file is opened per batch and closed again, so the
dashboard (another process) can read between batches.

When the database cannot be written (locked too long, unwritable, disk full) the batch
is kept and retried with growing pauses while the queue still has room; once waiting
would fill the queue, the batch is dropped and counted. Drop counts are written with
the next batch that succeeds. `stop()` flushes what is queued before returning.
"""

from __future__ import annotations

import logging
import threading
import time

from lectr import storage
from lectr.events import EventQueue
from lectr.metering import Meter

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
# Opening the file costs milliseconds; with a backlog, one open takes up to this many rows.
MAX_ROWS_PER_WRITE = 20_000
# With no traffic, an empty write this often tells the dashboard the proxy is alive.
HEARTBEAT_SECONDS = 60.0


class Writer:
    def __init__(self, path: str, queue: EventQueue, interval: float = 1.0, meter: Meter | None = None) -> None:
        self.path = path
        self.queue = queue
        self.interval = interval
        self.meter = meter or Meter()
        self.written = 0  # rows written since start
        self.dropped_unwritable = 0  # events dropped because the database stayed unavailable
        self._persisted = {"queue_full": 0, "db_unavailable": 0}
        self._pending: list[dict] = []  # metered rows waiting for a successful write
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_write = time.monotonic()
        self._stop_timeout = 10.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lectr-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Flush everything queued (trying the database until `timeout`), then end the thread."""
        self._stop_timeout = timeout
        self._stopping.set()
        self.queue.ready.set()
        self._thread.join(timeout + 1)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.queue.ready.wait(self.interval)
            self.queue.ready.clear()
            self.flush()
        deadline = time.monotonic() + self._stop_timeout
        while time.monotonic() < deadline:  # the rest of the queue, and the drop counts
            self._retry_at = 0.0
            if self.flush() and not len(self.queue):
                break
            time.sleep(0.2)
        if self._pending or len(self.queue):
            log.error("exiting with %d events not written to %s", len(self._pending) + len(self.queue), self.path)

    def flush(self) -> bool:
        """Meter and write one batch. False if the database was unavailable."""
        if not self._pending:
            for event in self.queue.take(max(self.queue.batch_size, min(len(self.queue), MAX_ROWS_PER_WRITE))):
                try:
                    self._pending.append(self.meter.row(event))
                except Exception:  # one odd event must not stop the writer
                    log.exception("could not meter event %s; dropped", event.request_id)
                    self.dropped_unwritable += 1
        drops = self._drop_deltas()
        idle = not self._pending and not any(drops.values())
        if idle and time.monotonic() - self._last_write < HEARTBEAT_SECONDS:
            return True
        if time.monotonic() < self._retry_at:
            self._drop_if_no_room()
            return False
        try:
            storage.append_request_logs(self.path, self._pending, drops)
        except Exception as e:  # locked, unwritable, disk full: the proxy carries on regardless
            self._backoff = min(MAX_BACKOFF, self._backoff * 2 or 0.5)
            self._retry_at = time.monotonic() + self._backoff
            log.warning("cannot write to %s (%s); retrying in %.1fs", self.path, e, self._backoff)
            self._drop_if_no_room()
            return False
        if self._backoff:
            log.info("writing to %s again", self.path)
        self.written += len(self._pending)
        self._last_write = time.monotonic()
        self._pending = []
        self._backoff = 0.0
        self._persisted.update({reason: self._persisted[reason] + n for reason, n in drops.items()})
        return True

    def _drop_deltas(self) -> dict[str, int]:
        totals = {"queue_full": self.queue.dropped, "db_unavailable": self.dropped_unwritable}
        return {reason: totals[reason] - self._persisted[reason] for reason in totals}

    def _drop_if_no_room(self) -> None:
        # Keep waiting for the database only while new events can still queue behind us.
        if self._pending and len(self.queue) + len(self._pending) >= self.queue.maxsize:
            log.error("database unavailable and the queue is full: dropping %d events", len(self._pending))
            self.dropped_unwritable += len(self._pending)
            self._pending = []
