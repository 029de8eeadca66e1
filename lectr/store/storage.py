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
from typing import Callable, Iterator

import duckdb

from lectr.common.errors import LectrError
from lectr.common.keys import NewKey, StoredKey

log = logging.getLogger(__name__)

DEFAULT_DB = "lectr.duckdb"


def default_db_path() -> str:
    """`LECTR_DB` from the environment, else `lectr.duckdb` in the working directory."""
    return os.environ.get("LECTR_DB") or DEFAULT_DB


class StorageError(LectrError, RuntimeError):
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
            error_category VARCHAR,         -- NULL on success; see lectr/common/events.py
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
    # Microseconds spent in Lectr's own hooks on the request (lectr.proxy.addons.timed).
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


def m008_coverage_and_status(con: duckdb.DuckDBPyConnection) -> None:
    # A rule that changed the model or the provider, and whose target answered. Routing coverage
    # counts these, not a rule whose target is the request as sent (it routes nothing). Earlier
    # rows did not record a provider switch: their model tells.
    con.execute("ALTER TABLE request_logs ADD COLUMN routed BOOLEAN")
    con.execute(
        "UPDATE request_logs SET routed = rule_id IS NOT NULL AND model_actual IS DISTINCT FROM model_requested"
    )
    # The Overview's status breakdown; and latency percentiles over all orgs together (org_id is
    # NULL both there and for the traffic no valid key let in, so a flag tells them apart).
    con.execute("ALTER TABLE dashboard_summaries ADD COLUMN status_code INTEGER")
    con.execute("ALTER TABLE dashboard_latency ADD COLUMN all_orgs BOOLEAN DEFAULT false")
    con.execute("DELETE FROM worker_runs WHERE worker = 'aggregate'")  # the next aggregation rebuilds them


MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [
    m001_org_keys,
    m002_request_logs,
    m003_workers,
    m004_dashboard,
    m005_overhead,
    m006_price_source,
    m007_fallbacks,
    m008_coverage_and_status,
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
        **{c: pa.bool_() for c in ("provider_unknown", "task_valid", "streaming", "price_known", "routed")},
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
            since = bucket_floor(con, period, last - timedelta(hours=1)) if last else datetime(1970, 1, 1)
            con.execute("DELETE FROM dashboard_summaries WHERE period = ? AND bucket_start >= ?", [period, since])
            con.execute("DELETE FROM dashboard_drops WHERE period = ? AND bucket_start >= ?", [period, since])
            con.execute("DELETE FROM dashboard_latency WHERE period = ? AND bucket_start >= ?", [period, since])
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
        _note_run(con, "aggregate", now)
        con.execute("COMMIT")
    return written


PERCENTILES = """quantile_cont(latency_ms, 0.5) AS latency_p50_ms, quantile_cont(latency_ms, 0.95) AS latency_p95_ms,
                 quantile_cont(ttfb_ms, 0.5) AS ttfb_p50_ms, quantile_cont(ttfb_ms, 0.95) AS ttfb_p95_ms"""


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


def latency_select(period: str) -> str:
    """Exact latency percentiles per org, and over all orgs together (all_orgs, org_id NULL), from `$since`
    on: percentiles of finer rows cannot be combined. All orgs are the requests Lectr let in: a refused
    one takes no time, and a flood of them must not pull the percentiles down."""
    return f"""
        SELECT '{period}' AS period, date_trunc('{period}', ts) AS bucket_start, org_id, false AS all_orgs,
               count(*) AS requests, {PERCENTILES}
        FROM request_logs WHERE ts >= $since GROUP BY ALL
        UNION ALL
        SELECT '{period}', date_trunc('{period}', ts), NULL, true, count(*), {PERCENTILES}
        FROM request_logs WHERE ts >= $since AND org_id IS NOT NULL GROUP BY ALL
    """


def summarised_until(con: duckdb.DuckDBPyConnection, period: str) -> datetime:
    """The start of the first bucket the summaries may not hold in full: the last aggregation's
    bucket, less a margin for events written a little after it."""
    last = _last_run(con, "aggregate")
    return bucket_floor(con, period, last - SUMMARY_MARGIN) if last else datetime(1970, 1, 1)


SUMMARY_MARGIN = timedelta(minutes=5)  # events reach the database within seconds; this is ample


def bucket_floor(con: duckdb.DuckDBPyConnection, period: str, ts: datetime) -> datetime:
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


# Reasons in dropped_events whose rows were stored all the same, without a cost or without
# tokens (lectr/record/metering.py): counted there so they can be found, but not lost events.
STORED_DEGRADED = ("pricing_error", "counting_error")


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


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [name]).fetchall())


def utc_now() -> datetime:
    """UTC, without tzinfo: DuckDB's TIMESTAMPTZ would need pytz to read back."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
