"""The aggregator's summaries: what the dashboard reads instead of the whole request log.

`dashboard_summaries` holds per hour and per day the request log grouped by org, feature,
task, provider, model, rule and status; `dashboard_latency` the exact latency percentiles per
org and over all orgs (percentiles of finer rows cannot be combined); `dashboard_drops` the
dropped events. Each run recomputes the buckets that may have changed since the last one.
The dashboard computes the same rows itself (`summary_select`) for the buckets the
aggregator has not stored yet (`summarised_until`), so its figures agree with the log.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from lectr.store.database import Database, Session, scalar, utc_now
from lectr.store.jobs import last_run, note_run


def _percentile(p: float, column: str) -> str:
    return f"percentile_cont({p}) WITHIN GROUP (ORDER BY {column})"


PERCENTILES = ", ".join(
    f"{_percentile(p, column)} AS {column.removesuffix('_ms')}_p{int(p * 100)}_ms"
    for column in ("latency_ms", "ttfb_ms")
    for p in (0.5, 0.95)
)

SUMMARY_COLUMNS = (
    "period, bucket_start, org_id, feature, task, provider, model_actual, rule_id, rule_name, routed, status_code, "
    "requests, errors, prompt_tokens, completion_tokens, cost_usd, unpriced_requests, "
    "latency_p50_ms, latency_p95_ms, ttfb_p50_ms, ttfb_p95_ms"
)
LATENCY_COLUMNS = (
    "period, bucket_start, org_id, all_orgs, requests, latency_p50_ms, latency_p95_ms, ttfb_p50_ms, ttfb_p95_ms"
)

SUMMARY_MARGIN = timedelta(minutes=5)  # events reach the database within seconds; this is ample


class Summaries:
    """The aggregator (a part of DuckStore and PgStore)."""

    db: Database

    def aggregate(self, now: datetime | None = None, full: bool = False) -> int:
        """Recompute dashboard summaries for every bucket that may have changed since the last run.

        Events arrive within seconds of completing, so the buckets from an hour before the
        last run onwards are recomputed (all of them on the first run, or with `full`).
        Returns rows written.
        """
        now = now or utc_now()
        written = 0
        with self.db.write() as s:
            last = None if full else last_run(s, "aggregate")
            for period in ("hour", "day"):
                since = bucket_floor(s, period, last - timedelta(hours=1)) if last else datetime(1970, 1, 1)
                params = {"since": since}
                for table in ("dashboard_summaries", "dashboard_drops", "dashboard_latency"):
                    s.execute(f"DELETE FROM {table} WHERE period = '{period}' AND bucket_start >= $since", params)
                sql = f"INSERT INTO dashboard_summaries ({SUMMARY_COLUMNS}) {summary_select(period)}"
                written += s.execute(sql, params)
                s.execute(f"INSERT INTO dashboard_latency ({LATENCY_COLUMNS}) {latency_select(period)}", params)
                s.execute(
                    f"""
                    INSERT INTO dashboard_drops (period, bucket_start, reason, events)
                    SELECT '{period}', date_trunc('{period}', ts), reason, sum(events)
                    FROM dropped_events WHERE ts >= $since GROUP BY 1, 2, 3
                    """,
                    params,
                )
            note_run(s, "aggregate", now)
        return written


def summary_select(period: str, since: str = "$since") -> str:
    """The dashboard_summaries rows of the request log from `since` (a named parameter) on: what the
    aggregator stores, and what the dashboard computes itself for the buckets it has not stored yet."""
    return f"""
        SELECT '{period}' AS period, date_trunc('{period}', ts) AS bucket_start,
               org_id, feature, task, provider, model_actual, rule_id, rule_name,
               coalesce(routed, false) AS routed, status_code,
               count(*) AS requests, count(error_category) AS errors,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(cost_usd) AS cost_usd, count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_requests,
               {PERCENTILES}
        FROM request_logs WHERE ts >= {since}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
    """


def latency_select(period: str, since: str = "$since") -> str:
    """Exact latency percentiles per org, and over all orgs together (all_orgs, org_id NULL), from `since`
    (a named parameter) on: percentiles of finer rows cannot be combined. All orgs are the requests
    Lectr let in: a refused one takes no time, and a flood of them must not pull the percentiles down."""
    return f"""
        SELECT '{period}' AS period, date_trunc('{period}', ts) AS bucket_start, org_id, false AS all_orgs,
               count(*) AS requests, {PERCENTILES}
        FROM request_logs WHERE ts >= {since} GROUP BY 1, 2, 3
        UNION ALL
        SELECT '{period}', date_trunc('{period}', ts), NULL, true, count(*), {PERCENTILES}
        FROM request_logs WHERE ts >= {since} AND org_id IS NOT NULL GROUP BY 1, 2
    """


def summarised_until(s: Session, period: str) -> datetime:
    """The start of the first bucket the summaries may not hold in full: the last aggregation's
    bucket, less a margin for events written a little after it."""
    last = last_run(s, "aggregate")
    return bucket_floor(s, period, last - SUMMARY_MARGIN) if last else datetime(1970, 1, 1)


def bucket_floor(s: Session, period: str, ts: datetime) -> datetime:
    return scalar(s, f"SELECT date_trunc('{period}', $ts::TIMESTAMP)", {"ts": ts})
