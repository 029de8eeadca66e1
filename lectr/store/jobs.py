"""The background jobs' tables: the anomaly detector's and the recommendation engine's
inputs and findings, and `worker_runs`, when each job last ran.

The writer notes its heartbeat in `worker_runs` too ('writer'), and the aggregator its last
run ('aggregate'), from which the dashboard tells where the stored summaries end.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from lectr.store.connection import connect, dicts, has_table
from lectr.store.migrations import migrate


def last_run(con: duckdb.DuckDBPyConnection, worker: str) -> datetime | None:
    row = con.execute("SELECT last_run FROM worker_runs WHERE worker = ?", [worker]).fetchone()
    return row[0] if row else None


def note_run(con: duckdb.DuckDBPyConnection, worker: str, now: datetime) -> None:
    con.execute("INSERT OR REPLACE INTO worker_runs VALUES (?, ?)", [worker, now])


class JobTables:
    """The DuckDB store's reads and writes for the background jobs (a part of DuckStore)."""

    path: str

    # --- anomaly detector ---

    def hourly_metrics(self, now: datetime, days: int = 7) -> list[dict]:
        """Per org (feature NULL) and per org and feature: one row per hour-long window back from `now`.

        `hours_ago` 0 is the current window (the last 60 minutes); 1..24*days the baseline.
        Hours without traffic have no row.
        """
        start = now - timedelta(days=days, hours=1)
        with connect(self.path, read_only=True) as con:
            if not has_table(con, "request_logs"):
                return []
            cursor = con.execute(
                """
                SELECT org_id, feature, grouping(feature) = 1 AS whole_org,
                       CAST(floor(epoch(?::TIMESTAMP - ts) / 3600) AS INTEGER) AS hours_ago,
                       count(*) AS requests,
                       count(error_category) / count(*) AS error_rate,
                       coalesce(sum(cost_usd), 0) AS cost_usd,
                       coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) AS tokens,
                       quantile_cont(latency_ms, 0.95) AS latency_p95_ms
                FROM request_logs
                WHERE ts > ? AND ts <= ? AND org_id IS NOT NULL
                GROUP BY GROUPING SETS ((org_id, hours_ago), (org_id, feature, hours_ago))
                HAVING grouping(feature) = 1 OR feature IS NOT NULL
                """,
                [now, start, now],
            )
            return dicts(cursor)

    def open_anomalies(self) -> list[dict]:
        with connect(self.path, read_only=True) as con:
            if not has_table(con, "anomalies"):
                return []
            return dicts(con.execute("SELECT * FROM anomalies WHERE status = 'open'"))

    def save_anomalies(self, upserts: list[dict], resolved: list[str], now: datetime) -> None:
        """Insert or update anomalies (dicts keyed by column) and mark others resolved."""
        with connect(self.path) as con:
            migrate(con)
            con.execute("BEGIN TRANSACTION")
            for row in upserts:
                columns = list(row)
                con.execute(
                    f"INSERT OR REPLACE INTO anomalies ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [row[c] for c in columns],
                )
            for anomaly_id in resolved:
                con.execute(
                    "UPDATE anomalies SET status = 'resolved', resolved_at = ? WHERE anomaly_id = ?", [now, anomaly_id]
                )
            note_run(con, "anomalies", now)
            con.execute("COMMIT")

    # --- recommendations ---

    def traffic_profiles(self, since: datetime) -> list[dict]:
        """Per org, feature, provider and model actually used: volume, token profile, cost, task mix."""
        with connect(self.path, read_only=True) as con:
            if not has_table(con, "request_logs"):
                return []
            cursor = con.execute(
                """
                SELECT org_id, feature, provider, model_actual,
                       count(*) AS requests,
                       count(error_category) AS errors,
                       avg(prompt_tokens) AS avg_prompt_tokens,
                       quantile_cont(prompt_tokens, 0.95) AS p95_prompt_tokens,
                       avg(completion_tokens) AS avg_completion_tokens,
                       quantile_cont(completion_tokens, 0.95) AS p95_completion_tokens,
                       avg(cached_tokens) AS avg_cached_tokens,
                       sum(cost_usd) AS cost_usd,
                       epoch(max(ts) - min(ts)) / 86400 AS days_observed,
                       histogram(lower(task)) FILTER (WHERE task IS NOT NULL) AS task_mix
                FROM request_logs
                WHERE ts >= ? AND org_id IS NOT NULL AND model_actual IS NOT NULL AND prompt_tokens IS NOT NULL
                GROUP BY ALL
                """,
                [since],
            )
            return dicts(cursor)

    def replace_recommendations(self, rows: list[dict], now: datetime) -> None:
        """Today's recommendations replace the previous ones."""
        with connect(self.path) as con:
            migrate(con)
            con.execute("BEGIN TRANSACTION")
            con.execute("DELETE FROM recommendations")
            for row in rows:
                columns = ["generated_at", *row]
                con.execute(
                    f"INSERT INTO recommendations ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [now, *row.values()],
                )
            note_run(con, "recommend", now)
            con.execute("COMMIT")
