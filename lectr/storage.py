"""Storage: the one module that talks SQL to Lectr's DuckDB file.

Schema changes are an append-only list of small named migrations, each applied once and
recorded in `_migrations`. DuckDB lets one process write a file and, while it holds the
file open for writing, no other process may open it at all; so every caller here opens
the file for the shortest possible time and closes it again, retrying briefly when
another process holds the lock.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import duckdb

from lectr import rulehealth
from lectr.keys import NewKey, StoredKey

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_DB = "lectr.duckdb"


def default_db_path() -> str:
    """`LECTR_DB` from the environment, else `lectr.duckdb` in the working directory."""
    return os.environ.get("LECTR_DB") or DEFAULT_DB


class StorageError(RuntimeError):
    """The database could not be used; the message says what to do."""


# Within one process DuckDB refuses a read-only and a read-write connection to the same
# file at once; the proxy's writer, key reloads and workers take turns here instead.
_process_lock = threading.RLock()


@contextmanager
def connect(path: str | Path, read_only: bool = False, attempts: int = 20) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database briefly. Waits out another process's lock with short jittered retries."""
    path = str(path)
    if read_only and not Path(path).exists():
        raise StorageError(f"no database at {path}: create it with 'lectr keys create ORG --db {path}'")
    existed = read_only or os.path.exists(path)
    with _process_lock:
        for attempt in range(attempts):
            try:
                con = duckdb.connect(path, read_only=read_only)
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or attempt == attempts - 1:
                    raise StorageError(f"cannot open {path}: {e}") from e
                time.sleep(0.01 * (attempt + 1) + random.uniform(0, 0.02))
        if not existed and os.path.isfile(path):
            os.chmod(path, 0o600)  # org data (request log, key hashes): owner-only, whatever the umask
        try:
            yield con
        finally:
            con.close()


# --- migrations: append only; never edit one that has shipped -------------------------


def m001_org_keys(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE org_keys (
            key_id VARCHAR PRIMARY KEY,
            org_id VARCHAR NOT NULL,
            key_hash VARCHAR NOT NULL,   -- sha256 of the key; the key itself is never stored
            created_at TIMESTAMP NOT NULL,  -- UTC
            revoked_at TIMESTAMP  -- UTC
        )
        """
    )


def m002_request_logs(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE request_logs (
            ts TIMESTAMP NOT NULL,          -- UTC, when the response completed
            request_id VARCHAR NOT NULL,
            org_id VARCHAR,                 -- NULL: the request had no valid Lectr key
            mode VARCHAR,                   -- base_url or proxy
            endpoint VARCHAR,               -- /chat/completions, /messages, ...
            provider VARCHAR,               -- where the request went
            provider_unknown BOOLEAN,       -- detection failed; the default provider was used
            model_requested VARCHAR,
            model_actual VARCHAR,
            rule_id VARCHAR,                -- NULL: no rule applied (passthrough)
            rule_name VARCHAR,
            route_skip_reason VARCHAR,      -- a matching rule was not applied, and why
            passthrough_reason VARCHAR,     -- Lectr failed and forwarded the request unchanged
            feature VARCHAR,
            task VARCHAR,                   -- X-Lectr-Task as sent
            task_valid BOOLEAN,             -- one of the five task types; NULL when none was sent
            streaming BOOLEAN,
            status_code INTEGER,
            error_category VARCHAR,         -- NULL on success; see lectr/events.py
            latency_ms DOUBLE,
            ttfb_ms DOUBLE,
            prompt_tokens BIGINT,           -- includes cached input tokens
            completion_tokens BIGINT,
            cached_tokens BIGINT,
            token_source VARCHAR,           -- provider, calibrated, tokeniser; NULL: not counted
            cost_usd DOUBLE,                -- NULL: not counted, or no known price
            price_known BOOLEAN,            -- genai-prices knows this provider and model
            request_bytes BIGINT,
            response_bytes BIGINT
        )
        """
    )
    con.execute("CREATE TABLE dropped_events (ts TIMESTAMP NOT NULL, reason VARCHAR NOT NULL, events BIGINT NOT NULL)")


