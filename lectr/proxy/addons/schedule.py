"""Schedule: the aggregator, anomaly detector and recommendation engine on their schedules.

Each job runs on stored data only, in a process of its own (one, kept for all jobs):
DuckDB and pandas hold the GIL for milliseconds at a time, which in a thread of the
proxy would stall requests in flight. A failing job logs and tries again at its next
turn. The same jobs run once from the command line: `lectr aggregate|anomalies|recommend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

from mitmproxy import ctx, exceptions

from lectr.jobs import alerts, runs

log = logging.getLogger(__name__)


class Schedule:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task] = []
        self._pool: ProcessPoolExecutor | None = None

    def load(self, loader) -> None:
        env = alerts.env_settings()
        for job, seconds in runs.EVERY.items():
            loader.add_option(f"lectr_{job}_every", int, seconds, f"Seconds between {job} runs; 0: never.")
        loader.add_option(
            "lectr_tiers",
            str,
            "",
            "A tiers file (the shape of lectr/prices/tiers.yaml) that extends which model is the smaller one, for "
            "recommendations; empty: $LECTR_TIERS, else Lectr's own.",
        )
        loader.add_option("lectr_smtp_host", str, env.host, "SMTP server for anomaly alerts; empty: no email.")
        loader.add_option("lectr_smtp_port", int, env.port, "SMTP port.")
        loader.add_option("lectr_smtp_from", str, env.sender, "Sender address of alert emails.")
        loader.add_option("lectr_smtp_to", str, ",".join(env.recipients), "Alert recipients, comma-separated.")
        loader.add_option("lectr_smtp_starttls", bool, env.starttls, "Use STARTTLS with the SMTP server.")
        loader.add_option(
            "lectr_smtp_user", str, env.user, "SMTP login; the password is read from LECTR_SMTP_PASSWORD only."
        )

    def configure(self, updated: set[str]) -> None:
        if "lectr_tiers" in updated and ctx.options.lectr_tiers:
            from lectr.prices import families  # here only: it loads the price data, which the proxy does not need

            try:
                families.load_tiers(ctx.options.lectr_tiers)
            except families.TiersError as e:
                raise exceptions.OptionsError(str(e)) from e

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        o = ctx.options
        for every, job in (
            (o.lectr_aggregate_every, lambda: functools.partial(runs.run_aggregate, o.lectr_db)),
            (o.lectr_anomalies_every, lambda: functools.partial(runs.run_anomalies, o.lectr_db, self.smtp())),
            (o.lectr_recommend_every, lambda: self.recommend(o)),
        ):
            if every > 0:
                self._tasks.append(loop.create_task(_every(every, job, self._run_in_pool)))

    def done(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _run_in_pool(self, job: Callable[[], object]) -> None:
        if self._pool is None:  # started on first use: a proxy with every job off has no extra process
            # Ctrl-C sends SIGINT to the whole process group. The jobs process ignores it (it printed
            # a KeyboardInterrupt traceback); `done` stops it in order, as the writer's.
            self._pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=signal.signal,
                initargs=(signal.SIGINT, signal.SIG_IGN),
            )
        try:
            with _sigint_blocked():  # submit() starts the process: not even its imports see a Ctrl-C
                pending = asyncio.get_running_loop().run_in_executor(self._pool, job)
            await pending
        except BrokenProcessPool:  # its process was killed: the next turn starts a new one
            self._pool = None
            raise

    @staticmethod
    def recommend(o) -> Callable[[], object]:
        return functools.partial(runs.run_recommend, o.lectr_db, prices_file=o.lectr_prices_file, tiers=o.lectr_tiers)

    @staticmethod
    def smtp() -> alerts.SmtpSettings:
        o = ctx.options
        return alerts.SmtpSettings(
            host=o.lectr_smtp_host,
            port=o.lectr_smtp_port,
            sender=o.lectr_smtp_from,
            recipients=alerts.split_recipients(o.lectr_smtp_to),
            starttls=o.lectr_smtp_starttls,
            user=o.lectr_smtp_user,
            password=alerts.env_settings().password,
        )


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT held back in this thread while it starts a process, as CPython's resource tracker
    is started: the child inherits the block (and keeps it), so a Ctrl-C cannot interrupt it
    before its initializer ignores SIGINT; here the signal waits, delivered once unblocked."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


async def _every(seconds: int, job: Callable[[], Callable[[], object]], run) -> None:
    """`job()` makes the call to run (options are read at each turn); `run` runs it elsewhere."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run(job())
        except Exception:  # the next turn may succeed (a locked file, a full disk, a killed process)
            log.exception("background job failed; trying again in %ss", seconds)
