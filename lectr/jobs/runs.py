"""The three background jobs, each one call: used by the proxy's schedule and by the CLI.

They read and write stored data only, never anything on the hot path.

Each runs inside its turn (`Store.job_turn`): with several hosts on one PostgreSQL store, one host
at a time runs a job, and a scheduled run (`every`, its interval in seconds) is skipped when another
host ran the job less than most of an interval ago (lectr.store.pg_store.SKIP_SHARE); the skipped
call returns None. Asked by hand (`every` None) a job always runs, unless another host is running
it at that moment: then `JobBusy` says so. A job's writes are one transaction (each store write is), so a host that dies
mid-job leaves nothing half-written, and its turn (an advisory lock on its connection) goes with it.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

from lectr.common import faults
from lectr.common.errors import LectrError
from lectr.common.jobsettings import SmtpSettings
from lectr.jobs import alerts, anomaly
from lectr.jobs.recommend import Recommendation, recommend_all
from lectr.store import Store, open_store, utc_now

log = logging.getLogger(__name__)

RECOMMEND_DAYS = 30  # traffic considered by the recommendation engine


class JobBusy(LectrError, RuntimeError):
    """A job asked for by hand is running on another host right now."""


@contextmanager
def turn(store: Store, job: str, every: float | None) -> Iterator[bool]:
    """Whether this process runs `job` now (Store.job_turn); by hand (`every` None), JobBusy instead of False."""
    with store.job_turn(job, every) as mine:
        if not mine and every is None:
            raise JobBusy(
                f"{job} is running on another host of {store.display} right now; run it again once that run is done"
            )
        if not mine:  # the normal case with several hosts: once per interval per host, so not above debug
            log.debug("%s: not this host's turn (another host is running it, or ran it within this interval)", job)
        yield mine


def run_aggregate(db: str | Path, now: datetime | None = None, every: float | None = None) -> int | None:
    """Summary rows written; None: not this host's turn."""
    faults.check("aggregate.run")
    store = open_store(db)
    with turn(store, "aggregate", every) as mine:
        return store.aggregate(now) if mine else None


@dataclass
class AnomalyRun:
    new: list[anomaly.Finding]  # opened this run (mailed)
    ongoing: list[anomaly.Finding]  # still open from an earlier run (mailed again only if escalated or never sent)
    resolved: int
    mailed: bool
    mail_error: str | None = None


def run_anomalies(
    db: str | Path,
    smtp: SmtpSettings | None = None,
    now: datetime | None = None,
    settings: anomaly.Settings = anomaly.Settings(),
    every: float | None = None,
) -> AnomalyRun | None:
    """Detect, mail and store anomalies; None: not this host's turn (nothing detected, nothing mailed)."""
    faults.check("anomalies.run")
    store = open_store(db)
    with turn(store, "anomalies", every) as mine:
        return _anomalies(store, smtp, now or utc_now(), settings) if mine else None


def _anomalies(store: Store, smtp: SmtpSettings | None, now: datetime, settings: anomaly.Settings) -> AnomalyRun:
    findings = anomaly.detect(store.hourly_metrics(now), settings)
    open_by_key = {anomaly.anomaly_key(a["org_id"], a["feature"], a["metric"]): a for a in store.open_anomalies()}
    upserts, to_mail, new, ongoing = [], [], [], []
    for f in findings:
        previous = open_by_key.pop(f.key, None)
        row = {
            "org_id": f.org_id,
            "feature": f.feature,
            "metric": f.metric,
            "window_start": now - timedelta(hours=1),
            "window_end": now,
            "observed": f.observed,
            "expected": f.expected,
            "score": f.score,
            "severity": f.severity,
            "status": "open",
            "last_seen": now,
        }
        if previous is None:
            row.update(anomaly_id=f"{f.key}|{now:%Y%m%dT%H%M%S}", first_seen=now, resolved_at=None)
            new.append(f)
            to_mail.append((f, row))
        else:
            escalated = previous["severity"] == "warning" and f.severity == "critical"
            never_mailed = previous["notified_at"] is None  # the mail server was down: try again
            row.update({k: previous[k] for k in ("anomaly_id", "first_seen", "notified_at", "notify_error")})
            ongoing.append(f)
            if escalated or never_mailed:
                to_mail.append((f, row))
        upserts.append(row)
    mailing = bool(to_mail) and smtp is not None and smtp.enabled
    if to_mail and not mailing:  # no failure (mail_error stays None), but the dashboard says why no alert went out
        reason = alerts.not_configured(smtp or SmtpSettings())
        for _, row in to_mail:
            row.update(notify_error=reason)
    # Stored before the mail goes out, as not mailed (an escalation too), then marked mailed: a run that
    # fails or a host that dies in between leaves them "never mailed", and the next run (on any host)
    # mails them (a host dying just after the mail, before its mark, has it sent twice: at least once).
    # The other order would mail anomalies that were never stored, and mail them again as new.
    if mailing:
        for _, row in to_mail:
            row.update(notified_at=None)
    store.save_anomalies(upserts, [a["anomaly_id"] for a in open_by_key.values()], now)
    mailed, error = False, None
    if mailing:
        try:
            alerts.send(smtp, alerts.compose([f for f, _ in to_mail], smtp.sender, smtp.recipients))
            mailed = True
        except Exception as e:  # a mail server that is down must not stop detection
            error = f"{type(e).__name__}: {e}"
            log.warning("could not send the anomaly alert via %s:%s: %s", smtp.host, smtp.port, error)
        for _, row in to_mail:
            row.update(notified_at=now if mailed else None, notify_error=error)
        store.save_anomalies([row for _, row in to_mail], [], now)
    return AnomalyRun(new, ongoing, len(open_by_key), mailed, error)


def run_recommend(
    db: str | Path, now: datetime | None = None, prices_file: str = "", tiers: str = "", every: float | None = None
) -> list[Recommendation] | None:
    """Recommendations priced as the writer prices rows: `prices_file` (the user's), then what
    `lectr prices update` fetched for `db` (priceupdate.data_path), then the bundled data; `tiers` extends
    lectr/prices/tiers.yaml. None: not this host's turn."""
    faults.check("recommend.run")
    store = open_store(db)
    with turn(store, "recommend", every) as mine:
        return _recommend(store, now or utc_now(), prices_file, tiers) if mine else None


def _recommend(store: Store, now: datetime, prices_file: str, tiers: str) -> list[Recommendation]:
    from lectr.prices import families, priceupdate  # in the jobs process only: the proxy never fetches prices

    priceupdate.use_saved(store.location, prices_file)
    catalog = families.catalog(tiers or None)
    since = now - timedelta(days=RECOMMEND_DAYS)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    found = recommend_all(store.traffic_profiles(since), catalog, store.experiment_results(since, today))
    store.replace_recommendations([r.row() for r in found], now)
    return found
