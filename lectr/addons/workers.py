"""Workers: the aggregator, anomaly detector and recommendation engine on their schedules.

Each job runs in a thread on stored data only; a failing job logs and tries again at its
next turn. The same jobs run once from the command line: `lectr aggregate|anomalies|recommend`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from mitmproxy import ctx

from lectr import alerts, workers

log = logging.getLogger(__name__)


class Workers:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task] = []

    def load(self, loader) -> None:
        env = alerts.env_settings()
        loader.add_option("lectr_aggregate_every", int, 60, "Seconds between dashboard aggregations; 0: never.")
        loader.add_option("lectr_anomalies_every", int, 300, "Seconds between anomaly checks; 0: never.")
        loader.add_option("lectr_recommend_every", int, 86400, "Seconds between recommendation runs; 0: never.")
        loader.add_option("lectr_smtp_host", str, env.host, "SMTP server for anomaly alerts; empty: no email.")
        loader.add_option("lectr_smtp_port", int, env.port, "SMTP port.")
        loader.add_option("lectr_smtp_from", str, env.sender, "Sender address of alert emails.")
        loader.add_option("lectr_smtp_to", str, ",".join(env.recipients), "Alert recipients, comma-separated.")
        loader.add_option("lectr_smtp_starttls", bool, env.starttls, "Use STARTTLS with the SMTP server.")
        loader.add_option(
            "lectr_smtp_user", str, env.user, "SMTP login; the password is read from LECTR_SMTP_PASSWORD only."
        )

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        for every, job in (
            (ctx.options.lectr_aggregate_every, lambda: workers.run_aggregate(ctx.options.lectr_db)),
            (ctx.options.lectr_anomalies_every, lambda: workers.run_anomalies(ctx.options.lectr_db, self.smtp())),
            (ctx.options.lectr_recommend_every, lambda: workers.run_recommend(ctx.options.lectr_db)),
        ):
            if every > 0:
                self._tasks.append(loop.create_task(_every(every, job)))

    def done(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

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


async def _every(seconds: int, job: Callable[[], object]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await asyncio.to_thread(job)
        except Exception:  # the next turn may succeed (a locked file, a full disk)
            log.exception("background job failed; trying again in %ss", seconds)
