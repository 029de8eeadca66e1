"""Anomaly detection: is the last hour unusual against the same metric over the past week?

Pure. For each org (and each tagged feature of an org) and each metric, the current
hour-long window is compared with the 168 hourly windows before it using the median and
the median absolute deviation (MAD): unlike a mean and standard deviation, one earlier
spike does not hide the next. Only increases alert (spend, volume, errors, latency and
tokens going up); a window with fewer than `min_requests` requests never alerts, so a
quiet org's noise does not page anyone.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

METRICS = ("cost_usd", "requests", "error_rate", "latency_p95_ms", "tokens")
# Volume metrics are 0 in an hour without traffic; the others have no value then.
VOLUME_METRICS = {"cost_usd", "requests", "tokens"}
# The smallest spread assumed, per metric, so a perfectly flat baseline does not turn a
# tiny change into an infinite score: as a share of the median, or an absolute floor.
MIN_SPREAD_SHARE = 0.10
MIN_SPREAD = {"cost_usd": 0.01, "requests": 5.0, "error_rate": 0.02, "latency_p95_ms": 50.0, "tokens": 500.0}
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution is 0.6745 sigma


@dataclass(frozen=True)
class Settings:
    threshold: float = 4.0  # robust z-score at which a window is anomalous
    critical: float = 8.0  # ... and critical
    min_requests: int = 20  # in the current window
    min_baseline_hours: int = 24  # hours of history with traffic before anything alerts
    baseline_hours: int = 168


@dataclass(frozen=True)
class Finding:
    org_id: str
    feature: str | None
    metric: str
    observed: float
    expected: float  # the baseline median
    score: float  # robust z-score
    severity: str  # warning or critical

    @property
    def key(self) -> str:
        return anomaly_key(self.org_id, self.feature, self.metric)


def anomaly_key(org_id: str, feature: str | None, metric: str) -> str:
    """What makes two findings the same ongoing anomaly."""
    return f"{org_id}|{feature or ''}|{metric}"


def robust_score(observed: float, baseline: list[float], metric: str) -> tuple[float, float]:
    """(median of the baseline, robust z-score of `observed` against it)."""
    median = statistics.median(baseline)
    mad = statistics.median(abs(v - median) for v in baseline)
    spread = max(MAD_TO_SIGMA * mad, MIN_SPREAD_SHARE * abs(median), MIN_SPREAD[metric])
    return median, (observed - median) / spread


def detect(rows: list[dict], settings: Settings = Settings()) -> list[Finding]:
    """Findings from `Store.hourly_metrics` rows: one row per (org, feature, hours_ago)."""
    series: dict[tuple[str, str | None], dict[int, dict]] = {}
    for row in rows:
        feature = None if row["whole_org"] else row["feature"]
        series.setdefault((row["org_id"], feature), {})[row["hours_ago"]] = row
    findings = []
    for (org, feature), hours in series.items():
        current = hours.get(0)
        history = [hours[h] for h in range(1, settings.baseline_hours + 1) if h in hours]
        if current is None or current["requests"] < settings.min_requests:
            continue
        if len(history) < settings.min_baseline_hours:
            continue
        # Hours without traffic count as 0 for volume metrics, but only since the first traffic.
        since_first = range(1, max(h for h in hours if h <= settings.baseline_hours) + 1)
        for metric in METRICS:
            if metric in VOLUME_METRICS:
                baseline = [float(hours[h][metric]) if h in hours else 0.0 for h in since_first]
            else:
                baseline = [float(r[metric]) for r in history if r[metric] is not None]
            observed = current[metric]
            if observed is None or not baseline:
                continue
            expected, score = robust_score(float(observed), baseline, metric)
            if score >= settings.threshold:
                severity = "critical" if score >= settings.critical else "warning"
                findings.append(Finding(org, feature, metric, float(observed), expected, score, severity))
    return findings
