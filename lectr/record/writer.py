"""The writer: drains the event queue in batches into DuckDB, in a process of its own.

`WriterProcess` is what the proxy runs. Metering and DuckDB hold Python's GIL for
milliseconds at a time (opening the file alone stalls every other thread for up to
~20 ms on a small machine); in a thread of the proxy that lands on requests in flight.
So the proxy only hands batches to a pipe, from a thread, and a child process meters
and writes them with the `Writer` below. Killing the proxy closes the pipe; the child
then writes what it has and exits.

The `Writer` thread (in that child, or in tests directly):

A batch is written when `batch_size` events are waiting or every `interval` seconds,
whichever comes first. The database file is opened per batch and closed again, so the
dashboard (another process) can read between batches.

When the database cannot be written (locked too long, unwritable, disk full) the batch
is kept and retried with growing pauses while the queue still has room; once waiting
would fill the queue, the batch is dropped and counted. Drop counts are written with
the next batch that succeeds, and so are the rows stored with less than they could have
had (`pricing_error`, `counting_error`: see lectr/record/metering.py). `stop()` flushes what is
queued before returning.

Prices: between batches (never per request) the writer rereads the fetched price data
(`<db>.prices.json`, from `lectr prices update` or its own schedule) and the user's
price file when they change; see lectr/prices/pricing.py.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from typing import TYPE_CHECKING, NamedTuple

from lectr.common.events import Event, EventQueue
from lectr.store import storage

if TYPE_CHECKING:
    from lectr.record.metering import Meter

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
# Opening the file costs milliseconds; with a backlog, one open takes up to this many rows.
MAX_ROWS_PER_WRITE = 20_000
# With no traffic, an empty write this often tells the dashboard the proxy is alive.
HEARTBEAT_SECONDS = 60.0
# genai_prices.update_prices.DEFAULT_UPDATE_URL, here so the proxy need not import genai-prices (tested equal).
PRICES_URL = "https://raw.githubusercontent.com/pydantic/genai-prices/refs/heads/main/prices/new_data/v2/data.json"


class PriceSettings(NamedTuple):
    """Where the writer's prices come from, besides the data genai-prices bundles."""

    data_file: str = ""  # fetched genai-prices data; "": next to the database (<db>.prices.json)
    user_file: str = ""  # the user's price file (prices.yaml); "": none
    url: str = PRICES_URL  # where the schedule fetches from
    refresh_hours: float = 0  # fetch every this many hours; 0: never


