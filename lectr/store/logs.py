"""The request log: the writer's batches of rows, the events it had to drop, and the shadow calls.

`request_logs`, `dropped_events` and `shadow_calls` are append-only (lectr/store/collect.py
relies on it). A batch goes in as one Arrow table per table, in one short open of the file.
"""

from __future__ import annotations

import functools
import logging

import duckdb

from lectr.store.connection import connect, utc_now
from lectr.store.jobs import note_run
from lectr.store.migrations import migrate

log = logging.getLogger(__name__)

# Reasons in dropped_events whose rows were stored all the same, without a cost or without
# tokens (lectr/record/metering.py): counted there so they can be found, but not lost events.
STORED_DEGRADED = ("pricing_error", "counting_error")


@functools.cache
def _column_types(table: str) -> dict:
    """Arrow types of a table's columns that are not strings (pyarrow loaded on first write)."""
    import pyarrow as pa

    shared = {
        "ts": pa.timestamp("us"),
        "status_code": pa.int32(),
        "latency_ms": pa.float64(),
        "cost_usd": pa.float64(),
        **{c: pa.int64() for c in ("prompt_tokens", "completion_tokens")},
    }
    if table == "shadow_calls":
        return shared | {
            **{c: pa.float64() for c in ("score", "length_ratio", "live_latency_ms", "live_cost_usd")},
            **{c: pa.int64() for c in ("live_prompt_tokens", "live_completion_tokens")},
            "agreed": pa.bool_(),
        }
    return shared | {
        "ttfb_ms": pa.float64(),
        "lectr_overhead_us": pa.float64(),
        "fallback_ms": pa.float64(),
        "fallback_status": pa.int32(),
        **{c: pa.int64() for c in ("cached_tokens", "reasoning_tokens", "request_bytes", "response_bytes")},
        **{c: pa.bool_() for c in ("provider_unknown", "task_valid", "streaming", "price_known", "routed")},
    }


class RequestLog:
    """The DuckDB store's request-log writes (a part of DuckStore)."""

    path: str

    def append_request_logs(
        self, rows: list[dict], dropped: dict[str, int] | None = None, shadow: list[dict] | None = None
    ) -> None:
        """Write a batch of rows (dicts keyed by column name), any drop counts and shadow calls
        (lectr/shadow/runner.py), in one short open.

        Also notes the write in `worker_runs` ('writer'): an empty batch is the proxy's heartbeat.
        Columnar: the batch goes in as one Arrow table, ~100x faster than row-by-row inserts.
        """
        committed = False
        try:
            with connect(self.path) as con:
                _append(con, rows, dropped, shadow or [])
                committed = True
        except Exception:
            if not committed:
                raise
            # The batch is in; only closing the file (its checkpoint) failed. The next open replays
            # the log. Raising would have the writer retry the batch and store it twice.
            log.warning("wrote %d rows to %s, but closing it failed", len(rows), self.path, exc_info=True)


def _append(
    con: duckdb.DuckDBPyConnection, rows: list[dict], dropped: dict[str, int] | None, shadow: list[dict]
) -> None:
    migrate(con)
    con.execute("BEGIN TRANSACTION")
    _insert(con, "request_logs", rows)
    _insert(con, "shadow_calls", shadow)
    now = utc_now()
    for reason, count in (dropped or {}).items():
        if count:
            con.execute("INSERT INTO dropped_events VALUES (?, ?, ?)", [now, reason, count])
    note_run(con, "writer", now)
    con.execute("COMMIT")


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> None:
    if not rows:
        return
    import pyarrow as pa  # only the writer process needs it: the proxy stays smaller

    types = _column_types(table)
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    batch = pa.table({n: pa.array(v, type=types.get(n, pa.string())) for n, v in columns.items()})
    con.register("batch", batch)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM batch")
    con.unregister("batch")
