"""Collect: copy new rows from the workers' DuckDB files into the main file.

With several Lectr processes behind HAProxy (scripts/workers.sh), each worker writes its
events to a file of its own, because DuckDB lets one process at a time write a file. The
collector copies what is new in each worker file into the main one, where the
aggregator, the anomaly detector, the recommendation engine and the dashboard find it.

`request_logs`, `dropped_events` and `shadow_calls` are append-only, so a row's rowid never changes:
`collected_from` (migration m009) keeps, per source file and table, the highest rowid copied, and the
copy and the new mark are committed together. A second run copies nothing; a crash
copies nothing twice. A worker file is attached read-only for the moment of the copy;
while its writer holds it (mid-batch) the collector retries briefly, then leaves that
file for the next turn.

DuckDB only: a store of several hosts has no per-worker files, so this is not part of `Store`.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime
from pathlib import Path

import duckdb

from lectr.store.database import utc_now
from lectr.store.duckdb_connection import DuckSession, connect
from lectr.store.jobs import last_run, note_run
from lectr.store.migrations import migrate

log = logging.getLogger(__name__)

TABLES = ("request_logs", "dropped_events", "shadow_calls")
SOURCE = "lectr_source"  # the attached worker file's name inside the main connection
ATTACH_ATTEMPTS = 10  # about half a second: a writer holds its file for tens of milliseconds per batch


def collect(main_db: str | Path, sources: list[str | Path]) -> int:
    """Copy the rows not yet copied from each source file into main_db; returns rows copied (all tables)."""
    main = Path(main_db).resolve()
    copied = 0
    for source in sources:
        path = Path(source).resolve()
        if path == main or not path.exists():
            continue
        try:
            copied += _collect_one(main, path)
        except _Busy:
            log.info("%s is busy (its worker is writing); collecting it next turn", path)
        except duckdb.Error as e:  # one unreadable file must not stop the others
            log.warning("could not collect %s, trying again next turn: %s", path, e)
    return copied


class _Busy(Exception):
    """The source stayed locked by its writer; it is left for the next turn."""


def _collect_one(main: Path, source: Path) -> int:
    with connect(main) as con:
        migrate(DuckSession(con))
        _attach(con, source)
        try:
            return _copy(con, str(source))
        finally:
            con.execute(f"DETACH {SOURCE}")


def _attach(con: duckdb.DuckDBPyConnection, source: Path) -> None:
    quoted = str(source).replace("'", "''")
    for attempt in range(ATTACH_ATTEMPTS):
        try:
            con.execute(f"ATTACH '{quoted}' AS {SOURCE} (READ_ONLY)")
            return
        except duckdb.IOException as e:
            if "lock" not in str(e).lower():
                raise
            time.sleep(0.01 * (attempt + 1) + random.uniform(0, 0.02))
    raise _Busy(str(source))


def _copy(con: duckdb.DuckDBPyConnection, source: str) -> int:
    found = con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [SOURCE]).fetchall()
    tables = {row[0] for row in found}
    if not {"_migrations", "worker_runs", "request_logs", "dropped_events"} <= tables:
        return 0  # a worker that has not written yet
    created = con.execute(f"SELECT min(applied_at) FROM {SOURCE}._migrations").fetchone()[0]
    now = utc_now()
    copied = 0
    con.execute("BEGIN TRANSACTION")
    for table in (t for t in TABLES if t in tables):  # a worker on an older Lectr may lack the newer tables
        last = _last_rowid(con, source, table, created)
        top = con.execute(f"SELECT max(rowid) FROM {SOURCE}.{table}").fetchone()[0]
        if top is None or top <= last:
            continue
        copied += con.execute(
            f"INSERT INTO {table} BY NAME SELECT * FROM {SOURCE}.{table} WHERE rowid > ? AND rowid <= ?", [last, top]
        ).fetchone()[0]
        con.execute("INSERT OR REPLACE INTO collected_from VALUES (?, ?, ?, ?, ?)", [source, table, created, top, now])
    # The dashboard warns when the proxy's writer has gone quiet: the newest worker heartbeat stands for them all.
    beat = con.execute(f"SELECT max(last_run) FROM {SOURCE}.worker_runs WHERE worker = 'writer'").fetchone()[0]
    known = last_run(DuckSession(con), "writer")
    if beat is not None and (known is None or beat > known):
        note_run(DuckSession(con), "writer", beat)
    con.execute("COMMIT")
    return copied


def _last_rowid(con: duckdb.DuckDBPyConnection, source: str, table: str, created: datetime | None) -> int:
    row = con.execute(
        "SELECT last_rowid, source_created FROM collected_from WHERE source = ? AND table_name = ?", [source, table]
    ).fetchone()
    if row is None or row[1] != created:
        return -1  # never collected, or the file was deleted and made anew: copy it all
    return row[0]
