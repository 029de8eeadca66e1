"""The proxy's side of the writer process: starts it, and ships it the event queue's batches.

Metering and DuckDB hold the GIL for milliseconds at a time, so the events are written in
a child process of their own (lectr/record/writer.py). What runs in the proxy is only this:
a thread that takes batches from the queue and sends them down a pipe. The proxy never
imports `lectr.record`: the child's entry below imports it, in the child.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal

from lectr.common.events import Drainer, EventQueue
from lectr.common.experiments import ShadowSettings
from lectr.common.process import WRITER, sigint_blocked, start_child
from lectr.prices.sources import PriceSettings

log = logging.getLogger(__name__)


class WriterProcess(Drainer):
    """Ships batches from `queue` to a `Writer` in a child process.

    Sending may wait on the pipe (a busy child); that wait is this thread's, and the
    queue in front of it drops and counts when full, as it does for the thread.
    If the child dies it is started again, and the batch that could not be handed
    over is counted as dropped ('writer_lost').
    """

    def __init__(
        self,
        path: str,
        queue: EventQueue,
        interval: float = 1.0,
        prices: PriceSettings = PriceSettings(),
        shadow: ShadowSettings = ShadowSettings(),
    ) -> None:
        super().__init__(queue, interval, "lectr-shipper")
        self.path = path
        self.prices = prices
        self.shadow = shadow
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
        args = (self.path, receive, self.interval, self.queue.maxsize, self.queue.batch_size, self.prices, self.shadow)
        self._process = self._mp.Process(target=_child, args=args, name=WRITER, daemon=True)
        with sigint_blocked():  # until the child ignores it: a Ctrl-C meanwhile printed a traceback there
            self._process.start()
        receive.close()
        self._pipe = send

    def _finish(self) -> None:
        while len(self.queue):
            self.flush()
        self.flush(final=True)

    def flush(self, final: bool = False) -> None:
        """Hand one batch (and the drop counts) to the child; `final` also tells it to finish."""
        batch = self.next_batch()
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


def _child(*args: object) -> None:
    """The writer process's entry (spawned: only this light module is imported to find it)."""
    # Ctrl-C, or a service manager's SIGTERM, reaches the whole process group. The proxy says
    # when to stop, after its last batch; if it dies instead, the pipe closes and ends the loop.
    # Both ignored, and the process named, before the writer's imports.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    start_child(WRITER)
    from lectr.record.writer import child_main  # the child's import, never the proxy's (tests/test_layout.py)

    child_main(*args)
