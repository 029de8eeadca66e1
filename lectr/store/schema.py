"""The schema's history: an append-only list of small named functions, each a migration applied once
(by lectr/store/migrations.py). A migration that has shipped is never edited: a change to the schema
is a new function at the end of the list.

Written once for both databases (lectr/store/database.py): PostgreSQL reads the type DuckDB calls
DOUBLE as DOUBLE PRECISION (lectr/store/pg_connection.py translates it).
"""

from __future__ import annotations

from typing import Callable

from lectr.store.database import Session


def m001_org_keys(con: Session) -> None:
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


def m002_request_logs(con: Session) -> None:
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


def m003_workers(con: Session) -> None:
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


def m004_dashboard(con: Session) -> None:
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


def m005_overhead(con: Session) -> None:
    # Microseconds spent in Lectr's own hooks on the request (lectr.proxy.addons.timed).
    con.execute("ALTER TABLE request_logs ADD COLUMN lectr_overhead_us DOUBLE")


def m006_price_source(con: Session) -> None:
    # Where a row's price came from: bundled (genai-prices as installed), updated (its data as
    # fetched later: lectr prices update), user (the price file). NULL: no cost. Every earlier
    # price came from the bundled data.
    con.execute("ALTER TABLE request_logs ADD COLUMN price_source VARCHAR")
    con.execute("UPDATE request_logs SET price_source = 'bundled' WHERE cost_usd IS NOT NULL")


def m007_fallbacks(con: Session) -> None:
    # A rule matched but was not applied (route_skip_reason says why: no key, suspended, ...), or
    # its target failed and the original request answered: the fallback_* columns say how.
    con.execute("ALTER TABLE request_logs ADD COLUMN skipped_rule_id VARCHAR")
    con.execute("ALTER TABLE request_logs ADD COLUMN fallback_model VARCHAR")  # the target that failed
    con.execute("ALTER TABLE request_logs ADD COLUMN fallback_status INTEGER")  # NULL: no response
    con.execute("ALTER TABLE request_logs ADD COLUMN fallback_error VARCHAR")
    con.execute("ALTER TABLE request_logs ADD COLUMN fallback_ms DOUBLE")  # the time the failed attempt cost
    # Output tokens spent thinking, where the provider says (included in completion_tokens).
    con.execute("ALTER TABLE request_logs ADD COLUMN reasoning_tokens BIGINT")


def m008_coverage_and_status(con: Session) -> None:
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


def m009_collected_from(con: Session) -> None:
    # Per worker file and table, the highest rowid lectr/store/collect.py has copied into this one.
    # Collecting created it itself before this migration: IF NOT EXISTS keeps what it holds.
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS collected_from (
            source VARCHAR NOT NULL,        -- absolute path of a worker's DuckDB file
            table_name VARCHAR NOT NULL,
            source_created TIMESTAMP,       -- the source's first migration: tells a recreated file apart
            last_rowid BIGINT NOT NULL,     -- rows up to this rowid have been copied
            collected_at TIMESTAMP,
            PRIMARY KEY (source, table_name)
        )
        """
    )


def m010_shadow_calls(con: Session) -> None:
    # One row per request sampled for a shadow experiment (lectr/shadow/runner.py): what became of
    # it, and for a sent one the comparison's score and the candidate's tokens, cost and time, beside
    # the live request's. Never a prompt or an answer. Apart from request_logs, so that shadow spend
    # is visible on its own and no traffic statistic counts it.
    con.execute(
        """
        CREATE TABLE shadow_calls (
            ts TIMESTAMP NOT NULL,          -- UTC, when the outcome was known
            experiment_id VARCHAR NOT NULL,
            request_id VARCHAR NOT NULL,    -- the live request (request_logs.request_id)
            org_id VARCHAR, feature VARCHAR,
            task VARCHAR,                   -- X-Lectr-Task of the live request, as sent
            live_provider VARCHAR, live_model VARCHAR,
            provider VARCHAR, model VARCHAR,  -- the candidate
            outcome VARCHAR NOT NULL,       -- lectr/common/experiments.py OUTCOMES: compared, candidate_error, ...
            detail VARCHAR,                 -- why, for all but compared: a status and error code, never a message
            comparison VARCHAR,             -- label, fields, text or tool_calls (lectr/shadow/compare.py)
            score DOUBLE, agreed BOOLEAN, length_ratio DOUBLE,
            status_code INTEGER, latency_ms DOUBLE, live_latency_ms DOUBLE,
            prompt_tokens BIGINT, completion_tokens BIGINT, cost_usd DOUBLE,
            live_prompt_tokens BIGINT, live_completion_tokens BIGINT, live_cost_usd DOUBLE
        )
        """
    )


def m011_written_batches(con: Session) -> None:
    # The id of every batch the writer stored (lectr/store/logs.py): a batch sent again after a commit
    # that was not confirmed is found here and not stored twice. Kept for two days.
    con.execute("CREATE TABLE written_batches (batch_id VARCHAR PRIMARY KEY, written_at TIMESTAMP NOT NULL)")


def m012_documents(con: Session) -> None:
    # The rules and experiments files kept in the database (lectr/store/documents.py), for proxies on
    # several hosts: the YAML text as a person wrote it, comments and all, and a version a save checks.
    con.execute(
        """
        CREATE TABLE documents (
            name VARCHAR PRIMARY KEY,       -- rules or experiments
            body VARCHAR NOT NULL,          -- the YAML, as in the file it replaces
            version BIGINT NOT NULL,        -- 1, 2, ...: a save names the version it edited
            updated_at TIMESTAMP NOT NULL   -- UTC
        )
        """
    )


def m013_postgres_indexes(con: Session) -> None:
    # PostgreSQL reads a time range (the dashboard's last hours, the aggregator's new buckets) through an
    # index, and one request by its id. DuckDB needs none: its zone maps skip what is out of range, and
    # an index there would slow every batch the writer appends for nothing.
    if con.dialect != "postgresql":
        return
    for table, columns in (
        ("request_logs", "ts"),
        ("request_logs", "request_id"),
        ("dropped_events", "ts"),
        ("shadow_calls", "ts"),
        ("dashboard_summaries", "period, bucket_start"),
        ("dashboard_latency", "period, bucket_start"),
        ("dashboard_drops", "period, bucket_start"),
    ):
        name = f"{table}_{columns.replace(', ', '_')}"
        con.execute(f"CREATE INDEX {name} ON {table} ({columns})")


MIGRATIONS: list[Callable[[Session], None]] = [
    m001_org_keys,
    m002_request_logs,
    m003_workers,
    m004_dashboard,
    m005_overhead,
    m006_price_source,
    m007_fallbacks,
    m008_coverage_and_status,
    m009_collected_from,
    m010_shadow_calls,
    m011_written_batches,
    m012_documents,
    m013_postgres_indexes,
]