def m003_workers(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE dashboard_summaries (
            period VARCHAR NOT NULL,        -- hour or day
            bucket_start TIMESTAMP NOT NULL,
            org_id VARCHAR, feature VARCHAR, task VARCHAR, provider VARCHAR, model_actual VARCHAR,
            routed BOOLEAN,                 -- a rule applied
            requests BIGINT, errors BIGINT,
            prompt_tokens BIGINT, completion_tokens BIGINT,
            cost_usd DOUBLE, unpriced_requests BIGINT,
            latency_p50_ms DOUBLE, latency_p95_ms DOUBLE, ttfb_p50_ms DOUBLE, ttfb_p95_ms DOUBLE
        )
        """
    )
    con.execute("CREATE TABLE dashboard_drops (period VARCHAR, bucket_start TIMESTAMP, reason VARCHAR, events BIGINT)")
    con.execute("CREATE TABLE worker_runs (worker VARCHAR PRIMARY KEY, last_run TIMESTAMP)")
    con.execute(
        """
        CREATE TABLE anomalies (
            anomaly_id VARCHAR PRIMARY KEY,
            org_id VARCHAR NOT NULL,
            feature VARCHAR,                -- NULL: the whole org
            metric VARCHAR NOT NULL,        -- cost_usd, requests, error_rate, latency_p95_ms, tokens
            window_start TIMESTAMP, window_end TIMESTAMP,
            observed DOUBLE, expected DOUBLE, score DOUBLE,
            severity VARCHAR,               -- warning or critical
            status VARCHAR,                 -- open or resolved
            first_seen TIMESTAMP, last_seen TIMESTAMP, resolved_at TIMESTAMP,
            notified_at TIMESTAMP, notify_error VARCHAR
        )
        """
    )
    con.execute(
        """
        CREATE TABLE recommendations (
            generated_at TIMESTAMP NOT NULL,
            org_id VARCHAR NOT NULL, feature VARCHAR, provider VARCHAR,
            current_model VARCHAR NOT NULL, suggested_model VARCHAR NOT NULL,
            confidence VARCHAR NOT NULL,    -- high, medium, low
            reason VARCHAR,
            requests BIGINT,
            current_monthly_usd DOUBLE, suggested_monthly_usd DOUBLE, monthly_saving_usd DOUBLE,
            evidence VARCHAR,               -- JSON: request count, token profile, cost, task mix
            rule_yaml VARCHAR               -- the routing rule that would apply it
        )
        """
    )


def m004_dashboard(con: duckdb.DuckDBPyConnection) -> None:
    # Routing coverage per rule, and exact per-org latency percentiles (percentiles of
    # the finer summary rows cannot be combined). The next aggregation rebuilds everything.
    con.execute("ALTER TABLE dashboard_summaries ADD COLUMN rule_id VARCHAR")
    con.execute("ALTER TABLE dashboard_summaries ADD COLUMN rule_name VARCHAR")
    con.execute(
        """
        CREATE TABLE dashboard_latency (
            period VARCHAR NOT NULL, bucket_start TIMESTAMP NOT NULL, org_id VARCHAR,
            requests BIGINT,
            latency_p50_ms DOUBLE, latency_p95_ms DOUBLE, ttfb_p50_ms DOUBLE, ttfb_p95_ms DOUBLE
        )
        """
    )
    con.execute("DELETE FROM worker_runs WHERE worker = 'aggregate'")


def m005_overhead(con: duckdb.DuckDBPyConnection) -> None:
    # Microseconds spent in Lectr's own hooks on the request (lectr.addons.timed).
    con.execute("ALTER TABLE request_logs ADD COLUMN lectr_overhead_us DOUBLE")


def m006_price_source(con: duckdb.DuckDBPyConnection) -> None:
    # Where a row's price came from: bundled (genai-prices as installed), updated (its data as
    # fetched later: lectr prices update), user (the price file). NULL: no cost. Every earlier
    # price came from the bundled data.
    con.execute("ALTER TABLE request_logs ADD COLUMN price_source VARCHAR")
    con.execute("UPDATE request_logs SET price_source = 'bundled' WHERE cost_usd IS NOT NULL")


def m007_fallbacks(con: duckdb.DuckDBPyConnection) -> None:
    # A rule matched but was not applied (route_skip_reason says why: no key, suspended, ...), or
    # its target failed and the original request answered: the fallback_* columns say how.
    con.execute("ALTER TABLE request_logs ADD COLUMN skipped_rule_id VARCHAR")
    con.execute("ALTER TABLE request_logs ADD COLUMN fallback_model VARCHAR")  # the target that failed
    con.execute("ALTER TABLE request_logs ADD COLUMN fallback_status INTEGER")  # NULL: no response
    con.execute("ALTER TABLE request_logs ADD COLUMN fallback_error VARCHAR")
    con.execute("ALTER TABLE request_logs ADD COLUMN fallback_ms DOUBLE")  # the time the failed attempt cost
    # Output tokens spent thinking, where the provider says (included in completion_tokens).
    con.execute("ALTER TABLE request_logs ADD COLUMN reasoning_tokens BIGINT")


MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [
    m001_org_keys,
    m002_request_logs,
    m003_workers,
    m004_dashboard,
    m005_overhead,
    m006_price_source,
    m007_fallbacks,
]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations this database has not seen; return their names."""
    con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    done = {row[0] for row in con.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for migration in MIGRATIONS:
        if migration.__name__ in done:
            continue
        con.execute("BEGIN TRANSACTION")
        migration(con)
        con.execute("INSERT INTO _migrations VALUES (?, ?)", [migration.__name__, utc_now()])
        con.execute("COMMIT")
        applied.append(migration.__name__)
    return applied


# --- org keys -------------------------------------------------------------------------


def keys_stamp(path: str | Path) -> Path:
    """Touched whenever a key is created or revoked: a running proxy rereads its keys when
    this file changes, not at every write of the event log to the same database."""
    return Path(f"{path}.keys")


def insert_key(path: str | Path, org_id: str, new_key: NewKey) -> None:
    with connect(path) as con:
        migrate(con)
        con.execute(
            "INSERT INTO org_keys (key_id, org_id, key_hash, created_at) VALUES (?, ?, ?, ?)",
            [new_key.key_id, org_id, new_key.key_hash, utc_now()],
        )
    keys_stamp(path).touch()


def revoke_key(path: str | Path, key_id: str) -> bool:
    with connect(path) as con:
        migrate(con)
        found = con.execute(
            "UPDATE org_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL RETURNING key_id",
            [utc_now(), key_id],
        ).fetchall()
    keys_stamp(path).touch()
    return bool(found)


def list_keys(path: str | Path) -> list[tuple[str, str, datetime, datetime | None]]:
    """(key_id, org_id, created_at, revoked_at) for every key, oldest first."""
    with connect(path, read_only=True) as con:
        if not _has_table(con, "org_keys"):
            return []
        return con.execute("SELECT key_id, org_id, created_at, revoked_at FROM org_keys ORDER BY created_at").fetchall()


def active_keys(path: str | Path) -> list[StoredKey]:
    with connect(path, read_only=True, attempts=5) as con:
        if not _has_table(con, "org_keys"):
            return []
        rows = con.execute("SELECT key_id, org_id, key_hash FROM org_keys WHERE revoked_at IS NULL").fetchall()
    return [StoredKey(*row) for row in rows]


def has_keys(path: str | Path) -> bool:
    """Whether the key store holds any key at all, revoked ones included."""
    with connect(path, read_only=True, attempts=5) as con:
        return _has_table(con, "org_keys") and con.execute("SELECT count(*) FROM org_keys").fetchone()[0] > 0


# --- request logs ---------------------------------------------------------------------


@functools.cache
def _log_types() -> dict:
    """Arrow types of the request_logs columns that are not strings (pyarrow loaded on first write)."""
    import pyarrow as pa

    return {
        "ts": pa.timestamp("us"),
        "status_code": pa.int32(),
        "latency_ms": pa.float64(),
        "ttfb_ms": pa.float64(),
        "cost_usd": pa.float64(),
        "lectr_overhead_us": pa.float64(),
        "fallback_ms": pa.float64(),
        "fallback_status": pa.int32(),
        **{c: pa.int64() for c in ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")},
        **{c: pa.int64() for c in ("request_bytes", "response_bytes")},
        **{c: pa.bool_() for c in ("provider_unknown", "task_valid", "streaming", "price_known")},
    }


def append_request_logs(path: str | Path, rows: list[dict], dropped: dict[str, int] | None = None) -> None:
    """Write a batch of rows (dicts keyed by column name) and any drop counts, in one short open.

    Also notes the write in `worker_runs` ('writer'): an empty batch is the proxy's heartbeat.
    Columnar: the batch goes in as one Arrow table, ~100x faster than row-by-row inserts.
    """
    committed = False
    try:
        with connect(path) as con:
            _append(con, rows, dropped)
            committed = True
    except Exception:
        if not committed:
            raise
        # The batch is in; only closing the file (its checkpoint) failed. The next open replays
        # the log. Raising would have the writer retry the batch and store it twice.
        log.warning("wrote %d rows to %s, but closing it failed", len(rows), path, exc_info=True)


def _append(con: duckdb.DuckDBPyConnection, rows: list[dict], dropped: dict[str, int] | None) -> None:
    migrate(con)
    con.execute("BEGIN TRANSACTION")
    if rows:
        columns = {name: [row[name] for row in rows] for name in rows[0]}
        import pyarrow as pa  # only the writer process needs it: the proxy stays smaller

        types = _log_types()
        batch = pa.table({n: pa.array(v, type=types.get(n, pa.string())) for n, v in columns.items()})
        con.register("batch", batch)
        con.execute("INSERT INTO request_logs BY NAME SELECT * FROM batch")
        con.unregister("batch")
    now = utc_now()
    for reason, count in (dropped or {}).items():
        if count:
            con.execute("INSERT INTO dropped_events VALUES (?, ?, ?)", [now, reason, count])
    _note_run(con, "writer", now)
    con.execute("COMMIT")


def replay_history(path: str | Path, since: datetime, until: datetime, days: int, seed: int = 0) -> int:
    """Demo data only: copy the rows logged in [since, until) back into each of the `days` * 24 hours before.

    Each hour gets 70-100% of them (chosen by hash, so a seed gives the same history) with
    new request ids, so the anomaly detector and the recommendation engine have the
    history they need. Returns rows written.
    """
    with connect(path) as con:
        migrate(con)
        con.execute("BEGIN TRANSACTION")
        written = con.execute(
            """
            INSERT INTO request_logs BY NAME
            SELECT r.* REPLACE (r.ts - to_hours(h.k) AS ts, r.request_id || '-h' || h.k AS request_id)
            FROM request_logs r,
                 (SELECT range AS k, 700 + hash(range, $seed) % 301 AS keep FROM range(1, $hours + 1)) h
            WHERE r.ts >= $since AND r.ts < $until AND hash(r.request_id, h.k, $seed) % 1000 < h.keep
            """,
            {"seed": seed, "hours": days * 24, "since": since, "until": until},
        ).fetchone()[0]
        con.execute("COMMIT")
    return written


# --- aggregator -------------------------------------------------------------------------


def aggregate(path: str | Path, now: datetime | None = None, full: bool = False) -> int:
    """Recompute dashboard summaries for every bucket that may have changed since the last run.

    Events arrive within seconds of completing, so the buckets from an hour before the
    last run onwards are recomputed (all of them on the first run, or with `full`).
    Returns rows written.
    """
    now = now or utc_now()
    with connect(path) as con:
        migrate(con)
        last = None if full else _last_run(con, "aggregate")
        con.execute("BEGIN TRANSACTION")
        written = 0
        for period in ("hour", "day"):
            since = _bucket_floor(con, period, last - timedelta(hours=1)) if last else datetime(1970, 1, 1)
            con.execute("DELETE FROM dashboard_summaries WHERE period = ? AND bucket_start >= ?", [period, since])
            con.execute("DELETE FROM dashboard_drops WHERE period = ? AND bucket_start >= ?", [period, since])
            con.execute("DELETE FROM dashboard_latency WHERE period = ? AND bucket_start >= ?", [period, since])
            written += con.execute(
                f"""
                INSERT INTO dashboard_summaries BY NAME
                SELECT '{period}' AS period, date_trunc('{period}', ts) AS bucket_start,
                       org_id, feature, task, provider, model_actual, rule_id, rule_name,
                       rule_id IS NOT NULL AS routed,
                       count(*) AS requests, count(error_category) AS errors,
                       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
                       sum(cost_usd) AS cost_usd, count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_requests,
                       {_PERCENTILES}
                FROM request_logs WHERE ts >= ?
                GROUP BY ALL
                """,
                [since],
            ).fetchone()[0]
            con.execute(
                f"""
                INSERT INTO dashboard_latency BY NAME
                SELECT '{period}' AS period, date_trunc('{period}', ts) AS bucket_start, org_id,
                       count(*) AS requests, {_PERCENTILES}
                FROM request_logs WHERE ts >= ?
                GROUP BY ALL
                """,
                [since],
            )
            con.execute(
                f"""
                INSERT INTO dashboard_drops
                SELECT '{period}', date_trunc('{period}', ts), reason, sum(events)
                FROM dropped_events WHERE ts >= ? GROUP BY ALL
                """,
                [since],
            )
        _note_run(con, "aggregate", now)
        con.execute("COMMIT")
    return written


_PERCENTILES = """quantile_cont(latency_ms, 0.5) AS latency_p50_ms, quantile_cont(latency_ms, 0.95) AS latency_p95_ms,
                       quantile_cont(ttfb_ms, 0.5) AS ttfb_p50_ms, quantile_cont(ttfb_ms, 0.95) AS ttfb_p95_ms"""


def _bucket_floor(con: duckdb.DuckDBPyConnection, period: str, ts: datetime) -> datetime:
    return con.execute(f"SELECT date_trunc('{period}', ?::TIMESTAMP)", [ts]).fetchone()[0]


def _last_run(con: duckdb.DuckDBPyConnection, worker: str) -> datetime | None:
    row = con.execute("SELECT last_run FROM worker_runs WHERE worker = ?", [worker]).fetchone()
    return row[0] if row else None


def _note_run(con: duckdb.DuckDBPyConnection, worker: str, now: datetime) -> None:
    con.execute("INSERT OR REPLACE INTO worker_runs VALUES (?, ?)", [worker, now])


# --- anomaly detector ------------------------------------------------------------------

ANOMALY_METRICS = ("cost_usd", "requests", "error_rate", "latency_p95_ms", "tokens")


def hourly_metrics(path: str | Path, now: datetime, days: int = 7) -> list[dict]:
    """Per org (feature NULL) and per org and feature: one row per hour-long window back from `now`.

    `hours_ago` 0 is the current window (the last 60 minutes); 1..24*days the baseline.
    Hours without traffic have no row.
    """
    start = now - timedelta(days=days, hours=1)
    with connect(path, read_only=True) as con:
        if not _has_table(con, "request_logs"):
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
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def open_anomalies(path: str | Path) -> list[dict]:
    with connect(path, read_only=True) as con:
        if not _has_table(con, "anomalies"):
            return []
        cursor = con.execute("SELECT * FROM anomalies WHERE status = 'open'")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def save_anomalies(path: str | Path, upserts: list[dict], resolved: list[str], now: datetime) -> None:
    """Insert or update anomalies (dicts keyed by column) and mark others resolved."""
    with connect(path) as con:
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
        _note_run(con, "anomalies", now)
        con.execute("COMMIT")


# --- recommendations ---------------------------------------------------------------------


def traffic_profiles(path: str | Path, since: datetime) -> list[dict]:
    """Per org, feature, provider and model actually used: volume, token profile, cost, task mix."""
    with connect(path, read_only=True) as con:
        if not _has_table(con, "request_logs"):
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
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def replace_recommendations(path: str | Path, rows: list[dict], now: datetime) -> None:
    """Today's recommendations replace the previous ones."""
    with connect(path) as con:
        migrate(con)
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM recommendations")
        for row in rows:
            columns = ["generated_at", *row]
            con.execute(
                f"INSERT INTO recommendations ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [now, *row.values()],
            )
        _note_run(con, "recommend", now)
        con.execute("COMMIT")


# --- dashboard reads ---------------------------------------------------------------------
# Each opens the file read-only for one query (the proxy's writer must never wait long)
# and returns a pandas DataFrame; pandas comes with Streamlit, and only the dashboard reads these.

NONE = "(none)"  # a filter value meaning "not set" (untagged feature, no task, no rule)
LOG_FILTERS = ("feature", "task", "provider", "model", "rule", "endpoint", "outcome")


def schema_state(path: str | Path) -> str:
    """missing (no file), empty (no Lectr tables yet), old, newer (than this code), or ok."""
    if not Path(path).exists():
        return "missing"
    with connect(path, read_only=True) as con:
        if not _has_table(con, "_migrations"):
            return "empty"
        done = {row[0] for row in con.execute("SELECT name FROM _migrations").fetchall()}
    known = {m.__name__ for m in MIGRATIONS}
    if done - known:
        return "newer"
    return "ok" if done == known else "old"


def dashboard_orgs(path: str | Path) -> list[str]:
    """Orgs with a key or with summarised traffic, alphabetically."""
    sql = """SELECT org_id FROM org_keys UNION SELECT org_id FROM dashboard_summaries WHERE org_id IS NOT NULL
             ORDER BY org_id"""
    return _frame(path, sql)["org_id"].tolist()


def worker_runs(path: str | Path) -> dict[str, datetime]:
    """When the writer (heartbeat) and each background job last ran."""
    frame = _frame(path, "SELECT worker, last_run FROM worker_runs")
    return dict(zip(frame["worker"], frame["last_run"]))


def overview_series(path: str | Path, org: str, since: datetime, period: str) -> "pd.DataFrame":
    """One row per bucket: volume, errors, tokens and cost from the summaries, and the org's percentiles."""
    return _frame(
        path,
        """
        WITH totals AS (
            SELECT bucket_start, sum(requests) AS requests, sum(errors) AS errors,
                   coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
                   coalesce(sum(completion_tokens), 0) AS completion_tokens,
                   coalesce(sum(cost_usd), 0) AS cost_usd, sum(unpriced_requests) AS unpriced_requests,
                   sum(requests) FILTER (WHERE routed) AS routed_requests
            FROM dashboard_summaries WHERE period = $period AND org_id = $org AND bucket_start >= $since
            GROUP BY bucket_start
        )
        SELECT t.*, l.latency_p50_ms, l.latency_p95_ms, l.ttfb_p50_ms, l.ttfb_p95_ms
        FROM totals t LEFT JOIN dashboard_latency l
          ON l.period = $period AND l.org_id = $org AND l.bucket_start = t.bucket_start
        ORDER BY t.bucket_start
        """,
        {"period": _period(period), "org": org, "since": since},
    )


def overview_breakdown(path: str | Path, org: str, since: datetime, period: str) -> "pd.DataFrame":
    """Requests, tokens and cost by feature, task, provider, model and rule over the period."""
    return _frame(
        path,
        """
        SELECT feature, task, provider, model_actual, rule_id, rule_name, routed,
               sum(requests) AS requests, sum(errors) AS errors,
               coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) AS tokens,
               coalesce(sum(cost_usd), 0) AS cost_usd
        FROM dashboard_summaries WHERE period = ? AND org_id = ? AND bucket_start >= ?
        GROUP BY ALL
        """,
        [_period(period), org, since],
    )


# Reasons in dropped_events whose rows were stored all the same, without a cost or without
# tokens (lectr/metering.py): counted there so they can be found, but not lost events.
STORED_DEGRADED = ("pricing_error", "counting_error")


def dropped_since(path: str | Path, since: datetime) -> int:
    """Events dropped (queue full, database unavailable) since then, across all orgs."""
    frame = _frame(
        path,
        "SELECT coalesce(sum(events), 0) AS n FROM dropped_events WHERE ts >= ? AND NOT list_contains(?, reason)",
        [since, list(STORED_DEGRADED)],
    )
    return int(frame["n"].iloc[0])


def _log_where(org: str, since: datetime, until: datetime | None, filters: dict[str, str]) -> tuple[str, list]:
    clauses, params = ["org_id = ?", "ts >= ?"], [org, since]
    if until is not None:
        clauses.append("ts < ?")
        params.append(until)
    columns = {"rule": "rule_name", **{name: name for name in ("feature", "task", "provider", "endpoint")}}
    for name, value in filters.items():
        if name not in LOG_FILTERS:
            raise ValueError(f"unknown request-log filter {name!r}; use one of {', '.join(LOG_FILTERS)}")
        if value is None:
            continue
        if name == "model":
            clauses.append("(model_actual = ? OR model_requested = ?)")
            params += [value, value]
        elif name == "outcome":
            if value == "ok":
                clauses.append("error_category IS NULL")
            elif value == "error":
                clauses.append("error_category IS NOT NULL")
            else:
                clauses.append("error_category = ?")
                params.append(value)
        elif value == NONE:
            clauses.append(f"{columns[name]} IS NULL")
        else:
            clauses.append(f"{columns[name]} = ?")
            params.append(value)
    return " AND ".join(clauses), params


def request_log(
    path: str | Path,
    org: str,
    since: datetime,
    until: datetime | None = None,
    filters: dict[str, str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple["pd.DataFrame", int]:
    """One page of the request log, newest first, and the number of rows matching the filters."""
    where, params = _log_where(org, since, until, filters or {})
    with connect(path, read_only=True) as con:
        total = con.execute(f"SELECT count(*) FROM request_logs WHERE {where}", params).fetchone()[0]
        page = con.execute(
            f"""
            SELECT ts, feature, task, endpoint, provider, model_requested, model_actual,
                   model_actual IS DISTINCT FROM model_requested AS substituted, rule_name,
                   skipped_rule_id, route_skip_reason,
                   fallback_model, fallback_status, fallback_error, fallback_ms,
                   status_code, error_category, streaming,
                   prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, token_source,
                   cost_usd, price_source, latency_ms, ttfb_ms, request_id
            FROM request_logs WHERE {where}
            ORDER BY ts DESC, request_id LIMIT ? OFFSET ?
            """,
            [*params, limit, offset],
        ).df()
    return page, total


def request_log_choices(path: str | Path, org: str, since: datetime) -> dict[str, list[str]]:
    """The values each request-log filter can take for this org: from the summaries, so it stays
    cheap, except the endpoints (the summaries have none), from the request log's one column."""
    with connect(path, read_only=True) as con:
        frame = con.execute(
            """
            SELECT DISTINCT feature, task, provider, model_actual, rule_name FROM dashboard_summaries
            WHERE period = 'day' AND org_id = ? AND bucket_start >= date_trunc('day', ?::TIMESTAMP)
            """,
            [org, since],
        ).df()
        endpoints = con.execute(
            "SELECT DISTINCT endpoint FROM request_logs WHERE org_id = ? AND ts >= date_trunc('day', ?::TIMESTAMP)",
            [org, since],
        ).df()
    columns = {"feature": "feature", "task": "task", "provider": "provider", "model": "model_actual"}
    columns["rule"] = "rule_name"
    found = {name: frame[column] for name, column in columns.items()}
    found["endpoint"] = endpoints["endpoint"]
    return {
        name: sorted(values.dropna().unique()) + ([NONE] if values.isna().any() and name != "model" else [])
        for name, values in found.items()
    }


def rule_match_counts(path: str | Path, since: datetime) -> dict[str, int]:
    """Requests each rule was applied to since then, all orgs, by rule id."""
    frame = _frame(
        path,
        """
        SELECT rule_id, sum(requests) AS requests FROM dashboard_summaries
        WHERE period = 'hour' AND routed AND bucket_start >= date_trunc('hour', ?::TIMESTAMP) GROUP BY rule_id
        """,
        [since],
    )
    return {rule_id: int(n) for rule_id, n in zip(frame["rule_id"], frame["requests"])}


def rule_health(path: str | Path, since: datetime, recent: datetime) -> "pd.DataFrame":
    """Per rule in the request log since `since` (applied, fallen back from, or skipped), all orgs:

    - state, by its most recent row: `suspended` (skipped because the rule is suspended, lectr.rulehealth),
      `failing` (its target failed and the original request answered), else `ok`;
    - fallbacks and other skips since `recent`, and the last fallback: when, to which model, the error.
    The request log itself, not the summaries: those know neither fallbacks nor skips.
    """
    return _frame(
        path,
        """
        WITH rows AS (
            SELECT ts, coalesce(rule_id, skipped_rule_id) AS rule_id, fallback_model IS NOT NULL AS fell_back,
                   starts_with(route_skip_reason, $suspended) AS suspended,
                   skipped_rule_id IS NOT NULL AND fallback_model IS NULL AS skipped,
                   route_skip_reason, fallback_model, fallback_status, fallback_error
            FROM request_logs
            WHERE ts >= $since AND (rule_id IS NOT NULL OR skipped_rule_id IS NOT NULL)
        )
        SELECT rule_id,
               arg_max(CASE WHEN suspended THEN 'suspended' WHEN fell_back THEN 'failing' ELSE 'ok' END, ts) AS state,
               count(*) FILTER (WHERE fell_back AND ts >= $recent) AS fallbacks,
               count(*) FILTER (WHERE skipped AND ts >= $recent) AS skipped,
               max(ts) FILTER (WHERE fell_back) AS last_fallback_at,
               arg_max(fallback_model, ts) FILTER (WHERE fell_back) AS last_fallback_model,
               arg_max_null(fallback_status, ts) FILTER (WHERE fell_back) AS last_fallback_status,
               arg_max_null(fallback_error, ts) FILTER (WHERE fell_back) AS last_fallback_error,
               arg_max(route_skip_reason, ts) FILTER (WHERE skipped) AS last_skip_reason
        FROM rows GROUP BY rule_id ORDER BY rule_id
        """,
        {"since": since, "recent": recent, "suspended": rulehealth.SUSPENDED},
    )


def org_recommendations(path: str | Path, org: str) -> "pd.DataFrame":
    return _frame(
        path,
        """
        SELECT * FROM recommendations WHERE org_id = ?
        ORDER BY CASE confidence WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, monthly_saving_usd DESC
        """,
        [org],
    )


def org_anomalies(path: str | Path, org: str, limit: int = 200) -> "pd.DataFrame":
    return _frame(
        path,
        "SELECT * FROM anomalies WHERE org_id = ? ORDER BY status = 'open' DESC, last_seen DESC LIMIT ?",
        [org, limit],
    )


def _frame(path: str | Path, sql: str, params: list | dict | None = None) -> "pd.DataFrame":
    with connect(path, read_only=True) as con:
        return con.execute(sql, params or []).df()


def _period(period: str) -> str:
    if period not in ("hour", "day"):
        raise ValueError(f"period must be 'hour' or 'day', not {period!r}")
    return period


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [name]).fetchall())


def utc_now() -> datetime:
    """UTC, without tzinfo: DuckDB's TIMESTAMPTZ would need pytz to read back."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
