"""The DuckDB file: where it is, how it is opened, and the error when it cannot be.

DuckDB lets one process write a file and, while it holds the file open for writing, no
other process may open it at all; so every caller here opens the file for the shortest
possible time and closes it again, retrying briefly when another process holds the lock.
"""

from __future__ import annotations

import os
import random
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb

from lectr.common.errors import LectrError

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


def utc_now() -> datetime:
    """UTC, without tzinfo: DuckDB's TIMESTAMPTZ would need pytz to read back."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
