"""The background jobs' tables: the anomaly detector's and the recommendation engine's
inputs and findings, and `worker_runs`, when each job last ran.

The writer notes its heartbeat in `worker_runs` too ('writer'), and the aggregator its last
run ('aggregate'), from which the dashboard tells where the stored summaries end.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from lectr.store.database import Database, Session, counts_by

# Per hour-long window back from $now: 0 is the last 60 minutes.
_HOURS_AGO = "CAST(floor(extract(epoch FROM ($now::TIMESTAMP - ts)) / 3600) AS INTEGER)"
P95_LATENCY = "percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)"


def last_run(s: Session, worker: str) -> datetime | None:
    found = s.rows("SELECT last_run FROM worker_runs WHERE worker = $worker", {"worker": worker})
    return found[0][0] if found else None


def note_run(s: Session, worker: str, now: datetime) -> None:
    s.execute(
        "INSERT INTO worker_runs (worker, last_run) VALUES ($worker, $now) "
        "ON CONFLICT (worker) DO UPDATE SET last_run = excluded.last_run",
        {"worker": worker, "now": now},
    )


def upsert(s: Session, table: str, key: str, row: dict) -> None:
    """Insert `row`, or replace the columns of the row with the same `key`."""
    columns = list(row)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    s.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('$' + c for c in columns)}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}",
        row,
    )


class JobTables:
    """Reads and writes for the background jobs (a part of DuckStore and PgStore)."""

    db: Database

    # --- anomaly detector ---

    def hourly_metrics(self, now: datetime, days: int = 7) -> list[dict]:
        """Per org (feature NULL) and per org and feature: one row per hour-long window back from `now`.

        `hours_ago` 0 is the current window (the last 60 minutes); 1..24*days the baseline.
        Hours without traffic have no row.
        """
        with self.db.read() as s:
            if not s.has_table("request_logs"):
                return []
            return s.dicts(
                f"""
                SELECT org_id, feature, grouping(feature) = 1 AS whole_org, hours_ago,
                       count(*) AS requests,
                       count(error_category)::DOUBLE / count(*) AS error_rate,
                       coalesce(sum(cost_usd), 0) AS cost_usd,
                       coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) AS tokens,
                       {P95_LATENCY} AS latency_p95_ms
                FROM (
                    SELECT *, {_HOURS_AGO} AS hours_ago FROM request_logs
                    WHERE ts > $start AND ts <= $now AND org_id IS NOT NULL
                ) AS hourly
                GROUP BY GROUPING SETS ((org_id, hours_ago), (org_id, feature, hours_ago))
                HAVING grouping(feature) = 1 OR feature IS NOT NULL
                """,
                {"now": now, "start": now - timedelta(days=days, hours=1)},
            )

    def open_anomalies(self) -> list[dict]:
        with self.db.read() as s:
            if not s.has_table("anomalies"):
                return []
            return s.dicts("SELECT * FROM anomalies WHERE status = 'open'")

    def save_anomalies(self, upserts: list[dict], resolved: list[str], now: datetime) -> None:
        """Insert or update anomalies (dicts keyed by column) and mark others resolved."""
        with self.db.write() as s:
            for row in upserts:
                upsert(s, "anomalies", "anomaly_id", row)
            for anomaly_id in resolved:
                s.execute(
                    "UPDATE anomalies SET status = 'resolved', resolved_at = $now WHERE anomaly_id = $id",
                    {"now": now, "id": anomaly_id},
                )
            note_run(s, "anomalies", now)

    # --- recommendations ---

    def traffic_profiles(self, since: datetime) -> list[dict]:
        """Per org, feature, provider and model actually used: volume, token profile, cost, task mix."""
        where = "ts >= $since AND org_id IS NOT NULL AND model_actual IS NOT NULL AND prompt_tokens IS NOT NULL"
        with self.db.read() as s:
            if not s.has_table("request_logs"):
                return []
            profiles = s.dicts(
                f"""
                SELECT org_id, feature, provider, model_actual,
                       count(*) AS requests,
                       count(error_category) AS errors,
                       avg(prompt_tokens) AS avg_prompt_tokens,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY prompt_tokens) AS p95_prompt_tokens,
                       avg(completion_tokens) AS avg_completion_tokens,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY completion_tokens) AS p95_completion_tokens,
                       avg(cached_tokens) AS avg_cached_tokens,
                       sum(cost_usd) AS cost_usd,
                       extract(epoch FROM (max(ts) - min(ts))) / 86400 AS days_observed
                FROM request_logs WHERE {where}
                GROUP BY 1, 2, 3, 4
                """,
                {"since": since},
            )
            tasks = s.rows(
                f"""SELECT org_id, feature, provider, model_actual, lower(task), count(*) FROM request_logs
                    WHERE {where} AND task IS NOT NULL GROUP BY 1, 2, 3, 4, 5""",
                {"since": since},
            )
        mixes = counts_by(tasks)
        for p in profiles:
            p["task_mix"] = mixes.get((p["org_id"], p["feature"], p["provider"], p["model_actual"]), {})
        return profiles

    def replace_recommendations(self, rows: list[dict], now: datetime) -> None:
        """Today's recommendations replace the previous ones."""
        with self.db.write() as s:
            s.execute("DELETE FROM recommendations")
            for row in rows:
                values = {"generated_at": now, **row}
                s.execute(
                    f"INSERT INTO recommendations ({', '.join(values)}) VALUES ({', '.join('$' + c for c in values)})",
                    values,
                )
            note_run(s, "recommend", now)
