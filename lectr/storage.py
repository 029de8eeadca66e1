"""Storage: the one module that talks SQL to Lectr's DuckDB file.

Schema changes are an append-only list of small named migrations, each applied once and
recorded in `_migrations`. DuckDB lets one process write a file and, while it holds the
file open for writing, no other process may open it at all; so every caller here opens
the file for the shortest possible time and closes it again, retrying briefly when
another process holds the lock.
"""

from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import duckdb

from lectr.keys import NewKey, StoredKey

DEFAULT_DB = "lectr.duckdb"


def default_db_path() -> str:
    """`LECTR_DB` from the environment, else `lectr.duckdb` in the working directory."""
    return os.environ.get("LECTR_DB") or DEFAULT_DB


class StorageError(RuntimeError):
    """The database could not be used; the message says what to do."""


@contextmanager
def connect(path: str | Path, read_only: bool = False, attempts: int = 20) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database briefly. Waits out another process's lock with short jittered retries."""
    path = str(path)
    if read_only and not Path(path).exists():
        raise StorageError(f"no database at {path}: create it with 'lectr keys create ORG --db {path}'")
    for attempt in range(attempts):
        try:
            con = duckdb.connect(path, read_only=read_only)
            break
        except duckdb.IOException as e:
            if "lock" not in str(e).lower() or attempt == attempts - 1:
                raise StorageError(f"cannot open {path}: {e}") from e
            time.sleep(0.01 * (attempt + 1) + random.uniform(0, 0.02))
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


MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [m001_org_keys]


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
        con.execute("INSERT INTO _migrations VALUES (?, ?)", [migration.__name__, _now()])
        con.execute("COMMIT")
        applied.append(migration.__name__)
    return applied


# --- org keys -------------------------------------------------------------------------


def insert_key(path: str | Path, org_id: str, new_key: NewKey) -> None:
    with connect(path) as con:
        migrate(con)
        con.execute(
            "INSERT INTO org_keys (key_id, org_id, key_hash, created_at) VALUES (?, ?, ?, ?)",
            [new_key.key_id, org_id, new_key.key_hash, _now()],
        )


def revoke_key(path: str | Path, key_id: str) -> bool:
    with connect(path) as con:
        migrate(con)
        found = con.execute(
            "UPDATE org_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL RETURNING key_id",
            [_now(), key_id],
        ).fetchall()
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


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [name]).fetchall())


def _now() -> datetime:
    """UTC, without tzinfo: DuckDB's TIMESTAMPTZ would need pytz to read back."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
