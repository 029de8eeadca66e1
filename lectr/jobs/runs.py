"""The three background jobs, each one call: used by the proxy's schedule and by the CLI.

They read and write stored data only, never anything on the hot path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from lectr.common import faults
from lectr.jobs import alerts, anomaly
from lectr.jobs.recommend import Recommendation, recommend_all
from lectr.store import storage

log = logging.getLogger(__name__)

RECOMMEND_DAYS = 30  # traffic considered by the recommendation engine
# Seconds between runs, in the proxy (lectr_*_every) and in `lectr jobs` (--*-every).
EVERY = {"aggregate": 60, "anomalies": 300, "recommend": 86400}


def run_aggregate(db: str | Path, now: datetime | None = None) -> int:
    faults.check("aggregate.run")
    return storage.aggregate(db, now)


@dataclass
class AnomalyRun:
    new: list[anomaly.Finding]  # opened this run (mailed)
    ongoing: list[anomaly.Finding]  # still open from an earlier run (mailed again only if escalated or never sent)
    resolved: int
    mailed: bool
    mail_error: str | None = None


def run_anomalies(
    db: str | Path,
    smtp: alerts.SmtpSettings | None = None,
    now: datetime | None = None,
    settings: anomaly.Settings = anomaly.Settings(),
) -> AnomalyRun:
    faults.check("anomalies.run")
    now = now or storage.utc_now()
    findings = anomaly.detect(storage.hourly_metrics(db, now), settings)
    open_by_key = {anomaly.anomaly_key(a["org_id"], a["feature"], a["metric"]): a for a in storage.open_anomalies(db)}
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
    mailed, error = False, None
    if to_mail and smtp is not None and smtp.enabled:
        try:
            alerts.send(smtp, alerts.compose([f for f, _ in to_mail], smtp.sender, smtp.recipients))
            mailed = True
        except Exception as e:  # a mail server that is down must not stop detection
            error = f"{type(e).__name__}: {e}"
            log.warning("could not send the anomaly alert via %s:%s: %s", smtp.host, smtp.port, error)
        for _, row in to_mail:
            row.update(notified_at=now if mailed else row.get("notified_at"), notify_error=error)
    elif to_mail:  # no failure (mail_error stays None), but the dashboard says why no alert went out
        reason = alerts.not_configured(smtp or alerts.SmtpSettings())
        for _, row in to_mail:
            row.update(notify_error=reason)
    storage.save_anomalies(db, upserts, [a["anomaly_id"] for a in open_by_key.values()], now)
    return AnomalyRun(new, ongoing, len(open_by_key), mailed, error)


def run_recommend(
    db: str | Path, now: datetime | None = None, prices_file: str = "", tiers: str = ""
) -> list[Recommendation]:
    """Recommendations priced as the writer prices rows: `prices_file` (the user's), then what
    `lectr prices update` fetched next to `db`, then the bundled data; `tiers` extends lectr/prices/tiers.yaml."""
    from lectr.prices import families, priceupdate  # in the jobs process only: the proxy never fetches prices

    faults.check("recommend.run")
    now = now or storage.utc_now()
    priceupdate.use_saved(str(db), prices_file)
    catalog = families.catalog(tiers or None)
    found = recommend_all(storage.traffic_profiles(db, now - timedelta(days=RECOMMEND_DAYS)), catalog)
    storage.replace_recommendations(db, [r.row() for r in found], now)
    return found
