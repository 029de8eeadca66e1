"""The DuckDB file: where it is, how it is opened, and a `Session` on it (lectr/store/database.py).

DuckDB lets one process write a file and, while it holds the file open for writing, no
other process may open it at all; so every caller here opens the file for the shortest
possible time and closes it again, retrying briefly when another process holds the lock.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import duckdb

from lectr.store.database import StorageError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

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


@contextmanager
def storage_errors(path: str | Path) -> Iterator[None]:
    """DuckDB's own errors (a damaged file, one a newer DuckDB wrote) raised as StorageError, for a
    caller that knows no DuckDB: the proxy, which rereads keys and keeps the last ones on an error."""
    try:
        yield
    except duckdb.Error as e:
        raise StorageError(f"cannot read {path}: {e}") from e


def dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict]:
    """A query's rows, each a dict of its columns by name."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [name]).fetchall())


class DuckSession:
    """A `Session` on an open DuckDB connection: the shared SQL runs as written."""

    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        return self.con.execute(sql, params or {}).fetchall()

    def dicts(self, sql: str, params: dict | None = None) -> list[dict]:
        return dicts(self.con.execute(sql, params or {}))

    def frame(self, sql: str, params: dict | None = None) -> "pd.DataFrame":
        return self.con.execute(sql, params or {}).df()

    def execute(self, sql: str, params: dict | None = None) -> int:
        found = self.con.execute(sql, params or {}).fetchall()
        # DuckDB answers INSERT, UPDATE and DELETE with one row: the count of rows changed.
        return int(found[0][0]) if len(found) == 1 and isinstance(found[0][0], int) else 0

    def has_table(self, name: str) -> bool:
        return has_table(self.con, name)

    def append(self, table: str, rows: list[dict]) -> None:
        """Rows (dicts keyed by column) as one Arrow table: ~100x faster than row-by-row inserts."""
        if not rows:
            return
        import pyarrow as pa  # only the writer process needs it: the proxy stays smaller

        types = column_types(table)
        columns = {name: [row[name] for row in rows] for name in rows[0]}
        batch = pa.table({n: pa.array(v, type=types.get(n, pa.string())) for n, v in columns.items()})
        self.con.register("batch", batch)
        self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM batch")
        self.con.unregister("batch")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")


@dataclass(frozen=True)
class DuckDatabase:
    """The DuckDB file at `path` as a `Database`: each session opens it, and closes it at its end."""

    path: str

    @property
    def location(self) -> str:
        return self.path

    @contextmanager
    def read(self, attempts: int = 20) -> Iterator[DuckSession]:
        with storage_errors(self.path), connect(self.path, read_only=True, attempts=attempts) as con:
            yield DuckSession(con)

    @contextmanager
    def write(self) -> Iterator[DuckSession]:
        from lectr.store.migrations import migrate  # the migrations are written on a Session

        committed = False
        try:
            with connect(self.path) as con:
                session = DuckSession(con)
                migrate(session)
                with session.transaction():
                    yield session
                committed = True
        except Exception:
            if not committed:
                raise
            # The transaction is in; only closing the file (its checkpoint) failed. The next open replays
            # the log. Raising would have the writer retry the batch (its id would stop a second copy).
            log.warning("wrote to %s, but closing it failed", self.path, exc_info=True)


@functools.cache
def column_types(table: str) -> dict:
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
