"""The request log: the writer's batches of rows, the events it had to drop, and the shadow calls.

`request_logs`, `dropped_events` and `shadow_calls` are append-only (lectr/store/duckdb_collect.py
relies on it). A batch goes in as one bulk append per table (an Arrow table into DuckDB, COPY into
PostgreSQL: each session's `append`), in one transaction, with its id: a batch whose commit was
not confirmed (the connection broke at that moment) is sent again, and its id, already in
`written_batches`, tells that it is in, so it is neither lost nor stored twice.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta

from lectr.store.database import Database, Session, utc_now
from lectr.store.jobs import note_run

log = logging.getLogger(__name__)

# Reasons in dropped_events whose rows were stored all the same, without a cost or without
# tokens (lectr/record/metering.py): counted there so they can be found, but not lost events.
STORED_DEGRADED = ("pricing_error", "counting_error")

# Each host's own heartbeat beside the shared one ('writer'): with several hosts on one database, the
# dashboard tells which one went quiet. A host is LECTR_HOST, else its name (set LECTR_HOST where the
# name changes at each deployment, as a container's does); its proxies share one heartbeat.
HOST_WRITER = f"writer {os.environ.get('LECTR_HOST') or socket.gethostname()}"
BATCH_IDS_KEPT = timedelta(days=2)  # a writer retries a batch for minutes, never for days
PRUNE_EVERY = 3600.0  # seconds between two clean-ups of old batch ids by one writer
_pruned_at = -PRUNE_EVERY  # this process's last clean-up (time.monotonic)


class RequestLog:
    """The request-log writes (a part of DuckStore and PgStore)."""

    db: Database

    def append_request_logs(
        self,
        rows: list[dict],
        dropped: dict[str, int] | None = None,
        shadow: list[dict] | None = None,
        batch_id: str | None = None,
    ) -> None:
        """Write a batch of rows (dicts keyed by column name), any drop counts and shadow calls
        (lectr/shadow/runner.py) in one transaction; a batch whose `batch_id` is already stored is
        not stored again.

        Also notes the write in `worker_runs` ('writer'): an empty batch is the proxy's heartbeat.
        """
        with self.db.write() as s:
            now = utc_now()
            if batch_id and not _claim(s, batch_id, now):
                log.info("batch %s was stored before its commit was lost; not storing it twice", batch_id)
                return
            s.append("request_logs", rows)
            s.append("shadow_calls", shadow or [])
            for reason, count in (dropped or {}).items():
                if count:
                    s.execute(
                        "INSERT INTO dropped_events (ts, reason, events) VALUES ($now, $reason, $count)",
                        {"now": now, "reason": reason, "count": count},
                    )
            note_run(s, "writer", now)
            note_run(s, HOST_WRITER, now)
            _forget_old_batches(s, now)


def _claim(s: Session, batch_id: str, now) -> bool:
    """Record the batch's id; False when it was already recorded (the batch is stored)."""
    sql = "INSERT INTO written_batches (batch_id, written_at) VALUES ($id, $now) ON CONFLICT DO NOTHING"
    return s.execute(sql, {"id": batch_id, "now": now}) > 0


def _forget_old_batches(s: Session, now) -> None:
    """Batch ids old enough that no writer retries their batch any more, once an hour per writer (in the
    writer's own path: a DuckDB worker runs no aggregator)."""
    global _pruned_at
    if time.monotonic() - _pruned_at < PRUNE_EVERY:
        return
    s.execute("DELETE FROM written_batches WHERE written_at < $cut", {"cut": now - BATCH_IDS_KEPT})
    _pruned_at = time.monotonic()
