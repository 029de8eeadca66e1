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

import duckdb

from lectr.store.connection import connect, utc_now
from lectr.store.jobs import last_run, note_run
from lectr.store.migrations import migrate

PERCENTILES = """quantile_cont(latency_ms, 0.5) AS latency_p50_ms, quantile_cont(latency_ms, 0.95) AS latency_p95_ms,
                 quantile_cont(ttfb_ms, 0.5) AS ttfb_p50_ms, quantile_cont(ttfb_ms, 0.95) AS ttfb_p95_ms"""

SUMMARY_MARGIN = timedelta(minutes=5)  # events reach the database within seconds; this is ample


class Summaries:
    """The DuckDB store's aggregator (a part of DuckStore)."""

    path: str

    def aggregate(self, now: datetime | None = None, full: bool = False) -> int:
        """Recompute dashboard summaries for every bucket that may have changed since the last run.

        Events arrive within seconds of completing, so the buckets from an hour before the
        last run onwards are recomputed (all of them on the first run, or with `full`).
        Returns rows written.
        """
        now = now or utc_now()
        with connect(self.path) as con:
            migrate(con)
            last = None if full else last_run(con, "aggregate")
            con.execute("BEGIN TRANSACTION")
            written = 0
            for period in ("hour", "day"):
                since = bucket_floor(con, period, last - timedelta(hours=1)) if last else datetime(1970, 1, 1)
                for table in ("dashboard_summaries", "dashboard_drops", "dashboard_latency"):
                    con.execute(f"DELETE FROM {table} WHERE period = ? AND bucket_start >= ?", [period, since])
                params = {"since": since}
                sql = f"INSERT INTO dashboard_summaries BY NAME {summary_select(period)}"
                written += con.execute(sql, params).fetchone()[0]
                con.execute(f"INSERT INTO dashboard_latency BY NAME {latency_select(period)}", params)
                con.execute(
                    f"""
                    INSERT INTO dashboard_drops
                    SELECT '{period}', date_trunc('{period}', ts), reason, sum(events)
                    FROM dropped_events WHERE ts >= ? GROUP BY ALL
                    """,
                    [since],
                )
            note_run(con, "aggregate", now)
            con.execute("COMMIT")
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
        GROUP BY ALL
    """


def latency_select(period: str, since: str = "$since") -> str:
    """Exact latency percentiles per org, and over all orgs together (all_orgs, org_id NULL), from `since`
    (a named parameter) on: percentiles of finer rows cannot be combined. All orgs are the requests
    Lectr let in: a refused one takes no time, and a flood of them must not pull the percentiles down."""
    return f"""
        SELECT '{period}' AS period, date_trunc('{period}', ts) AS bucket_start, org_id, false AS all_orgs,
               count(*) AS requests, {PERCENTILES}
        FROM request_logs WHERE ts >= {since} GROUP BY ALL
        UNION ALL
        SELECT '{period}', date_trunc('{period}', ts), NULL, true, count(*), {PERCENTILES}
        FROM request_logs WHERE ts >= {since} AND org_id IS NOT NULL GROUP BY ALL
    """


def summarised_until(con: duckdb.DuckDBPyConnection, period: str) -> datetime:
    """The start of the first bucket the summaries may not hold in full: the last aggregation's
    bucket, less a margin for events written a little after it."""
    last = last_run(con, "aggregate")
    return bucket_floor(con, period, last - SUMMARY_MARGIN) if last else datetime(1970, 1, 1)


def bucket_floor(con: duckdb.DuckDBPyConnection, period: str, ts: datetime) -> datetime:
    return con.execute(f"SELECT date_trunc('{period}', ?::TIMESTAMP)", [ts]).fetchone()[0]