class _Drainer:
    """A thread that takes from `queue` when a batch is waiting, or every `interval` seconds."""

    def __init__(self, queue: EventQueue, interval: float, name: str) -> None:
        self.queue = queue
        self.interval = interval
        self._stop_timeout = 10.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Drain everything queued (within about `timeout`), then end the thread."""
        self._stop_timeout = timeout
        self._stopping.set()
        self.queue.ready.set()
        self._thread.join(timeout + 1)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.queue.ready.wait(self.interval)
            self.queue.ready.clear()
            self.flush()
        self._finish()

    def flush(self) -> object:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError


class Writer(_Drainer):
    def __init__(
        self,
        path: str,
        queue: EventQueue,
        interval: float = 1.0,
        meter: Meter | None = None,
        prices: PriceSettings = PriceSettings(),
    ) -> None:
        # Imported here: metering loads tiktoken and the price data, which only the writer
        # process needs; the proxy that imports this module for WriterProcess stays smaller.
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
        self._pending: list[dict] = []  # metered rows waiting for a successful write
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_write = time.monotonic()

    def start(self) -> None:
        self.prices.start()
        super().start()

    def stop(self, timeout: float = 10.0) -> None:
        self.prices.stop()
        super().stop(timeout)

    def _finish(self) -> None:
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
            self.prices.poll()
            for event in self.queue.take(max(self.queue.batch_size, min(len(self.queue), MAX_ROWS_PER_WRITE))):
                try:
                    self._pending.append(self.meter.row(event))
                except Exception:  # one odd event must not stop the writer
                    log.exception("could not meter event %s; dropped", event.request_id)
                    self.dropped_unmetered += 1
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
        self._persisted.update({reason: self._persisted.get(reason, 0) + n for reason, n in drops.items()})
        return True

    def _drop_deltas(self) -> dict[str, int]:
        totals = dict(self.dropped_upstream)
        totals["queue_full"] = totals.get("queue_full", 0) + self.queue.dropped
        totals["db_unavailable"] = self.dropped_unwritable
        totals["metering_error"] = self.dropped_unmetered
        totals.update(self.meter.degraded)  # stored, but without a cost or tokens
        return {reason: n - self._persisted.get(reason, 0) for reason, n in totals.items()}

    def _drop_if_no_room(self) -> None:
        # Keep waiting for the database only while new events can still queue behind us.
        if self._pending and len(self.queue) + len(self._pending) >= self.queue.maxsize:
            log.error("database unavailable and the queue is full: dropping %d events", len(self._pending))
            self.dropped_unwritable += len(self._pending)
            self._pending = []


class WriterProcess(_Drainer):
    """The proxy's side: ships batches from `queue` to a `Writer` in a child process.

    Sending may wait on the pipe (a busy child); that wait is this thread's, and the
    queue in front of it drops and counts when full, as it does for the thread.
    If the child dies it is started again, and the batch that could not be handed
    over is counted as dropped ('writer_lost').
    """

    def __init__(
        self, path: str, queue: EventQueue, interval: float = 1.0, prices: PriceSettings = PriceSettings()
    ) -> None:
        super().__init__(queue, interval, "lectr-shipper")
        self.path = path
        self.prices = prices
        self.lost = 0  # events that could not be handed to a child process
        self._shipped_drops: dict[str, int] = {}
        self._mp = multiprocessing.get_context("spawn")  # never fork a process running an event loop
        self._process: multiprocessing.process.BaseProcess | None = None
        self._pipe = None

    def start(self) -> None:
        self._spawn()
        super().start()

    def stop(self, timeout: float = 10.0) -> None:
        """Hand over everything queued, then wait for the child to write it (up to `timeout`)."""
        super().stop(timeout)
        if self._process is not None:
            self._process.join(timeout + 5)
            if self._process.is_alive():
                log.error("the writer process did not finish in time; stopping it")
                self._process.terminate()

    def _spawn(self) -> None:
        if self._process is not None:
            self._process.join(1)  # reap the one that died
        receive, send = self._mp.Pipe(duplex=False)
        args = (self.path, receive, self.interval, self.queue.maxsize, self.queue.batch_size, self.prices)
        self._process = self._mp.Process(target=_child, args=args, name="lectr-writer", daemon=True)
        self._process.start()
        receive.close()
        self._pipe = send

    def _finish(self) -> None:
        while len(self.queue):
            self.flush()
        self.flush(final=True)

    def flush(self, final: bool = False) -> None:
        """Hand one batch (and the drop counts) to the child; `final` also tells it to finish."""
        batch = self.queue.take(max(self.queue.batch_size, min(len(self.queue), MAX_ROWS_PER_WRITE)))
        drops = {"queue_full": self.queue.dropped, "writer_lost": self.lost}
        if not batch and drops == self._shipped_drops and not final:
            return
        self._shipped_drops = drops
        message = (batch, drops)
        for _ in range(2):
            try:
                self._pipe.send(message)
                if final:
                    self._pipe.send(None)
                    self._pipe.close()
                return
            except (OSError, ValueError) as e:  # the child is gone (killed, crashed)
                log.error("the writer process is gone (%s); starting it again", e)
                self._spawn()
        self.lost += len(batch)


def _child(path: str, pipe, interval: float, maxsize: int, batch_size: int, prices: PriceSettings) -> None:
    """The writer process: receive batches until the proxy says stop (None) or goes away."""
    # Ctrl-C, or a service manager's SIGTERM, reaches the whole process group. The proxy says
    # when to stop, after its last batch; if it dies instead, the pipe closes and ends the loop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="[lectr-writer] %(levelname)s %(message)s")
    queue = EventQueue(maxsize, batch_size)
    writer = Writer(path, queue, interval, prices=prices)
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
