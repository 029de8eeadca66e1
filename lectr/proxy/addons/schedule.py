"""Schedule: the aggregator, anomaly detector and recommendation engine on their schedules.

Each job runs on stored data only, in a process of its own (one, kept for all jobs):
DuckDB and pandas hold the GIL for milliseconds at a time, which in a thread of the
proxy would stall requests in flight. The proxy sends that process small calls on plain
values (lectr/proxy/jobcalls.py), which import the jobs there: the proxy never loads them.
A failing job logs and tries again at its next turn. With several hosts on one PostgreSQL
store, every host's schedule runs, and each job runs on one host per interval (lectr/jobs/runs.py).
The same jobs run once from the command line: `lectr aggregate|anomalies|recommend`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

from mitmproxy import ctx, exceptions

from lectr.common import faults
from lectr.common.jobsettings import EVERY, SmtpSettings, env_settings, split_recipients
from lectr.common.process import JOBS, sigint_blocked, start_child
from lectr.prices import families
from lectr.proxy import jobcalls
from lectr.proxy.addons import at_least, option_error

log = logging.getLogger(__name__)

SMTP_OPTIONS = {f"lectr_smtp_{name}" for name in ("host", "port", "from", "to", "starttls", "user")}


class Schedule:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task] = []
        self._pool: ProcessPoolExecutor | None = None
        self.smtp = env_settings()  # what the lectr_smtp_* options say, once configured

    def load(self, loader) -> None:
        env = env_settings()
        for job, seconds in EVERY.items():
            loader.add_option(
                f"lectr_{job}_every",
                int,
                seconds,
                f"Seconds between {job} runs; 0: never. With several hosts on one PostgreSQL lectr_db, one host "
                "runs it per interval.",
            )
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
        for job in EVERY:
            if f"lectr_{job}_every" in updated:
                at_least(f"lectr_{job}_every", 0, "seconds", f"set it to 0 to turn the {job} job off")
        if "lectr_tiers" in updated and ctx.options.lectr_tiers:
            try:
                families.load_tiers(ctx.options.lectr_tiers)
            except families.TiersError as e:
                raise exceptions.OptionsError(str(e)) from e
        if updated & SMTP_OPTIONS:
            self.smtp = smtp_settings(ctx.options)

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        o = ctx.options
        for every, job in (
            (o.lectr_aggregate_every, lambda: self.aggregate(o)),
            (o.lectr_anomalies_every, lambda: self.anomalies(o)),
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
                initializer=start_child,
                initargs=(JOBS,),
            )
        try:
            with sigint_blocked():  # submit() starts the process: not even its imports see a Ctrl-C
                pending = asyncio.get_running_loop().run_in_executor(self._pool, job)
            await pending
        except BrokenProcessPool:  # its process was killed: the next turn starts a new one
            self._pool = None
            raise

    # Each call carries its interval: with several hosts on one PostgreSQL store, a host that finds
    # the job run elsewhere within the interval skips its turn (lectr/jobs/runs.py).

    @staticmethod
    def aggregate(o) -> Callable[[], object]:
        return functools.partial(jobcalls.aggregate, o.lectr_db, o.lectr_aggregate_every, faults.armed())

    def anomalies(self, o) -> Callable[[], object]:
        return functools.partial(jobcalls.anomalies, o.lectr_db, self.smtp, o.lectr_anomalies_every, faults.armed())

    @staticmethod
    def recommend(o) -> Callable[[], object]:
        every = o.lectr_recommend_every
        return functools.partial(
            jobcalls.recommend, o.lectr_db, o.lectr_prices_file, o.lectr_tiers, every, faults.armed()
        )


def smtp_settings(o) -> SmtpSettings:
    """The alert email as the lectr_smtp_* options say (the password: LECTR_SMTP_PASSWORD only).
    OptionsError, saying how to fix it, for a value no email could go out with."""
    recipients = split_recipients(o.lectr_smtp_to)
    if o.lectr_smtp_host:  # mail off: nothing here is used, so nothing here can stop the proxy
        if not 1 <= o.lectr_smtp_port <= 65535:
            raise option_error("lectr_smtp_port", "a port number from 1 to 65535", "587 (submission) or 25")
        # A local mail server takes a bare name (root): only what no server takes is refused.
        if not o.lectr_smtp_from.strip() or _unsendable(o.lectr_smtp_from):
            raise option_error("lectr_smtp_from", "an email address", "e.g. lectr@example.com")
        if any(_unsendable(r) for r in recipients):
            raise option_error(
                "lectr_smtp_to", "email addresses, comma-separated", "e.g. ops@example.com,oncall@example.com"
            )
    return SmtpSettings(
        host=o.lectr_smtp_host,
        port=o.lectr_smtp_port,
        sender=o.lectr_smtp_from,
        recipients=recipients,
        starttls=o.lectr_smtp_starttls,
        user=o.lectr_smtp_user,
        password=env_settings().password,
    )


async def _every(seconds: int, job: Callable[[], Callable[[], object]], run) -> None:
    """`job()` makes the call to run (options are read at each turn); `run` runs it elsewhere."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run(job())
        except Exception:  # the next turn may succeed (a locked file, a full disk, a killed process)
            log.exception("background job failed; trying again in %ss", seconds)


def _unsendable(address: str) -> bool:
    """Spaces or control characters: no mail server takes such an address."""
    return any(c.isspace() or ord(c) < 32 for c in address.strip())
